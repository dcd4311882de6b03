"""The starter functions: one folder per template beside this module, each with its handler file, an
optional requirements.txt or package.json, and a template.json manifest (docs/TEMPLATES.md).

The catalog is read once through importlib.resources (so it works from a checkout and from a wheel) and
validated as it is read: a manifest that breaks a rule raises TemplateError, which tests/templates turns
into a failing test. GET /api/v1/templates serves it; `orva init --template` writes a template's files.
Creating a function from a template is the client's work, with the usual calls: POST /api/v1/functions
with the manifest's settings, then POST /api/v1/functions/{id}/deploy-inline with the handler file and the
dependency manifest.

Imports nothing from orvad (tests/repo/test_layers.py); template handler files never import orvad either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

MANIFEST = "template.json"
RUNTIMES = {"python": ("handler.py", "requirements.txt"), "node": ("handler.js", "package.json")}
# the function fields a template may set: they are sent as they are to POST /api/v1/functions
SETTINGS = frozenset(
    {"description", "network_mode", "memory_mb", "cpus", "timeout_ms", "may_invoke", "input_schema"}
)
FIELDS = frozenset(
    {"name", "title", "description", "runtime", "tags", "entrypoint", "settings", "env", "example"}
)
ENV_FIELDS = frozenset({"name", "description", "secret", "required", "default"})
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # a function's name: the template's name is its default
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_FILE_BYTES = 256 * 1024


class TemplateError(ValueError):
    """A template folder breaks a rule of the catalog (a packaging mistake, caught by the tests)."""


@dataclass(frozen=True)
class EnvVar:
    """An environment variable or secret the template's handler reads."""

    name: str
    description: str
    secret: bool
    required: bool
    default: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "secret": self.secret,
            "required": self.required,
            "default": self.default,
        }


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    description: str
    runtime: str  # python or node: the language; orvad picks the version
    tags: tuple[str, ...]
    entrypoint: str
    settings: dict[str, Any]  # function fields for POST /api/v1/functions
    env: tuple[EnvVar, ...]
    example: dict[str, Any] | None
    files: dict[str, str] = field(repr=False)  # file name -> text: the entry file and its dependency manifest

    @property
    def code(self) -> str:
        return self.files[self.entrypoint]

    @property
    def dependencies(self) -> str | None:
        """requirements.txt or package.json, when the template has one."""
        return self.files.get(RUNTIMES[self.runtime][1])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "runtime": self.runtime,
            "tags": list(self.tags),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "entrypoint": self.entrypoint,
            "settings": self.settings,
            "env": [e.to_json() for e in self.env],
            "example": self.example,
            "files": dict(self.files),
            "dependencies_file": RUNTIMES[self.runtime][1] if self.dependencies is not None else None,
        }


def _fail(name: str, message: str) -> TemplateError:
    return TemplateError(f"template {name}: {message}")


def _str(data: dict[str, Any], key: str, name: str, max_len: int = 400) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _fail(name, f"{key} must be a non-empty string of at most {max_len} characters")
    return value


def _env(item: Any, name: str) -> EnvVar:
    if not isinstance(item, dict) or set(item) - ENV_FIELDS:
        raise _fail(name, f"each env entry is an object with {sorted(ENV_FIELDS)}")
    env_name = _str(item, "name", name, 128)
    if not ENV_NAME_RE.fullmatch(env_name) or env_name.startswith("ORVA_"):
        raise _fail(name, f"env name {env_name!r} is not a usable variable name")
    secret, required, default = item.get("secret", False), item.get("required", False), item.get("default")
    if not isinstance(secret, bool) or not isinstance(required, bool):
        raise _fail(name, f"env {env_name}: secret and required are true or false")
    if default is not None and not isinstance(default, str):
        raise _fail(name, f"env {env_name}: default is a string")
    return EnvVar(env_name, _str(item, "description", name), secret, required, default)


def _settings(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(name, "settings must be an object")
    unknown = set(value) - SETTINGS
    if unknown:
        raise _fail(name, f"settings may set only {sorted(SETTINGS)}, not {sorted(unknown)}")
    if value.get("network_mode", "none") not in ("none", "egress"):
        raise _fail(name, "settings.network_mode is none or egress")
    invoke = value.get("may_invoke", [])
    if not isinstance(invoke, list) or not all(isinstance(i, str) and NAME_RE.fullmatch(i) for i in invoke):
        raise _fail(name, "settings.may_invoke is a list of function names")
    schema = value.get("input_schema")
    if schema is not None and not (isinstance(schema, dict) and schema.get("type") == "object"):
        raise _fail(name, 'settings.input_schema is a JSON Schema with "type": "object"')
    return value


def _files(folder: Traversable, name: str, runtime: str, entrypoint: str) -> dict[str, str]:
    allowed = {entrypoint, RUNTIMES[runtime][1]}
    found: dict[str, str] = {}
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.name == MANIFEST or item.name == "__pycache__" or item.name.endswith(".pyc"):
            continue
        if item.name not in allowed or not item.is_file():
            raise _fail(
                name, f"{item.name} is not the entry file or the dependency manifest ({sorted(allowed)})"
            )
        data = item.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise _fail(name, f"{item.name} is larger than {MAX_FILE_BYTES} bytes")
        found[item.name] = data.decode("utf-8")
    if entrypoint not in found:
        raise _fail(name, f"the entry file {entrypoint} is missing")
    if "import orvad" in found[entrypoint] or "from orvad" in found[entrypoint]:
        raise _fail(name, "a handler imports the `orva` SDK, never orvad")
    return found


def _load(folder: Traversable) -> Template:
    name = folder.name
    try:
        data = json.loads(folder.joinpath(MANIFEST).read_text(encoding="utf-8"))
    except ValueError as err:
        raise _fail(name, f"{MANIFEST} is not JSON: {err}") from err
    if not isinstance(data, dict) or set(data) - FIELDS:
        raise _fail(name, f"{MANIFEST} is an object with the fields {sorted(FIELDS)}")
    if data.get("name") != name or not NAME_RE.fullmatch(name):
        raise _fail(name, "the manifest's name must be the folder's name, a valid function name")
    runtime = data.get("runtime")
    if runtime not in RUNTIMES:
        raise _fail(name, f"runtime must be one of {sorted(RUNTIMES)}")
    entrypoint = data.get("entrypoint", RUNTIMES[runtime][0])
    if entrypoint != RUNTIMES[runtime][0]:
        raise _fail(name, f"the entry file of a {runtime} template is {RUNTIMES[runtime][0]}")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise _fail(name, "tags is a list of strings")
    env = data.get("env", [])
    if not isinstance(env, list):
        raise _fail(name, "env is a list")
    example = data.get("example")
    if example is not None and not isinstance(example, dict):
        raise _fail(name, "example is an object (method, path, headers, body)")
    return Template(
        name=name,
        title=_str(data, "title", name, 80),
        description=_str(data, "description", name),
        runtime=runtime,
        tags=tuple(tags),
        entrypoint=entrypoint,
        settings=_settings(data.get("settings", {}), name),
        env=tuple(_env(e, name) for e in env),
        example=example,
        files=_files(folder, name, runtime, entrypoint),
    )


@cache
def catalog() -> dict[str, Template]:
    """Every template by name, in name order; read and validated once per process."""
    root = files(__name__)
    found = [_load(item) for item in root.iterdir() if item.is_dir() and item.joinpath(MANIFEST).is_file()]
    return {t.name: t for t in sorted(found, key=lambda t: t.name)}


def find(name: str) -> Template | None:
    return catalog().get(name)


def default_for(runtime: str) -> Template:
    """The starter of `orva init` without --template: hello-python or hello-node."""
    return catalog()[f"hello-{runtime}"]
