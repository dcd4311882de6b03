"""A prototype measurement for issue 26's cold starts (not the product): what a *spare* Python jail would
give, one started before its function is known and handed the function at the first request.

The spare is orvad's own jail and adapter (tests/worker_fixtures.make_worker: the same nsjail flags,
limits and binds) with two differences: its /code is bound from an empty host directory, and its boot
line first reads one line of JSON from stdin (the function's environment) before it runs the adapter.
(make_worker puts the function's variables in the jail's environment at its start too; the line sets them
again, as a spare's would.) Handing it a function (the timed part): hard-link the handler into that directory, write the function's
memory limit to the jail's cgroup, send the environment line; then the adapter imports the handler and
sends its ready frame, and the first request is invoked. Beside it, in the same run, the same
worker started the usual way (jail started at the request) and answering the same first request, and
the bare jail (``python3.11 -S -c pass``).

    .venv/bin/python bench/spare_jail.py [samples]

What it leaves out, and the product would have to add: orvad's HTTP request and pool decision (about 4 ms
in the cold-start rows), pids and CPU limits, secrets, functions with egress networking (a jail's network
namespace is fixed at its start), and Node.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orvad.host.sandbox import Invocation, SandboxSpec, build_invocation  # noqa: E402
from orvad.pool.worker import _first_child  # noqa: E402
from orvad.services.spawner import PYTHON_BOOT  # noqa: E402
from tests.worker_fixtures import CGROUP_V1, event, host_facts, make_worker, sandbox_data  # noqa: E402

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"
DEFERRED_BOOT = (
    "import sys, os, json; os.environ.update(json.loads(sys.stdin.buffer.readline())); " + PYTHON_BOOT
)
ENV = {"ORVA_ENTRYPOINT": "handler.py", "ORVA_HANDLER": "handler", "ORVA_FUNCTION_ID": "fn-spare"}
IDLE_S = 0.3  # the spare waits this long before it is handed a function (it was started ahead)


async def usual(source: Path) -> float:
    """Jail started at the request: start to the first reply, ms."""
    t = time.perf_counter()
    worker = make_worker(source, "python")
    await worker.start(20)
    reply = await worker.invoke(event("/"), {}, 10)
    elapsed = (time.perf_counter() - t) * 1000
    assert reply.response is not None and reply.response["statusCode"] == 200, reply
    await worker.stop(1.0)
    return elapsed


async def spare(source: Path) -> float:
    """A spare handed the function: hand-over to the first reply, ms."""
    code = Path(tempfile.mkdtemp(prefix="orva-spare-", dir=source.parent))
    code.chmod(0o755)
    worker = make_worker(code, "python")
    argv = list(worker.invocation.argv)
    argv[-1] = DEFERRED_BOOT  # the boot line is the last argument (after nsjail's --)
    worker.invocation = Invocation(argv=argv, env=worker.invocation.env)
    starting = asyncio.create_task(worker.start(20))
    await asyncio.sleep(IDLE_S)
    assert worker.proc is not None and worker.proc.stdin is not None
    jail_pid = _first_child(worker.proc.pid)  # the jailed process: nsjail names its cgroups after it
    t = time.perf_counter()
    os.link(source / "handler.py", code / "handler.py")
    limit = CGROUP_V1 / "memory" / "NSJAIL" / f"NSJAIL.{jail_pid}" / "memory.limit_in_bytes"
    limit.write_text(str(128 * 1024 * 1024))
    worker.proc.stdin.write(json.dumps(ENV).encode() + b"\n")
    await starting
    reply = await worker.invoke(event("/"), {}, 10)
    elapsed = (time.perf_counter() - t) * 1000
    assert reply.response is not None and json.loads(reply.response["body"]) == {"ok": True}, reply
    await worker.stop(1.0)
    (code / "handler.py").unlink()
    code.rmdir()
    return elapsed


def bare() -> float:
    spec = SandboxSpec(
        argv=("/usr/bin/python3.11", "-S", "-c", "pass"),
        code_dir="/usr/share",
        binds=sandbox_data().binds_for("python"),
        memory_mb=128,
        cpus=1,
    )
    inv = build_invocation(spec, host_facts())
    t = time.perf_counter()
    subprocess.Popen(inv.argv, env=inv.env).wait()
    return (time.perf_counter() - t) * 1000


async def main(samples: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="orva-spare-bench-"))
    base.chmod(0o711)
    source = base / "fn"
    source.mkdir()
    source.chmod(0o755)
    (source / "handler.py").write_text(HANDLER)
    (source / "handler.py").chmod(0o644)
    rows: dict[str, list[float]] = {"usual": [], "spare": [], "bare": []}
    for _ in range(samples):  # interleaved, 0.2 s apart, as the bench's cold section
        rows["usual"].append(await usual(source))
        await asyncio.sleep(0.2)
        rows["spare"].append(await spare(source))
        await asyncio.sleep(0.2)
        rows["bare"].append(bare())
        await asyncio.sleep(0.2)
    for name, values in rows.items():
        values.sort()
        print(
            f"{name:6s} p50 {statistics.median(values):6.2f} ms  p90 {values[int(0.9 * len(values))]:6.2f} ms  n={len(values)}"
        )
    print(json.dumps({k: round(statistics.median(v), 2) for k, v in rows.items()}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
