"""Error hints name the real thing (issue 18.8, interface 10): never a literal `{id}`, always the function's
name, the deployment or the execution the error is about. Each hint that used to carry a placeholder is
provoked over HTTP here; a static pass over orvad/ checks every hint string besides."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

ROOT = Path(__file__).resolve().parent.parent
# a template left in: {id}, {name}, {}, <id> (JSON bodies such as {"status": "active"} are fine, and so are
# <data-dir> or sha256=<hex>: things orvad cannot fill in)
PLACEHOLDER = re.compile(r"\{[A-Za-z_]*\}|\{\{|<id>")


def hint_of(r: httpx.Response, status: int, code: str) -> tuple[str, dict[str, Any]]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    hint: str = error["hint"]
    assert not PLACEHOLDER.search(hint), f"placeholder in the hint: {hint!r}"
    return hint, error


def _deployed(c: httpx.Client, name: str, code: str, **extra: Any) -> dict[str, Any]:
    fn = create_function(c, name, **extra)
    assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    return fn


def _logs_named_by(c: httpx.Client, hint: str, error: dict[str, Any]) -> str:
    """The hint names GET /api/v1/executions/<this execution>/logs, and that path answers."""
    execution_id = error["details"]["execution_id"]
    path = f"/api/v1/executions/{execution_id}/logs"
    assert f"GET {path}" in hint, hint
    wait_for(lambda: c.get(path).status_code == 200, 10, "the execution's row")
    return str(c.get(path).json()["logs"])


def test_api_hints_name_the_function(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "hint-created")
        hint, _ = hint_of(c.put("/api/v1/functions/hint-created", json={"status": "active"}), 409, "CONFLICT")
        assert "POST /api/v1/functions/hint-created/deploy-inline" in hint
        hint, _ = hint_of(c.post(f"/fn/{fn['id']}"), 409, "NOT_DEPLOYED")
        assert "/api/v1/functions/hint-created/" in hint

        live = _deployed(c, "hint-rollback", "def handler(e, c):\n    return 1\n")
        active = c.get(f"/api/v1/functions/{live['id']}").json()["active_deployment_id"]
        hint, _ = hint_of(
            c.post(f"/api/v1/functions/{live['id']}/rollback", json={"deployment_id": active}),
            400,
            "VALIDATION",
        )
        assert "GET /api/v1/functions/hint-rollback/deployments" in hint
        for r in (
            c.post(f"/api/v1/functions/{live['id']}/rollback", json={"deployment_id": "no-such"}),
            c.post(f"/api/v1/functions/{live['id']}/rollback", json={"code_hash": "abcdef"}),
            c.get(f"/api/v1/functions/{live['id']}/diff", params={"from": active, "to": "no-such"}),
        ):
            hint, _ = hint_of(r, 404, "VERSION_NOT_FOUND")
            assert "GET /api/v1/functions/hint-rollback/deployments" in hint

        broken = create_function(c, "hint-never-built")
        assert (
            wait_deployed(c, deploy_inline(c, broken["id"], "def handler(e, c)\n    return 1\n")["id"])[
                "status"
            ]
            == "failed"
        )
        hint, _ = hint_of(c.post("/fn/hint-never-built"), 409, "NOT_ACTIVE")
        assert "/api/v1/functions/hint-never-built/" in hint


def test_invoke_hints_name_the_execution_and_the_function(orvad: Orvad) -> None:
    with orvad.admin() as c:
        _deployed(
            c, "hint-raises", "def handler(e, c):\n    print('about to fail')\n    raise ValueError('nope')\n"
        )
        hint, error = hint_of(c.post("/fn/hint-raises"), 500, "FUNCTION_ERROR")
        assert "ValueError" in _logs_named_by(c, hint, error)

        _deployed(c, "hint-crashes", "import os\n\ndef handler(e, c):\n    os._exit(3)\n")
        hint, error = hint_of(c.post("/fn/hint-crashes"), 502, "WORKER_CRASHED")
        _logs_named_by(c, hint, error)

        slow = _deployed(
            c, "hint-killed", "import time\n\ndef handler(e, c):\n    time.sleep(20)\n", timeout_ms=30000
        )

        def running() -> bool:
            pools = c.get("/api/v1/system/metrics.json").json()["pools"]
            return any(p["function_id"] == slow["id"] and p["inflight"] == 1 for p in pools)

        with ThreadPoolExecutor(1) as background:
            call = background.submit(httpx.post, f"{orvad.url}/fn/hint-killed", timeout=60)
            wait_for(running, 10, "the call running")
            assert c.post(f"/api/v1/functions/{slow['id']}/kill").json()["killed"] == 1
            hint, _ = hint_of(call.result(30), 409, "NOT_ACTIVE")
            assert "PUT /api/v1/functions/hint-killed " in hint
            hint, _ = hint_of(c.post("/fn/hint-killed"), 409, "NOT_ACTIVE")  # now inactive
            assert "PUT /api/v1/functions/hint-killed " in hint


def test_an_unusable_stored_environment_names_the_function(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.admin() as c:
        loader = _deployed(c, "hint-loader-env", "def handler(e, c):\n    return 1\n")
        nul = _deployed(c, "hint-nul-env", "def handler(e, c):\n    return 1\n")
    server.stop()
    # rows an older orvad let through
    server.sql(
        "UPDATE functions SET env_vars = ? WHERE id = ?", (json.dumps({"LD_PRELOAD": "/x.so"}), loader["id"])
    )
    server.sql("UPDATE functions SET env_vars = ? WHERE id = ?", (json.dumps({"MODE": "a\x00b"}), nul["id"]))
    again = server.start()  # the same data dir and database, restarted
    with again.admin() as c:
        hint, _ = hint_of(c.post("/fn/hint-loader-env"), 409, "CONFLICT")
        assert "PUT /api/v1/functions/hint-loader-env env_vars" in hint
        assert "DELETE /api/v1/functions/hint-loader-env/secrets/LD_PRELOAD" in hint
        hint, _ = hint_of(c.post("/fn/hint-nul-env"), 409, "CONFLICT")
        assert "PUT /api/v1/functions/hint-nul-env env_vars" in hint
        assert "POST /api/v1/functions/hint-nul-env/secrets" in hint


# ---- static: every hint string in orvad/ ------------------------------------------------------------------


def _constant_parts(node: ast.AST) -> list[tuple[int, str]]:
    """The literal text of an expression: plain strings, and the fixed parts of f-strings (where a `{{id}}`
    escape shows as `{id}`); what f-strings substitute is not literal."""
    return [
        (n.lineno, n.value)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _hint_expressions(tree: ast.AST) -> list[ast.AST]:
    """hint=... arguments, default_hint = ... class attributes, and the values of the names a hint= passes."""
    assigned: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "hint":
            found.append(node.value)
            found += [
                v
                for name in ast.walk(node.value)
                if isinstance(name, ast.Name)
                for v in assigned.get(name.id, [])
            ]
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "default_hint" for t in node.targets
        ):
            found.append(node.value)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "hint" for t in node.targets
        ):
            found.append(node.value)
    return found


def test_no_hint_in_orvad_carries_a_literal_placeholder() -> None:
    offenders, hints = [], 0
    for path in sorted((ROOT / "orvad").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for expression in _hint_expressions(tree):
            for line, text in _constant_parts(expression):
                hints += 1
                if "{id}" in text or PLACEHOLDER.search(text):
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert hints > 100  # the pass really reads the hints
    assert not offenders, "hints with a literal placeholder:\n" + "\n".join(offenders)
