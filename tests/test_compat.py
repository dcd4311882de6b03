"""Wire compatibility with the Go Orva (issue 19): its scripts' requests and the fields they read work here,
beside this orvad's own shapes."""

from __future__ import annotations

from tests.conftest import Orvad
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed

PY = "def handler(event, context):\n    return {'v': %d}\n"


def test_deploy_answers_carry_deployment_id(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "compat-depid")
        first = deploy_inline(c, fn["id"], PY % 1)
        assert first["deployment_id"] == first["id"]
        wait_deployed(c, first["deployment_id"])
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy-inline?wait=true", json={"code": PY % 2})
        assert r.status_code == 200, r.text
        assert r.json()["deployment_id"] == r.json()["id"] and r.json()["status"] == "succeeded"
        back = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": first["deployment_id"]})
        assert back.status_code == 200, back.text
        assert back.json()["deployment_id"] == back.json()["id"] and back.json()["source"] == "rollback"
        # a plain record keeps today's shape
        assert "deployment_id" not in c.get(f"/api/v1/deployments/{first['id']}").json()
