"""Tests that need a sandbox or a browser say so, so `make test-fast` can leave them out (CONTRIBUTING.md).

Read from the test modules' source: a test that uses a name only a sandboxed or browser test can use
carries the marker (on the function or the whole module). The other half of the guard is at run time:
`make test-fast` runs without nsjail, so an unmarked test that deploys or invokes fails there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

# a test that references one of these names needs the marker
NEEDS = {
    "sync_playwright": "browser",
    "small_tmpfs": "sandbox",  # mounts a tmpfs: root
}
# a module importing one of these needs the marker on every test (or the module)
MODULE_NEEDS = {
    "tests.worker_fixtures": "sandbox",  # real workers in nsjail, in-process
    "tests.netns_helpers": "sandbox",  # network namespaces and nft: root
}


def _marks(node: ast.expr) -> set[str]:
    """The marker names in a decorator or a pytestmark value (pytest.mark.x, pytest.mark.x(...), lists)."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Attribute)
            and sub.value.attr == "mark"
        ):
            found.add(sub.attr)
    return found


def _module_marks(tree: ast.Module) -> set[str]:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
        ):
            return _marks(stmt.value)
    return set()


def _names(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.alias):
            names.add(sub.asname or sub.name)
    return names


def missing_marks(source: str) -> list[str]:
    """One line per test function of ``source`` lacking a marker it needs."""
    tree = ast.parse(source)
    module = _module_marks(tree)
    imported = {stmt.module for stmt in ast.walk(tree) if isinstance(stmt, ast.ImportFrom) and stmt.module}
    module_needs = {mark for name, mark in MODULE_NEEDS.items() if name in imported}
    helpers = {
        stmt.name: _names(stmt)
        for stmt in tree.body
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and not stmt.name.startswith("test_")
    }
    problems = []
    for stmt in tree.body:
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) or not stmt.name.startswith("test_"):
            continue
        marks = module | set().union(*(_marks(d) for d in stmt.decorator_list))
        used = _names(stmt)
        for helper in used & helpers.keys():  # one level of the module's own helper functions
            used |= helpers[helper]
        needs = module_needs | {mark for name, mark in NEEDS.items() if name in used}
        problems += [f"{stmt.name} needs @pytest.mark.{mark}" for mark in sorted(needs - marks)]
    return problems


@pytest.mark.parametrize("path", sorted(TESTS.rglob("test_*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_tests_that_need_a_sandbox_or_a_browser_are_marked(path: Path) -> None:
    assert missing_marks(path.read_text()) == []


def test_the_check_sees_function_and_module_marks() -> None:
    unmarked = "from tests.helpers import small_tmpfs\ndef test_a(tmp_path):\n    with small_tmpfs(tmp_path, 4): pass\n"
    assert missing_marks(unmarked) == ["test_a needs @pytest.mark.sandbox"]
    marked = "import pytest\n@pytest.mark.sandbox\n" + unmarked.split("\n", 1)[1]
    assert missing_marks("from tests.helpers import small_tmpfs\n" + marked) == []
    browser = (
        "import pytest\ndef launch():\n    from playwright.sync_api import sync_playwright\n"
        "def test_b():\n    launch()\n"
    )
    assert missing_marks(browser) == ["test_b needs @pytest.mark.browser"]
    assert (
        missing_marks(
            browser.replace("import pytest\n", "import pytest\npytestmark = [pytest.mark.browser]\n")
        )
        == []
    )
    workers = "from tests.worker_fixtures import make_worker\ndef test_c():\n    pass\n"
    assert missing_marks(workers) == ["test_c needs @pytest.mark.sandbox"]
    assert missing_marks(workers + "import pytest\npytestmark = pytest.mark.sandbox\n") == []


def _sqlite_only_reason(source: str) -> str | None:
    """The module's SQLITE_ONLY_REASON when it uses the sqlite_only marker ("" when it gives none), else None."""
    tree = ast.parse(source)
    if not any(
        isinstance(node, ast.Attribute)
        and node.attr == "sqlite_only"
        and isinstance(node.value, ast.Attribute)
        for node in ast.walk(tree)
    ):
        return None
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "SQLITE_ONLY_REASON" for t in stmt.targets)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            return stmt.value.value.strip()
    return ""


def test_sqlite_only_tests_say_why() -> None:
    """The PostgreSQL pass deselects `sqlite_only` tests (tests/conftest.py): each module using the marker
    says in SQLITE_ONLY_REASON why its test means nothing on PostgreSQL, and the list stays short."""
    reasons = {
        str(path.relative_to(TESTS)): _sqlite_only_reason(path.read_text())
        for path in sorted(TESTS.rglob("test_*.py"))
    }
    marked = {path: reason for path, reason in reasons.items() if reason is not None}
    assert [path for path, reason in marked.items() if not reason] == []
    assert 0 < len(marked) <= 8, sorted(marked)  # a new one is a decision: raise the bound deliberately
    assert _sqlite_only_reason("import pytest\npytestmark = pytest.mark.sqlite_only\n") == ""
    assert _sqlite_only_reason("import pytest\n") is None
