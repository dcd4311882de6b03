"""The layers of orvad (docs/ARCHITECTURE.md), checked by walking the imports of every orvad module.

One rule per package: what it may import from orvad. A new package (or a new top-level module that is
not a leaf) fails `test_every_module_has_a_rule` until it gets a rule here and a line in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "orvad"
# the composition root: the command line, `python -m orvad`, and the daemon's object graph
ROOT_MODULES = {"orvad.cli", "orvad.__main__", "orvad.daemon"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules() -> dict[str, set[str]]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        name = str(path.relative_to(ROOT.parent).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        modules[name] = _imports(path)
    return modules


def _top(name: str) -> str:
    return name.split(".")[0]


def _inner(imports: set[str]) -> set[str]:
    return {i for i in imports if _top(i) == "orvad"}


def _is_leaf(module: str) -> bool:
    """A module directly in orvad/ (errors, config, models, ids, clock, logs, ...) that is not the root."""
    if module == "orvad":
        return True  # the package itself (__version__)
    return (
        module.count(".") == 1 and module not in ROOT_MODULES and not (ROOT / module.split(".")[1]).is_dir()
    )


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# package -> (what it may import from orvad besides the leaves and itself, its job in one sentence)
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "orvad.host": ((), "what touches the host: nsjail argv, host checks, seccomp, egress, child processes"),
    "orvad.store": (
        (),
        "every SQL statement, the two drivers (SQLite, PostgreSQL), the writers, the migrations",
    ),
    "orvad.cluster": (
        ("orvad.store", "orvad.services", "orvad.pool", "orvad.auth", "orvad.cron", "orvad.webhooks"),
        "N nodes on one PostgreSQL database: the node registry, change propagation, warm-aware forwarding",
    ),
    "orvad.sdk": ((), "the in-sandbox SDK's calls on orvad's side: who is calling, which service answers"),
    "orvad.traces": (
        ("orvad.store", "orvad.sdk"),
        "spans: W3C traceparent, the span tree of a trace, user spans, the optional OTLP export",
    ),
    "orvad.kv": (("orvad.store", "orvad.sdk", "orvad.services"), "each function's key-value state"),
    "orvad.jobs": (
        ("orvad.store", "orvad.sdk", "orvad.services", "orvad.invoke", "orvad.traces"),
        "background invocations: the durable queue, leases, retries with back-off, dead letters",
    ),
    "orvad.cron": (
        ("orvad.store", "orvad.sdk", "orvad.services", "orvad.jobs"),
        "schedules: cron expressions in a timezone, each run a job, catch-up after downtime",
    ),
    "orvad.webhooks": (
        ("orvad.store", "orvad.services", "orvad.invoke", "orvad.auth", "orvad.jobs", "orvad.host"),
        "webhooks: inbound triggers checked by their sender's signature, outbound events from an outbox",
    ),
    "orvad.backup": (
        ("orvad.store", "orvad.services", "orvad.builder"),
        "backup and restore: consistent online snapshots, archives validated before an atomic swap",
    ),
    "orvad.templates": ((), "the starter functions, shipped as files, and their catalog"),
    "orvad.pool": (
        ("orvad.host.sandbox", "orvad.host.process", "orvad.sdk"),
        "workers and pools; knows recipes and tunables, never functions or the store",
    ),
    "orvad.services": (
        ("orvad.store", "orvad.pool", "orvad.host", "orvad.builder"),
        "the in-memory services over the store, their change events and the reconciler",
    ),
    "orvad.builder": (
        ("orvad.store", "orvad.pool", "orvad.host", "orvad.services"),
        "builds: unpack, install in a build jail, import check, activation",
    ),
    "orvad.auth": (
        ("orvad.store", "orvad.services", "orvad.http.cookies"),
        "API keys, sessions, passwords, throttling, the guard, the audit trail",
    ),
    "orvad.invoke": (
        (
            "orvad.services",
            "orvad.pool",
            "orvad.store",
            "orvad.auth",
            "orvad.http.origins",
            "orvad.http.drain",
            "orvad.sdk",
            "orvad.traces",
        ),
        "the one dispatch path of every trigger: admission, lease, invoke, relay, settle",
    ),
    "orvad.api": (
        (
            "orvad.services",
            "orvad.builder",
            "orvad.pool",
            "orvad.store",
            "orvad.host",
            "orvad.auth",
            "orvad.http.origins",
            "orvad.daemon",
            "orvad.assistant",
            "orvad.sdk",
            "orvad.traces",
            "orvad.kv",
            "orvad.jobs",
            "orvad.cron",
            "orvad.invoke",
            "orvad.webhooks",
            "orvad.backup",
            "orvad.templates",
        ),
        "one module per API resource: parse, call a service, answer",
    ),
    "orvad.mcp": (
        (
            "orvad.services",
            "orvad.builder",
            "orvad.invoke",
            "orvad.auth",
            "orvad.http.origins",
            "orvad.daemon",
            "orvad.store",
            "orvad.kv",
        ),
        "the MCP server at /mcp: the SDK's transport behind orvad's checks, the tool catalog over the services",
    ),
    "orvad.assistant": (
        ("orvad.services", "orvad.store", "orvad.mcp", "orvad.daemon"),
        "the AI assistant: providers, conversations and the turn loop over the operator tool catalog",
    ),
    "orvad.http": (
        ("orvad.api", "orvad.auth", "orvad.host.memtrim", "orvad.daemon", "orvad.mcp"),
        "the web layer: the ASGI app, middleware, CORS, origins, the drain, the servers' edges",
    ),
    "orvad.daemon": (
        (
            "orvad.services",
            "orvad.builder",
            "orvad.pool",
            "orvad.store",
            "orvad.host",
            "orvad.auth",
            "orvad.invoke",
            "orvad.http.origins",
            "orvad.http.drain",
            "orvad.assistant",
            "orvad.sdk",
            "orvad.traces",
            "orvad.kv",
            "orvad.jobs",
            "orvad.cron",
            "orvad.webhooks",
            "orvad.backup",
            "orvad.templates",
            "orvad.cluster",
        ),
        "constructs, starts and stops the object graph",
    ),
    "orvad.cli": (("orvad",), "`orvad serve` and the admin subcommands: may import anything"),
    "orvad.__main__": (("orvad.cli",), "`python -m orvad`"),
}


def _rule_of(module: str) -> str | None:
    owners = [package for package in RULES if _under(module, package)]
    return max(owners, key=len) if owners else None


def test_every_module_has_a_rule() -> None:
    homeless = [m for m in _modules() if not _is_leaf(m) and _rule_of(m) is None]
    assert not homeless, f"modules without a layer rule in tests/repo/test_layers.py: {homeless}"


def test_leaves_import_only_leaves() -> None:
    for module, imports in _modules().items():
        if _is_leaf(module):
            inner = {i for i in _inner(imports) if not _is_leaf(i)}
            assert not inner, f"leaf {module} imports {inner}: a leaf imports nothing but other leaves"


@pytest.mark.parametrize("package", sorted(RULES))
def test_a_package_imports_only_what_its_rule_allows(package: str) -> None:
    allowed, _job = RULES[package]
    for module, imports in _modules().items():
        if _rule_of(module) != package:
            continue
        wrong = {i for i in _inner(imports) if not (_is_leaf(i) or _under(i, package, *allowed))}
        assert not wrong, (
            f"{module} imports {sorted(wrong)}; {package} may import only leaves, itself and {allowed}"
        )


def test_only_the_web_layer_imports_starlette() -> None:
    web = ("orvad.http", "orvad.api", "orvad.auth.guard", "orvad.cli")
    for module, imports in _modules().items():
        framework = {
            i for i in imports if _top(i) in ("starlette", "sse_starlette", "hypercorn", "uvicorn", "granian")
        }
        # raw ASGI (mcp: the SDK is the framework there; cluster: the forwarding proxy)
        if _under(module, "orvad.invoke", "orvad.mcp", "orvad.cluster"):
            assert framework <= {"starlette.types"}, f"{module} imports {framework}"
        elif framework:
            assert _under(module, *web), f"{module} imports the web framework"


def test_only_the_store_touches_sqlite() -> None:
    for module, imports in _modules().items():
        if any(_top(i) in ("aiosqlite", "sqlite3") for i in imports):
            assert module.startswith("orvad.store"), f"{module} imports SQLite outside the store layer"


# who may name the PostgreSQL driver: the driver choice, the cluster's LISTEN connection, `orvad migrate`
POSTGRES_USERS = ("orvad.store.drivers", "orvad.cluster", "orvad.cli")


def test_only_the_postgresql_driver_touches_asyncpg() -> None:
    """Issue 25: orvad.store.postgres holds the PostgreSQL driver and schema; nothing else imports asyncpg,
    and only the driver choice, the cluster and the admin commands name orvad.store.postgres (the stores
    speak orvad.store.sql's protocol)."""
    for module, imports in _modules().items():
        if any(_top(i) == "asyncpg" for i in imports):
            assert module.startswith("orvad.store.postgres"), f"{module} imports asyncpg outside the driver"
        if not _under(module, "orvad.store.postgres", *POSTGRES_USERS):
            assert not any(i.startswith("orvad.store.postgres") for i in imports), (
                f"{module} wires PostgreSQL"
            )


def test_sql_lives_in_the_store() -> None:
    keywords = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")
    for path in ROOT.rglob("*.py"):
        if "store" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not any(
                    k in node.value for k in keywords if node.value.lstrip().startswith(k.strip())
                ), f"SQL outside the store in {path}: {node.value[:60]!r}"


def test_the_store_knows_only_the_domain_records() -> None:
    for module, imports in _modules().items():
        if module.startswith("orvad.store"):
            inner = _inner(imports)
            assert all(
                _under(
                    i, "orvad.store", "orvad.models", "orvad.errors", "orvad.clock", "orvad.ids", "orvad.urls"
                )
                for i in inner
            ), f"{module} imports {inner}"
