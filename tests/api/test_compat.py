"""Wire compatibility with the Go Orva (issue 19): its scripts' requests and the fields they read work here,
beside this orvad's own shapes."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

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
        back = c.post(
            f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": first["deployment_id"]}
        )
        assert back.status_code == 200, back.text
        assert back.json()["deployment_id"] == back.json()["id"] and back.json()["source"] == "rollback"
        # a plain record keeps today's shape
        assert "deployment_id" not in c.get(f"/api/v1/deployments/{first['id']}").json()


def test_platform_key_is_api_key(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "compat-platform-key", auth_mode="platform_key")
        assert fn["auth_mode"] == "api_key"
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["auth_mode"] == "api_key"
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"auth_mode": "none"})
        assert r.status_code == 200 and r.json()["auth_mode"] == "none", r.text
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"auth_mode": "platform_key"})
        assert r.status_code == 200 and r.json()["auth_mode"] == "api_key", r.text
        wait_deployed(c, deploy_inline(c, fn["id"], PY % 3)["id"])
        with orvad.client() as anonymous:
            assert anonymous.post(f"/fn/{fn['id']}", json={}).status_code == 401
        bad = c.put(f"/api/v1/functions/{fn['id']}", json={"auth_mode": "platform"})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "auth_mode"


def _tgz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_deploy_takes_multipart_code(orvad: Orvad) -> None:
    """`orva deploy` of the original uploads as `curl -F code=@fn.tar.gz`."""
    with orvad.admin() as c:
        fn = create_function(c, "compat-code-field")
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy?wait=true",
            files={"code": ("fn.tar.gz", _tgz("handler.py", (PY % 4).encode()))},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "succeeded" and r.json()["deployment_id"] == r.json()["id"]
        with orvad.client(orvad.admin_key) as caller:
            assert caller.post(f"/fn/{fn['id']}", json={}).json() == {"v": 4}
        missing = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"other": ("fn.tar.gz", b"x")})
        assert missing.status_code == 400 and "`code`" in missing.json()["error"]["message"]


def test_post_pool_config_is_put(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "compat-pool-post")
        r = c.post(
            "/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 3, "idle_ttl_seconds": 45}
        )
        assert r.status_code == 200, r.text
        assert r.json()["function_id"] == fn["id"] and r.json()["max_warm"] == 3
        got = c.get("/api/v1/pool/config", params={"function_id": fn["name"]}).json()
        assert got["max_warm"] == 3 and got["idle_ttl_seconds"] == 45
        bad = c.post("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": -1})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "max_warm"
        with orvad.client() as anonymous:
            assert anonymous.post("/api/v1/pool/config", json={"function_id": fn["id"]}).status_code == 401
        # like PUT, it needs an admin key: a write key is refused
        writer = c.post("/api/v1/keys", json={"name": "w", "permissions": ["read", "write"]}).json()["key"]
        with orvad.client(writer) as w:
            assert (
                w.post("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 1}).status_code
                == 403
            )
        assert c.get("/api/v1/pool/config", params={"function_id": fn["id"]}).json()["max_warm"] == 3


def test_auth_me_carries_the_user_at_the_top_level(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client(headers={"X-Orva-CSRF": "1"}) as c:
        assert server.onboard(c, "migrant").status_code == 201
        me = c.get("/api/v1/auth/me")
        assert me.status_code == 200, me.text
        body = me.json()
        assert body["username"] == "migrant" and body["user"]["username"] == "migrant"
        assert body["id"] == body["user"]["id"] and body["id"]
        assert body["created_at"] == body["user"]["created_at"] and body["expires_at"]


def test_runtimes_and_syscalls_carry_the_go_fields(orvad: Orvad) -> None:
    with orvad.admin() as c:
        runtimes = c.get("/api/v1/runtimes").json()["runtimes"]
        assert {r["language"] for r in runtimes} == {"python", "node"}
        for r in runtimes:
            assert r["name"].split(" ")[0] == {"python": "Python", "node": "Node.js"}[r["language"]]
            assert r["name"].endswith(r["version"])
            assert r["default_handler"] == r["default_entrypoint"]
            assert r["default_handler"].endswith(tuple(r["extensions"]))
            assert r["extensions"] == {"python": [".py"], "node": [".js", ".mjs", ".cjs"]}[r["language"]]
        syscalls = c.get("/api/v1/syscalls").json()
        assert syscalls["total"] == len(syscalls["syscalls"]) > 0
