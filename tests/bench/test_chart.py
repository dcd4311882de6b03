"""The bench's chart (bench/chart.py): drawn from a stored run, every warm configuration in it."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# bench/ is a folder of scripts, not a package: chart.py is loaded by its path (nothing joins sys.path)
_spec = importlib.util.spec_from_file_location("bench_chart", ROOT / "bench" / "chart.py")
assert _spec is not None and _spec.loader is not None
chart = sys.modules["bench_chart"] = importlib.util.module_from_spec(_spec)  # its dataclass looks it up
_spec.loader.exec_module(chart)

RUN = ROOT / "bench" / "results" / "2026-12-01.json"  # a full run: Hypercorn and Uvicorn, both runtimes


def test_a_stored_full_run_is_drawn_with_every_warm_configuration(tmp_path: Path) -> None:
    results = json.loads(RUN.read_text())
    bars = chart.bars(results)
    assert [b.label for b in bars] == [
        f"{server}: {what}"
        for server in ("Hypercorn", "Uvicorn")
        for what in (
            "bare hello",
            "HTTP floor, Orva-shaped",
            "relay floor, Python",
            "orvad, Python",
            "relay floor, Node",
            "orvad, Node",
        )
    ]
    orvad_python = next(b for b in bars if b.label == "Uvicorn: orvad, Python")
    assert (orvad_python.req_s, orvad_python.p99_ms) == (
        results["warm_uvicorn"]["orva_python"]["req_s"],
        results["warm_uvicorn"]["orva_python"]["p99_ms"],
    )
    written = chart.draw(results, tmp_path / "run.png")
    assert written == tmp_path / "run.png"
    head = written.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width > 800 and height > 300  # two panels, twelve bars


def test_a_run_without_warm_figures_draws_nothing(tmp_path: Path) -> None:
    assert chart.draw({"date": "2026-12-07", "cold_start": {}}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
