"""Fixtures for the backup tests: an orvad holding one of everything a backup must carry."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

HANDLER = (
    "import os\ndef handler(event, context):\n    return {'v': %d, 'secret': os.environ.get('GREETING')}\n"
)


@dataclass
class Populated:
    fn: str
    fn_id: str
    key: str  # a write+read+invoke key made before the backup
    route: str
    cron_id: str
    deployments: list[int]

    def check(self, server: Orvad, admin_key: str) -> None:
        """Everything is there and works on ``server``."""
        with server.client(admin_key) as c:
            r = c.post(f"/fn/{self.fn}", json={})
            assert r.status_code == 200, r.text
            assert r.json() == {"v": 2, "secret": "hello-secret"}
            versions = c.get(f"/api/v1/functions/{self.fn}/deployments").json()["deployments"]
            assert sorted(d["version"] for d in versions) == self.deployments
            r = c.post(self.route, json={})
            assert r.status_code == 200 and r.json()["v"] == 2, r.text
            crons = c.get(f"/api/v1/functions/{self.fn}/cron").json()
            assert [s["id"] for s in crons["schedules"]] == [self.cron_id], crons
            kv = c.get(f"/api/v1/functions/{self.fn}/kv/greeting").json()
            assert kv["value"] == {"hello": "kv"}, kv
            secrets = c.get(f"/api/v1/functions/{self.fn}/secrets").json()
            assert "GREETING" in json.dumps(secrets), secrets
        with server.client(self.key) as c:  # the old key works
            assert c.get("/api/v1/functions").status_code == 200
            assert c.post(f"/fn/{self.fn}", json={}).json()["v"] == 2


def populate(server: Orvad, name: str = "bk-echo") -> Populated:
    with server.admin() as c:
        fn = create_function(c, name)
        wait_deployed(c, deploy_inline(c, fn["id"], HANDLER % 1)["id"])
        c.post(
            f"/api/v1/functions/{fn['id']}/secrets", json={"key": "GREETING", "value": "hello-secret"}
        ).raise_for_status()
        wait_deployed(c, deploy_inline(c, fn["id"], HANDLER % 2)["id"])
        route = f"/{name}/hello"
        r = c.post("/api/v1/routes", json={"path": route, "function_id": fn["id"]})
        assert r.status_code == 201, r.text
        key = c.post(
            "/api/v1/keys", json={"name": "kept", "permissions": ["read", "write", "invoke"]}
        ).json()["key"]
        r = c.post(f"/api/v1/functions/{name}/cron", json={"name": "nightly", "expression": "30 2 * * *"})
        assert r.status_code in (200, 201), r.text
        cron_id = r.json()["id"]
        c.put(f"/api/v1/functions/{name}/kv/greeting", json={"value": {"hello": "kv"}}).raise_for_status()
    populated = Populated(name, fn["id"], key, route, cron_id, [1, 2])
    populated.check(server, server.admin_key)
    return populated


def download(server: Orvad, key: str) -> bytes:
    with server.client(key) as c:
        r = c.get("/api/v1/backup")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/gzip"
    return r.content


def upload(server: Orvad, key: str, data: bytes, confirm: bool = True) -> httpx.Response:
    with server.client(key) as c:
        return c.post(
            "/api/v1/restore",
            params={"confirm": "1"} if confirm else {},
            files={"archive": ("b.tar.gz", data, "application/gzip")},
        )


Member = tuple[tarfile.TarInfo, bytes | None]


def members(data: bytes) -> list[Member]:
    out: list[Member] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            content = tar.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            out.append((info, content))
    return out


def rebuild(items: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, content in items:
            info = _copy(info)
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _copy(info: tarfile.TarInfo) -> tarfile.TarInfo:
    new = tarfile.TarInfo(info.name)
    for attr in ("type", "mode", "size", "linkname", "uid", "gid", "mtime"):
        setattr(new, attr, getattr(info, attr))
    return new


def with_manifest(items: list[Member], change: Callable[[dict[str, Any]], None]) -> list[Member]:
    out: list[Member] = []
    for info, content in items:
        if info.name == "manifest.json":
            assert content is not None
            manifest = json.loads(content)
            change(manifest)
            content = json.dumps(manifest).encode()
        out.append((info, content))
    return out


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def state(server: Orvad) -> dict[str, Any]:
    """What a refused restore must leave as it was."""
    with server.admin() as c:
        return {
            "functions": sorted(f["name"] for f in c.get("/api/v1/functions").json()["functions"]),
            "keys": sorted(k["id"] for k in c.get("/api/v1/keys").json()["keys"]),
            "routes": sorted(r["path"] for r in c.get("/api/v1/routes").json()["routes"]),
        }


def files_of(data_dir: Path) -> dict[str, int]:
    """The data dir's database and master key sizes (unchanged by a refused restore)."""
    return {n: (data_dir / n).stat().st_ino for n in ("orva.db", "master.key", "functions")}
