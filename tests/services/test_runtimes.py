"""orvad/services/runtimes.py: the catalogue of interpreters this host really has."""

from __future__ import annotations

import subprocess

import yaml

from orvad.services.runtimes import Runtime, RuntimeCatalog, discover
from orvad.services.spawner import ARGV


def test_aliases_point_at_the_newest_version() -> None:
    catalog = RuntimeCatalog(
        [
            Runtime("python3.9", "python", "3.9.18", "/usr/bin/python3.9", "handler.py"),
            Runtime("python3.11", "python", "3.11.2", "/usr/bin/python3.11", "handler.py"),
            Runtime("node20", "node", "20.20.2", "/usr/bin/node", "handler.js"),
        ]
    )
    assert catalog.get("python") == catalog.get("python3.11")  # numeric, not string, order: 3.11 > 3.9
    assert catalog.get("python3.9") is not None and catalog.get("python3.9").version == "3.9.18"  # type: ignore[union-attr]
    assert catalog.get("node") == catalog.get("node20")
    assert catalog.get("ruby") is None and catalog.language_of("ruby") is None
    assert catalog.ids() == ["node", "node20", "python", "python3.11", "python3.9"]
    listed = {r["id"]: r for r in catalog.list()}
    assert listed["python3.11"]["aliases"] == ["python"] and listed["python3.9"]["aliases"] == []
    assert listed["node20"] == {
        "id": "node20",
        "language": "node",
        "version": "20.20.2",
        "interpreter": "/usr/bin/node",
        "default_entrypoint": "handler.js",
        "aliases": ["node"],
        "source": "system",
        "path": "/usr/bin/node",
    }


def test_no_interpreter_means_no_alias() -> None:
    catalog = RuntimeCatalog([])
    assert catalog.get("python") is None and catalog.list() == [] and catalog.ids() == []


def test_discover_reports_what_this_host_has() -> None:
    catalog = discover()
    listed = catalog.list()
    assert {r["language"] for r in listed} == {"python", "node"}  # Debian 12's python3.11 and node 20
    for entry in listed:
        out = subprocess.run([entry["interpreter"], "--version"], capture_output=True, text=True, timeout=10)
        assert entry["version"] in (out.stdout + out.stderr)  # discovered, not assumed
        runtime = catalog.get(entry["id"])
        assert runtime is not None
        manifest = yaml.safe_load((runtime.adapter_dir / "manifest.yaml").read_text())
        assert (runtime.adapter_dir / manifest["adapter"]).is_file()
        assert entry["default_entrypoint"] == manifest["default_entrypoint"]
    assert catalog.get("python").id.startswith("python3.")  # type: ignore[union-attr]
    assert catalog.get("node").id == f"node{catalog.get('node').version.split('.')[0]}"  # type: ignore[union-attr]


def test_manifests_and_the_spawner_start_adapters_the_same_way() -> None:
    catalog = discover()
    for language in ("python", "node"):
        runtime = catalog.get(language)
        assert runtime is not None
        manifest = yaml.safe_load((runtime.adapter_dir / "manifest.yaml").read_text())
        assert tuple(manifest["argv"]) == ARGV[language]


def test_the_python_adapter_starts_without_heavy_imports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Cold starts stay short only while the adapter imports little (docs/PERFORMANCE.md)."""
    import os
    import sys
    from pathlib import Path

    adapter = Path(__file__).resolve().parents[2] / "runtimes" / "python" / "adapter.py"
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    found = discover().get("python")
    python = found.interpreter if found else sys.executable
    run = subprocess.run(
        [python, "-X", "importtime", "-S", "-u", "-B", str(adapter)],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "ORVA_CODE_DIR": str(tmp_path)},
        capture_output=True,
        timeout=60,
    )
    stderr = run.stderr.decode(errors="replace")
    imported = {
        line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")
    }
    assert b'"type":"ready"' in run.stdout, stderr[-2000:]  # it started and loaded the handler
    heavy = {"re", "json", "enum", "asyncio", "importlib.util", "base64", "struct", "traceback", "inspect"}
    assert not heavy & imported, heavy & imported
