"""``kill -USR2 <orvad pid>``: orvad writes what it is doing to stderr and runs on.

Every asyncio task's stack (where a request, a loop or the stop sequence waits), then every thread's
(faulthandler: a blocking call in a worker thread), between two marker lines. For an orvad that seems
stuck, and for the tests, which ask for it before they kill an orvad that did not stop in time.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from typing import TextIO

BEGIN = "--- orvad stack dump (SIGUSR2) ---"
END = "--- end of orvad stack dump ---"


def install(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR2, dump)


def dump(out: TextIO | None = None) -> None:
    out = out or sys.stderr
    print(BEGIN, file=out)
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    print(f"{len(tasks)} asyncio tasks", file=out)
    for task in tasks:
        print(f"task {task.get_name()}: {task.get_coro()!r}", file=out)
        task.print_stack(limit=12, file=out)
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    print(END, file=out, flush=True)
