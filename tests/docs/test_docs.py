"""The docs name every error code and every setting the code has, and README shows the two commands."""

from __future__ import annotations

from pathlib import Path

from orvad.config import FIELDS
from orvad.errors import OrvaError

ROOT = Path(__file__).resolve().parents[2]
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
    files = set(
        re.findall(r"\btests/((?:[a-z0-9_]+/)*test_[a-z0-9_]+\.py)", text)
    )  # tests/<package>/test_x.py
    names = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text)) - {Path(name).stem for name in files}
    sources = {
        p.relative_to(ROOT / "tests").as_posix(): p.read_text() for p in (ROOT / "tests").rglob("test_*.py")
    }
    for name in files:
        assert name in sources, f"docs/SECURITY.md cites missing tests/{name}"
    for name in names:
        assert any(f"def {name}(" in src for src in sources.values()), (
            f"docs/SECURITY.md cites missing test {name}"
        )


# --- links and references between the docs (issue 18.12: no page refers to a document the repository lacks) ---

DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "runtimes" / "PROTOCOL.md"]
# made by a build, not kept in the repository: the wheel's data folder, the dashboard's bundle
BUILT_PATHS = ("orvad/_data", "web/dist")


def _prose(page: Path) -> str:
    """The page without its fenced code blocks (commands and examples are not references)."""
    import re

    return re.sub(r"^```.*?^```[ \t]*$", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    import re

    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", _prose(page), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _tracked() -> set[str]:
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {path for path in listed.split("\0") if path and (ROOT / path).exists()}


def test_every_relative_link_in_the_docs_resolves() -> None:
    import re

    broken = []
    for page in DOC_PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: ({target}) names no file")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: ({target}) names no heading of {resolved.name}")
    assert not broken, "\n".join(broken)


def test_the_docs_name_only_documents_and_files_the_repository_has() -> None:
    import re

    tracked = _tracked()
    names = {Path(path).name for path in tracked}
    tops = {path.split("/")[0] for path in tracked if "/" in path}
    missing = []
    for page in DOC_PAGES:
        text = _prose(page)
        for name in set(re.findall(r"\b([\w.-]+\.md)\b", text)):
            if name not in names:
                missing.append(f"{page.relative_to(ROOT)} mentions {name}")
        for path in set(re.findall(r"`([\w.-]+/[\w./-]+)`", text)):
            clean = path.rstrip("/")
            if (
                clean.split("/")[0] in tops
                and not clean.startswith(BUILT_PATHS)
                and not (ROOT / clean).exists()
            ):
                missing.append(f"{page.relative_to(ROOT)} mentions {path}")
    assert not missing, "\n".join(missing)
