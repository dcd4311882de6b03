"""The docs name every error code and every setting the code has, and README shows the two commands."""

from __future__ import annotations

from pathlib import Path

from orvad.config import FIELDS
from orvad.errors import OrvaError

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_503 = {"BUILDING", "BUILD_QUEUE_FULL", "POOL_AT_CAPACITY", "MEMORY_EXHAUSTED", "SHUTTING_DOWN"}


def _codes() -> set[str]:
    def walk(cls: type[OrvaError]) -> set[str]:
        return {cls.code, *(c for sub in cls.__subclasses__() for c in walk(sub))}

    return walk(OrvaError) | CONTRACT_503


def test_every_error_code_is_documented() -> None:
    errors = (ROOT / "docs" / "ERRORS.md").read_text()
    for code in _codes():
        assert f"`{code}`" in errors, f"{code} is missing from docs/ERRORS.md"


def test_every_setting_is_documented() -> None:
    config = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    for field in FIELDS:
        assert f"`{field.env}`" in config and f"--{field.name.replace('_', '-')}" in config, field.name


def test_every_event_type_is_documented() -> None:
    from orvad.api.system import EVENT_TYPES

    api = (ROOT / "docs" / "API.md").read_text()
    for event in (*EVENT_TYPES, "dropped"):
        assert f"| `{event}` |" in api, f"event {event} is missing from docs/API.md"


def test_readme_opens_with_what_orva_is_and_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("# Orva\n")
    assert "make run" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_dockerfile_has_the_contracted_shape() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in docker and "/api/v1/system/health" in docker
    assert "VOLUME /var/lib/orva" in docker and "ORVA_HOST=0.0.0.0" in docker
    assert "nodejs" in docker
    # the wheel build needs its hook, and the dashboard comes from the node stage
    assert "hatch_build.py" in docker and "COPY --from=dashboard /web/dist" in docker


def test_security_claims_cite_tests_that_exist() -> None:
    import re

    text = (ROOT / "docs" / "SECURITY.md").read_text()
    names = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text)) - {name for name in re.findall(r"tests/(test_[a-z_]+)\.py", text)}
    files = set(re.findall(r"tests/(test_[a-z_]+\.py)", text))
    sources = {p.name: p.read_text() for p in (ROOT / "tests").glob("test_*.py")}
    for name in files:
        assert name in sources, f"docs/SECURITY.md cites missing {name}"
    for name in names:
        assert any(f"def {name}(" in src for src in sources.values()), f"docs/SECURITY.md cites missing test {name}"
