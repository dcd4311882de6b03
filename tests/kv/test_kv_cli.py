"""`orva kv list|get|put|delete` against a real orvad (issue 23): values as JSON, strings, bytes from a file
and back byte for byte, TTLs, if-version conflicts, keys that are not path-safe, and errors in orva's words."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "clikv-") as runner:
        yield runner


@pytest.fixture
def fn(cli: Cli) -> str:
    name = f"clikv-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", name, "--runtime", "python")
    return name


def test_kv_lifecycle(cli: Cli, fn: str, tmp_path: Path) -> None:
    assert "greeting: version" in cli.ok("kv", "put", fn, "greeting", '"hi there"').stdout
    assert json.loads(cli.ok("kv", "get", fn, "greeting").stdout) == "hi there"
    cli.ok("kv", "put", fn, "plain", "hello world", "--string", "--ttl", "3600")
    record = cli.json("kv", "get", fn, "plain")
    assert record["value"] == "hello world" and record["expires_at"] is not None
    cli.ok("kv", "put", fn, "config", '{"mode": "fast", "n": [1, 2]}')
    assert json.loads(cli.ok("kv", "get", fn, "config").stdout) == {"mode": "fast", "n": [1, 2]}
    # keys that are not path-safe: slashes, dots, a question mark, spaces, unicode
    odd = ["users/42/name", "..", "../other", "what? #1 %20", "ключ"]
    for i, key in enumerate(odd):
        cli.ok("kv", "put", fn, key, str(i))
    for i, key in enumerate(odd):
        assert (
            cli.json("kv", "get", fn, key)["key"] == key
            and json.loads(cli.ok("kv", "get", fn, key).stdout) == i
        )
    # bytes: from a file, back byte for byte
    blob = bytes(range(256)) * 3
    (tmp_path / "blob.bin").write_bytes(blob)
    cli.ok("kv", "put", fn, "blob", "--file", str(tmp_path / "blob.bin"))
    done = subprocess.run(
        cli.argv("kv", "get", fn, "blob"), env=cli.environ(), capture_output=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == blob
    assert cli.json("kv", "get", fn, "blob")["type"] == "bytes"
    # list: a table, and every page as JSON
    listed = cli.json("kv", "list", fn)
    assert sorted(k["key"] for k in listed) == sorted(["greeting", "plain", "config", "blob", *odd])
    assert [k["key"] for k in cli.json("kv", "list", fn, "--prefix", "users/")] == ["users/42/name"]
    table = cli.ok("kv", "list", fn).stdout
    assert "KEY" in table and "greeting" in table and "bytes" in table
    assert "deleted greeting" in cli.ok("kv", "delete", fn, "greeting").stdout
    line = error_line(cli.fails(1, "kv", "get", fn, "greeting"), "NOT_FOUND")
    assert f"orva kv list {fn}" in line and "/api/v1" not in line


def test_kv_cli_errors_speak_orva(cli: Cli, fn: str) -> None:
    version = cli.json("kv", "put", fn, "c", "1", "--if-version", "0")["version"]
    line = error_line(cli.fails(1, "kv", "put", fn, "c", "2", "--if-version", "0"), "KV_VERSION_CONFLICT")
    assert f"orva kv get {fn} c" in line and "/api/v1" not in line
    cli.ok("kv", "put", fn, "c", "2", "--if-version", str(version))
    line = error_line(cli.fails(1, "kv", "put", fn, "c", "hello"), "VALIDATION")
    assert "--string" in line
    line = error_line(cli.fails(1, "kv", "put", fn, "bad\tkey", "1"), "VALIDATION")
    assert "KEY" in line
    assert "VALUE or --file" in cli.fails(2, "kv", "put", fn, "c")
    line = error_line(cli.fails(1, "kv", "list", "clikv-nope"), "NOT_FOUND")
    assert "orva functions list" in line
