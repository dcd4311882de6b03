"""A built wheel carries every template's files, and the catalog loads from it (importlib.resources) the
same as from the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from orvad.templates import catalog

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_catalog(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=180,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("orva-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    probe = (
        "import json; from orvad.templates import catalog;"
        "print(json.dumps({n: t.to_json() for n, t in catalog().items()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    shipped = json.loads(out)
    assert shipped == {name: t.to_json() for name, t in catalog().items()}
    assert "Pillow" in shipped["image-thumbnail-python"]["files"]["requirements.txt"]
