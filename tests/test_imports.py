"""orvad/imports.py: a large import at first use runs in a thread, never on the event loop's."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

from orvad.imports import imported


def test_a_first_import_runs_off_the_loop_and_later_ones_come_from_sys_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "orva_probe_module.py").write_text("import threading\nIMPORTED_IN = threading.get_ident()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "orva_probe_module", raising=False)

    async def both() -> tuple[object, object, int]:
        first = await imported("orva_probe_module")
        second = await imported("orva_probe_module")
        return first, second, threading.get_ident()

    first, second, loop_thread = asyncio.run(both())
    assert first is second is sys.modules["orva_probe_module"]
    assert first.IMPORTED_IN != loop_thread  # type: ignore[attr-defined]
    monkeypatch.delitem(sys.modules, "orva_probe_module")


def test_a_module_that_does_not_exist_raises_as_an_import_would() -> None:
    with pytest.raises(ModuleNotFoundError):
        asyncio.run(imported("orva_no_such_module_anywhere"))
