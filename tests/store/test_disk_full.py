"""A full disk (issue 17.4), on a real small filesystem: orvad's data dir is a tmpfs of a few MiB that
the test fills with a file of its own, then empties again.

While full: API writes answer 507 INSUFFICIENT_STORAGE with the envelope, a build that runs out of
space fails at once saying so, health's disk check is not ok (503), invocations still answer. Once the
filler is gone everything recovers by itself: writes, health, deploys, and the executions of the full
period are recorded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orvad.builder.build import Builder
from orvad.clock import now_iso
from orvad.errors import InsufficientStorage
from orvad.ids import uuid7
from orvad.models import Deployment
from orvad.services.bus import Bus
from orvad.services.functions import FunctionService
from orvad.store.batch import BatchWriter
from orvad.store.db import SqliteDatabase
from orvad.store.functions import FunctionStore
from tests import databases
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, fill_disk, small_tmpfs, until, wait_for
from tests.store.test_store import write_until_refused

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PY = "def handler(event, context):\n    return {'v': %d}\n"
DISK_MB = 48


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"handler.py": (PY % 9).encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wheel(mib: int) -> bytes:
    """A local wheel (no index needed) whose install writes ``mib`` MiB into the function's folder."""
    files = {
        "big/__init__.py": b"",
        "big/data.bin": b"\0" * (mib << 20),
        "big-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: big\nVersion: 1.0\n",
        "big-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: orva-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = (
        "".join(
            f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
            f"{len(data)}\n"
            for name, data in files.items()
        )
        + "big-1.0.dist-info/RECORD,,\n"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**files, "big-1.0.dist-info/RECORD": record.encode()}.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _health(c: httpx.Client) -> tuple[int, dict[str, Any]]:
    r = c.get("/api/v1/system/health")
    return r.status_code, r.json()


def _pending_rows(c: httpx.Client) -> float:
    for line in c.get("/api/v1/system/metrics").text.splitlines():
        if line.startswith("orva_store_rows_pending "):
            return float(line.split()[1])
    raise AssertionError("no orva_store_rows_pending in the metrics")


def _assert_507(r: httpx.Response) -> None:
    assert r.status_code == 507, r.text
    error = r.json()["error"]
    assert error["code"] == "INSUFFICIENT_STORAGE" and error["request_id"] == r.headers["x-request-id"]
    assert "data dir" in error["hint"] and "health" in error["hint"]


def test_a_full_disk_fails_writes_and_builds_clearly_and_everything_recovers(
    make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    with small_tmpfs(jail_tmp / "disk", DISK_MB) as disk:
        server = make_orvad(data_dir=disk)
        filler = disk / "filler"
        try:
            _full_then_recovered(server, filler)
        finally:
            filler.unlink(missing_ok=True)
            server.stop()


def _full_then_recovered(server: Orvad, filler: Path) -> None:
    with server.admin() as c, server.client() as anonymous:
        fn = create_function(c, "disk-fn")
        assert wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])["status"] == "succeeded"
        assert c.post(f"/fn/{fn['id']}").json() == {"v": 1}  # a warm worker for the full period
        status, body = _health(c)
        assert status == 200 and body["checks"]["disk"]["ok"] is True, body

        # A build that runs out of space fails at once, naming the full disk (it stayed `building`).
        fill_disk(filler, leave_bytes=2 << 20)
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            files={"file": ("big.tgz", _archive({"big.bin": b"\0" * (16 << 20)}))},
        )
        assert r.status_code == 202, r.text
        failed = wait_deployed(c, r.json()["id"], deadline_s=30)
        assert failed["status"] == "failed", failed
        assert "disk holding orvad's data dir is full" in failed["error_message"], failed
        assert c.post(f"/fn/{fn['id']}").json() == {"v": 1}  # the active version still serves
        # The same for a dependency install: pip (in the build jail) writes a 16 MiB wheel's files.
        wheel = "big-1.0-py3-none-any.whl"
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            files={
                "file": (
                    "deps.tgz",
                    _archive({wheel: _wheel(16), "requirements.txt": f"/code/{wheel}\n".encode()}),
                )
            },
        )
        assert r.status_code == 202, r.text
        failed = wait_deployed(c, r.json()["id"], deadline_s=120)
        assert failed["status"] == "failed", failed
        assert (
            "disk holding orvad's data dir is full (the dependency install found no space"
            in failed["error_message"]
        ), (failed, c.get(f"/api/v1/deployments/{failed['id']}/logs").json())

        # Full to the last byte.
        fill_disk(filler)
        wait_for(lambda: _health(c)[0] == 503, 10, "health to answer 503 with the disk full")
        status, body = _health(c)
        disk = body["checks"]["disk"]
        assert body["status"] == "unhealthy" and disk["ok"] is False and disk["required"] is True, body
        assert "% of 48 MiB free" in disk["detail"] and "floor 5%" in disk["detail"], disk
        status, public = _health(anonymous)
        assert status == 503 and public["checks"]["disk"] == {"ok": False, "required": True}, public

        # An upload cannot be stored: 507 with the envelope, and nothing is left half-written.
        _assert_507(
            c.post(f"/api/v1/functions/{fn['id']}/deploy-inline", json={"code": PY % 2 + "#" * 100_000})
        )
        on_sqlite = databases.driver() == databases.SQLITE
        if on_sqlite:
            # SqliteDatabase writes: SQLite first fills the old pages of its write-ahead log; a few later it
            # finds no space.
            refused = None
            for i in range(300):
                r = c.post(
                    "/api/v1/functions",
                    json={
                        "name": f"full-{i}",
                        "runtime": "python",
                        "env_vars": {f"K{k}": "v" * 2000 for k in range(8)},
                    },
                )
                if r.status_code != 201:
                    refused = r
                    break
            assert refused is not None, "300 function rows fitted on a full disk"
            _assert_507(refused)
        else:  # PostgreSQL's rows are on its server's disk: a full data dir does not stop management writes
            create_function(c, "written-while-the-data-dir-is-full")

        # Invocations need no disk: they answer, and their records wait in memory (on PostgreSQL: are written)
        executions = []
        for _ in range(20):
            r = c.post(f"/fn/{fn['id']}")
            assert r.status_code == 200 and r.json() == {"v": 1}, r.text
            executions.append(r.headers["x-orva-execution-id"])
        if on_sqlite:
            wait_for(lambda: _pending_rows(c) >= len(executions), 10, "the executions to wait in memory")

        # Space returns: everything recovers by itself.
        filler.unlink()
        wait_for(lambda: _health(c)[0] == 200, 15, "health to answer 200 once space returned")
        assert _health(c)[1]["checks"]["disk"]["ok"] is True
        create_function(c, "after-the-full-disk")
        dep = deploy_inline(c, fn["id"], PY % 3)
        assert wait_deployed(c, dep["id"], deadline_s=60)["status"] == "succeeded"
        wait_for(lambda: c.post(f"/fn/{fn['id']}").json() == {"v": 3}, 15, "the new version to serve")
        for execution in executions:
            wait_for(
                lambda e=execution: c.get(f"/api/v1/executions/{e}").status_code == 200,
                15,  # type: ignore[misc]
                f"execution {execution} of the full period to be recorded",
            )
        metrics = c.get("/api/v1/system/metrics").text
        assert "orva_store_rows_dropped_total 0.0" in metrics, [
            ln for ln in metrics.splitlines() if "store" in ln
        ]


class _Python:
    """The runtime catalogue, reduced to the one runtime this test's function names."""

    def language_of(self, runtime_id: str) -> str | None:
        return "python" if runtime_id == "python" else None

    def interpreter_of(self, runtime_id: str) -> str:
        return sys.executable

    def ids(self) -> list[str]:
        return ["python"]

    def list(self) -> list[dict[str, Any]]:
        return [{"id": "python"}]


async def test_the_end_of_a_build_is_retried_until_the_disk_has_space(
    jail_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When even the failure cannot be written, the builder retries (without holding the functions'
    lock in between) until space returns: the deployment never stays `building`."""
    with small_tmpfs(jail_tmp / "disk", 4) as disk:
        db = SqliteDatabase(disk / "orva.db")
        await db.open()
        batch = BatchWriter(db, interval_s=0.01)
        batch.start()
        try:
            store = FunctionStore(db, batch)
            functions = FunctionService(store, _Python())
            builder = Builder(
                root=disk / "functions",
                store=store,
                functions=functions,
                bus=Bus(),
                language_of=_Python().language_of,
                interpreter_of=_Python().interpreter_of,
                install=None,
                concurrency=1,
                backlog=4,
                timeout_s=10,
                versions_kept=2,
            )
            fn = await functions.create({"name": "full", "runtime": "python"})
            dep = await store.insert_deployment(
                Deployment(
                    id=uuid7(),
                    function_id=fn.id,
                    version=0,
                    code_hash=None,
                    status="building",
                    phase="extracting",
                    phases=[],
                    source="inline",
                    parent_deployment_id=None,
                    error_message=None,
                    submitted_at=now_iso(),
                    started_at=now_iso(),
                    finished_at=None,
                    duration_ms=None,
                )
            )
            await db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT)")
            fill_disk(disk / "filler")
            await write_until_refused(db)

            caplog.set_level(logging.INFO, logger="orvad.builder.build")
            ending = asyncio.create_task(builder._finish(dep, None, "the disk is full"))
            await until(
                lambda: ending.done() or any("cannot be recorded" in r.getMessage() for r in caplog.records),
                10,
                "a failed attempt to record the build's end",
            )
            assert not ending.done(), "the end was recorded on a full disk"
            # other writers of function rows are not held up meanwhile: a settings change gets its own answer
            # (the disk is full) at once, not after the build's end was recorded
            with pytest.raises(InsufficientStorage):
                await asyncio.wait_for(functions.update(fn.id, {"description": "while full"}), 2)
            row = await store.deployment(dep.id)
            assert row is not None and row.status == "building" and not ending.done()

            (disk / "filler").unlink()
            await asyncio.wait_for(ending, 10)
            row = await store.deployment(dep.id)
            assert row is not None and (row.status, row.error_message) == ("failed", "the disk is full")
        finally:
            await batch.stop()
            await db.close()
