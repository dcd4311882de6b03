"""orvad.tasks: one owner for background tasks (names, crashes logged when they happen, stop with a deadline)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orvad.tasks import Tasks


async def test_a_crash_is_logged_with_its_name_when_it_happens(caplog: pytest.LogCaptureFixture) -> None:
    tasks = Tasks()

    async def boom() -> None:
        raise RuntimeError("the loop broke")

    with caplog.at_level(logging.ERROR, logger="orvad.tasks"):
        task = tasks.start("orva-boom", boom())
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the loop's next turn
    crashed = [r for r in caplog.records if r.getMessage() == "background task crashed"]
    assert crashed and crashed[0].task == "orva-boom" and "the loop broke" in str(crashed[0].exc_info[1])  # type: ignore[attr-defined,index]
    assert len(tasks) == 0  # forgotten once ended


async def test_stop_cancels_every_task_and_waits_for_it() -> None:
    tasks = Tasks()
    cleaned: list[str] = []

    async def loop(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(name)

    tasks.start("orva-a", loop("a"))
    tasks.start("orva-b", loop("b"))
    await asyncio.sleep(0)
    assert tasks.names() == ["orva-a", "orva-b"]
    await tasks.stop()
    assert sorted(cleaned) == ["a", "b"] and len(tasks) == 0


async def test_stop_without_cancel_lets_work_finish() -> None:
    tasks = Tasks()
    release = asyncio.Event()
    done: list[bool] = []

    async def work() -> None:
        await release.wait()
        done.append(True)

    tasks.start("orva-release-x", work())
    asyncio.get_running_loop().call_soon(release.set)
    await tasks.stop(cancel=False)
    assert done == [True]


async def test_a_task_that_ignores_its_cancel_does_not_hold_stop(caplog: pytest.LogCaptureFixture) -> None:
    tasks = Tasks()
    freed = asyncio.Event()

    async def stubborn() -> None:
        while not freed.is_set():
            try:
                await freed.wait()
            except asyncio.CancelledError:
                continue  # swallowed: only freed ends it

    task = tasks.start("orva-stubborn", stubborn())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="orvad.tasks"):
        await tasks.stop(timeout_s=0.2)
    left = [r for r in caplog.records if r.getMessage().startswith("background tasks did not stop")]
    assert left and left[0].tasks == ["orva-stubborn"]  # type: ignore[attr-defined]
    freed.set()
    await task
