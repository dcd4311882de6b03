"""Dependencies from the real registries, installed in the build sandbox and importable by the handler."""

from __future__ import annotations

import pytest

from tests.deploy_helpers import create_function, deploy_inline, sse_events, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PY = "import six\n\ndef handler(event, context):\n    return {'six': six.__version__}\n"
JS = "const isNumber = require('is-number');\nexports.handler = async () => ({ n: isNumber(5), s: isNumber('x') });\n"


def test_python_dependency_installed_in_the_build_sandbox(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "deps-py")
        dep = deploy_inline(c, fn["id"], PY, dependencies="six==1.16.0")
        events = sse_events(c, f"/api/v1/deployments/{dep['id']}/stream", timeout_s=300)
        record = wait_deployed(c, dep["id"], 300)
        assert record["status"] == "succeeded", [d["line"] for e, d in events if e == "log"]
        lines = [d["line"] for e, d in events if e == "log"]
        assert any(
            "six" in line and d_stream != "system"
            for line, d_stream in ((d["line"], d["stream"]) for e, d in events if e == "log")
        ), lines
        assert c.get(f"/fn/{fn['id']}").json() == {"six": "1.16.0"}
        # a failing dependency leaves the old version serving
        bad = wait_deployed(
            c, deploy_inline(c, fn["id"], PY, dependencies="no-such-package-orva-xyz==9.9.9")["id"], 300
        )
        assert bad["status"] == "failed" and "dependency install failed" in bad["error_message"]
        assert c.get(f"/fn/{fn['id']}").json() == {"six": "1.16.0"}
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["active_deployment_id"] == record["id"]


def test_node_dependency_installed_in_the_build_sandbox(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "deps-node", "node")
        record = wait_deployed(c, deploy_inline(c, fn["id"], JS, dependencies="is-number@7.0.0")["id"], 300)
        logs = c.get(f"/api/v1/deployments/{record['id']}/logs").json()["lines"]
        assert record["status"] == "succeeded", [ln["line"] for ln in logs]
        assert c.get(f"/fn/{fn['id']}").json() == {"n": True, "s": False}
        src = c.get(f"/api/v1/functions/{fn['id']}/source").json()
        assert src["manifest"] == "package.json" and '"is-number": "7.0.0"' in src["dependencies"]
