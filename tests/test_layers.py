"""DESIGN.md's dependency rules, checked by walking the imports of every orvad module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "orvad"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules() -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT.parent).with_suffix("")).replace("/", "."): _imports(p)
            for p in ROOT.rglob("*.py")}


def _top(name: str) -> str:
    return name.split(".")[0]


def test_only_the_web_layer_imports_starlette() -> None:
    allowed = ("orvad.app", "orvad.middleware", "orvad.cors", "orvad.auth.guard", "orvad.api.", "orvad.cli", "orvad.invoke",
               "orvad.serving")  # serving: what the HTTP servers need beyond the app
    for module, imports in _modules().items():
        if any(_top(i) in ("starlette", "sse_starlette", "hypercorn") for i in imports):
            assert module.startswith(allowed), f"{module} imports the web framework"


def test_only_the_store_touches_sqlite() -> None:
    for module, imports in _modules().items():
        if any(_top(i) in ("aiosqlite", "sqlite3") for i in imports):
            assert module.startswith("orvad.store"), f"{module} imports SQLite outside the store layer"


def test_sql_lives_in_the_store() -> None:
    keywords = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")
    for path in ROOT.rglob("*.py"):
        if "store" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not any(k in node.value for k in keywords if node.value.lstrip().startswith(k.strip())), (
                    f"SQL outside the store in {path}: {node.value[:60]!r}")


def test_leaves_import_nothing_from_the_domain() -> None:
    leaves = {"orvad.errors", "orvad.config", "orvad.ids", "orvad.clock", "orvad.bus", "orvad.metrics", "orvad.process",
              "orvad.corsorigins"}
    for module, imports in _modules().items():
        if module in leaves:
            inner = {i for i in imports if _top(i) == "orvad"}
            assert inner <= {"orvad.errors", "orvad.clock", "orvad.corsorigins"}, f"leaf {module} imports {inner}"


def test_pool_imports_only_sandbox_protocol_errors_and_process() -> None:
    allowed = {"orvad.sandbox", "orvad.pool.protocol", "orvad.errors", "orvad.pool", "orvad.process"}
    for module, imports in _modules().items():
        if module.startswith("orvad.pool."):
            inner = {i for i in imports if _top(i) == "orvad"}
            assert inner <= allowed | {m for m in inner if m.startswith("orvad.pool.")}, (
                f"{module} imports {inner - allowed}")


def test_store_does_not_import_upwards() -> None:
    for module, imports in _modules().items():
        if module.startswith("orvad.store"):
            inner = {i for i in imports if _top(i) == "orvad"}
            assert all(i.startswith(("orvad.store", "orvad.models", "orvad.errors", "orvad.clock", "orvad.ids")) for i in inner), (
                f"{module} imports {inner}")
