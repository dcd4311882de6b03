"""The code base stays ruff- and mypy-clean and ruff-formatted (DESIGN.md convention 9), the dashboard
prettier-clean (`make lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


# what `ruff format` keeps formatted (make lint checks the same); runtimes/ is the adapters' own style
FORMATTED = ("orvad", "orva_cli", "tests", "bench")


def test_ruff_format() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *FORMATTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        done.stdout + done.stderr + "\n`ruff format " + " ".join(FORMATTED) + "` rewrites them"
    )


def test_mypy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "orvad", "orva_cli"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prettier() -> None:
    prettier = ROOT / "web" / "node_modules" / ".bin" / "prettier"
    assert prettier.exists(), "web/node_modules is missing: `make web` installs it (npm ci)"
    done = subprocess.run(
        [str(prettier), "--check", "src", "build.mjs"],
        cwd=ROOT / "web",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
