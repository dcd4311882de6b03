"""Issue 18.5: a handler that cannot be imported fails its build; the version before it keeps serving.

The check imports the entry module on a fresh worker of the new version (orvad/builder/importcheck.py);
the traceback goes to the build log, and a worker that passed becomes the new version's first worker.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

GOOD = {
    "python": "def handler(event, context):\n    return {'v': 1}\n",
    "node": "exports.handler = async () => ({v: 1});\n",
}

# (what is wrong, code, text the build log must show)
BROKEN = {
    "python": [
        ("missing colon", "def handler(event, context)\n    return {'v': 2}\n", "SyntaxError"),
        (
            "missing handler",
            "def handle(event, context):\n    return 2\n",
            "does not define a callable handler",
        ),
        (
            "missing module",
            "import no_such_module_here\n\ndef handler(e, c):\n    return 2\n",
            "No module named 'no_such_module_here'",
        ),
        (
            "raises at import",
            "print('loading v2')\nraise RuntimeError('broken at import')\n\ndef handler(e, c):\n"
            "    return 2\n",
            "RuntimeError: broken at import",
        ),
        ("exits at import", "import sys\nsys.exit(0)\n\ndef handler(e, c):\n    return 2\n", "SystemExit"),
        (
            "dies at import",
            "import os\nos._exit(0)\n\ndef handler(e, c):\n    return 2\n",
            "exited with code 0",
        ),
    ],
    "node": [
        ("syntax error", "exports.handler = async () => ({v: 2};\n", "SyntaxError"),
        ("missing handler", "exports.handle = async () => 2;\n", "does not export a function handler"),
        (
            "missing module",
            "require('no-such-module-here');\nexports.handler = async () => 2;\n",
            "no-such-module-here",
        ),
        (
            "throws at import",
            "console.log('loading v2');\nthrow new Error('broken at import');\n",
            "Error: broken at import",
        ),
    ],
}


def _log_text(c: httpx.Client, deployment_id: str) -> str:
    r = c.get(f"/api/v1/deployments/{deployment_id}/logs")
    assert r.status_code == 200, r.text
    return "\n".join(line["line"] for line in r.json()["lines"])


def _failed_with(c: httpx.Client, fn: dict[str, Any], code: str, expected: str) -> dict[str, Any]:
    record = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
    assert record["status"] == "failed", record
    assert "import" in record["error_message"], record["error_message"]
    assert expected in _log_text(c, record["id"]), _log_text(c, record["id"])
    return record


@pytest.mark.parametrize("runtime", ["python", "node"])
def test_a_version_that_cannot_import_fails_its_build_and_v1_keeps_serving(
    orvad: Orvad, runtime: str
) -> None:
    with orvad.admin() as c:
        fn = create_function(c, f"importcheck-{runtime}", runtime)
        v1 = wait_deployed(c, deploy_inline(c, fn["id"], GOOD[runtime])["id"])
        assert v1["status"] == "succeeded"
        assert c.get(f"/fn/{fn['id']}").json() == {"v": 1}
        for what, code, expected in BROKEN[runtime]:
            _failed_with(c, fn, code, expected)
            got = c.get(f"/api/v1/functions/{fn['id']}").json()
            assert got["active_deployment_id"] == v1["id"] and got["status"] == "active", what
            r = c.get(f"/fn/{fn['id']}")
            assert r.status_code == 200 and r.json() == {"v": 1}, (what, r.text)


def test_the_traceback_names_the_line_and_the_import_output_is_kept(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "importcheck-trace")
        record = _failed_with(c, fn, "x = 1\n\ndef handler(event, context)\n    return x\n", "SyntaxError")
        text = _log_text(c, record["id"])
        assert "handler.py" in text and "line 3" in text, text
        assert "SyntaxError" in record["error_message"] and "handler.py" in record["error_message"]
        # the adapter's own frames are not shown, and nothing hints the build succeeded
        assert "adapter.py" not in text and "importlib" not in text
        printed = _failed_with(
            c, fn, "print('loading v2')\nraise RuntimeError('boom')\n", "RuntimeError: boom"
        )
        assert "loading v2" in _log_text(c, printed["id"])
        # never deployed successfully: the function is in error, and says so when called
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_ACTIVE"


def test_a_printed_marker_or_fake_frame_text_cannot_pass_the_check(orvad: Orvad) -> None:
    """What the handler writes to stdout at import (a marker, text shaped like the ready frame) is
    output for the log, not the verdict: the import error still fails the build."""
    fake = (
        "import sys, os\n"
        'print("import check passed")\n'
        'sys.stdout.write(\'{"type": "ready", "runtime": "python", "initError": null}\\n\')\n'
        'os.write(1, b\'\\x00\\x00\\x00\\x0f{"type":"ready"}\')\n'
        'raise ImportError("really broken")\n'
    )
    with orvad.admin() as c:
        record = _failed_with(c, create_function(c, "importcheck-fake"), fake, "ImportError: really broken")
        assert "import check passed" in _log_text(c, record["id"])  # shown as output, nothing more


def test_env_and_secrets_read_at_import_pass_the_check(orvad: Orvad) -> None:
    """The check's worker is started as the pool starts workers: env vars and secrets are there."""
    code = (
        "import os\nGREETING = os.environ['GREETING']\nTOKEN = os.environ['API_TOKEN']\n\n"
        "def handler(event, context):\n    return {'g': GREETING, 't': len(TOKEN)}\n"
    )
    with orvad.admin() as c:
        fn = create_function(c, "importcheck-env", env_vars={"GREETING": "hi"})
        assert c.post(
            f"/api/v1/functions/{fn['id']}/secrets", json={"key": "API_TOKEN", "value": "s3cret"}
        ).status_code in (200, 201)
        record = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
        assert record["status"] == "succeeded", _log_text(c, record["id"])
        assert "imported on a fresh worker" in _log_text(c, record["id"])
        assert c.get(f"/fn/{fn['id']}").json() == {"g": "hi", "t": 6}


def test_the_checked_worker_serves_the_first_request(orvad: Orvad) -> None:
    """With min_warm 1 (the default) the worker that passed the check is the pool's first worker: the
    first call is warm, and the pool spawned one worker, not two."""
    with orvad.admin() as c:
        fn = create_function(c, "importcheck-handoff")
        record = wait_deployed(c, deploy_inline(c, fn["id"], GOOD["python"])["id"])
        assert record["status"] == "succeeded"
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.headers["x-orva-cold-start"] == "false"
        rows = c.get("/api/v1/system/metrics.json").json()["pools"]
        row = next(p for p in rows if p["function_id"] == fn["id"])
        assert row["spawned"] == 1 and row["workers"] == 1, row


def test_the_import_runs_jailed_as_the_workers_do(orvad: Orvad) -> None:
    """The tenant's import-time code runs in the worker jail (uid 65534, its own pid namespace, the code
    read-only), never as root on the host: it reports what it sees by failing on purpose."""
    probe = (
        "import os\n"
        "try:\n    open('/code/written-at-import', 'w').close()\n    writable = True\n"
        "except OSError:\n    writable = False\n"
        "raise RuntimeError(f'uid={os.getuid()} pid={os.getpid()} code_writable={writable}')\n"
    )
    with orvad.admin() as c:
        record = _failed_with(
            c,
            create_function(c, "importcheck-jailed"),
            probe,
            "RuntimeError: uid=65534 pid=1 code_writable=False",
        )
        assert "uid=65534" in record["error_message"]
