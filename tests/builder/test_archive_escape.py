"""Hostile deploy archives: links chained to leave the tree, hard links, `..` and absolute names, bombs.

Each archive targets a folder outside the data dir (the 'host path'); the deployment must fail with a
message naming the entry, nothing may appear in that folder, the old version keeps serving, and the
failed deployment can never be rolled back to.
"""

from __future__ import annotations

import io
import lzma
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

PY = "def handler(event, context):\n    return {'v': %d}\n"
DEPTH = 40  # more `..` than any tmp dir is deep: `..` of / is /


def _tar(entries: list[tuple[str, str, str | bytes]]) -> bytes:
    """entries: (kind, name, data-or-link-target) with kind in file | dir | sym | hard."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.linkname = str(payload)
            tar.addfile(info)
    return buf.getvalue()


def _zip(entries: list[tuple[str, str, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for kind, name, payload in entries:
            info = zipfile.ZipInfo(name)
            if kind == "sym":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, payload)
    return buf.getvalue()


def _chain(outside: Path) -> list[tuple[str, str, str]]:
    """`a -> .`, then `a/a/.../a/x -> ../../...` (textually inside), then `x/<outside>/pwned`."""
    deep = "/".join(["a"] * DEPTH)
    return [
        ("sym", "a", "."),
        ("sym", f"{deep}/x", "/".join([".."] * DEPTH)),
        ("file", f"x{outside}/pwned", "owned"),
        ("file", "handler.py", PY % 9),
    ]


def _variants(outside: Path) -> dict[str, tuple[bytes, str]]:
    rel_up = "/".join([".."] * DEPTH) + str(outside)
    return {
        "chain-tar": (_tar(_chain(outside)), "link"),  # type: ignore[arg-type]
        "chain-zip": (_zip(_chain(outside)), "link"),
        "link-then-file-absolute": (
            _tar([("sym", "l", str(outside)), ("file", "l/pwned", "owned"), ("file", "handler.py", PY % 9)]),
            "link",
        ),
        "link-then-file-up": (
            _tar([("sym", "l", rel_up), ("file", "l/pwned", "owned"), ("file", "handler.py", PY % 9)]),
            "link",
        ),
        "link-inside-then-file": (
            _tar(
                [
                    ("dir", "sub", ""),
                    ("sym", "l", "sub"),
                    ("file", "l/pwned", "owned"),
                    ("file", "handler.py", PY % 9),
                ]
            ),
            "link",
        ),
        "link-replaced-by-dir": (
            _tar(
                [
                    ("sym", "d", str(outside)),
                    ("dir", "d", ""),
                    ("file", "d/pwned", "owned"),
                    ("file", "handler.py", PY % 9),
                ]
            ),
            "link",
        ),
        "hard-link": (
            _tar([("hard", "h", str(outside / "victim")), ("file", "handler.py", PY % 9)]),
            "hard link",
        ),
        "absolute-name": (
            _tar([("file", f"{outside}/pwned", "owned"), ("file", "handler.py", PY % 9)]),
            "absolute",
        ),
        "dotdot-name": (_tar([("file", f"{rel_up}/pwned", "owned"), ("file", "handler.py", PY % 9)]), ".."),
    }


VARIANTS = list(_variants(Path("/x")))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.sandbox
def test_hostile_archive_fails_and_writes_nothing_outside(orvad: Orvad, tmp_path: Path, variant: str) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "victim").write_text("host file")
    archive, reason = _variants(outside)[variant]
    with orvad.admin() as c:
        fn = create_function(c, f"hostile-{variant}")
        good = wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", archive)})
        assert r.status_code == 202, r.text
        bad = wait_deployed(c, r.json()["id"])
        assert bad["status"] == "failed", bad
        assert reason in bad["error_message"], bad["error_message"]
        assert sorted(p.name for p in outside.rglob("*")) == ["victim"], "the archive wrote outside the tree"
        assert (outside / "victim").read_text() == "host file"
        after = c.get(f"/api/v1/functions/{fn['id']}").json()
        assert after["active_deployment_id"] == good["id"]
        assert c.get(f"/fn/{fn['id']}").json() == {"v": 1}
        # the hostile version can never be activated later
        rb = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": bad["id"]})
        assert rb.status_code == 400 and "did not succeed" in rb.json()["error"]["message"]
        assert sorted(p.name for p in outside.rglob("*")) == ["victim"]


def _xz_bomb(declared: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    """A .tar.xz of about 2.5 MB whose one member claims (and holds) `declared` bytes of zeros.

    xz streams may be concatenated, so one compressed 16 MiB block of zeros is repeated. `kind`
    XHDTYPE makes the member a pax header, which a tar reader loads whole before any size check."""
    block = 16 << 20
    header = tarfile.TarInfo("handler.py")
    header.size = declared
    header.type = kind
    head = header.tobuf(format=tarfile.GNU_FORMAT)
    first = lzma.compress(head + bytes(block - len(head)), preset=0)
    rest = lzma.compress(bytes(block), preset=0)
    return first + rest * (declared // block)


@pytest.mark.parametrize(
    ("declared", "kind"),
    [(16 << 30, tarfile.REGTYPE), (1 << 30, tarfile.XHDTYPE)],
    ids=["16GiB-member", "1GiB-pax-header"],
)
def test_xz_bomb_fails_fast(orvad: Orvad, declared: int, kind: bytes) -> None:
    bomb = _xz_bomb(declared, kind)
    assert len(bomb) < 3_000_000
    with orvad.admin() as c:
        fn = create_function(c, f"xz-bomb-{kind.decode()}")
        began = time.monotonic()
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=bomb,
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == 202, r.text
        bad = wait_deployed(c, r.json()["id"], deadline_s=60)
        took = time.monotonic() - began
        assert bad["status"] == "failed", bad
        assert "the limit is" in bad["error_message"] or "compression bomb" in bad["error_message"], bad
        assert took < 5, (
            f"the bomb held the build for {took:.1f} s: it was decompressed before the cap was checked"
        )


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_ratio_past_200_is_refused_but_small_repetitive_archives_deploy(orvad: Orvad, kind: str) -> None:
    """48 MiB of zeros is under the 256 MiB byte cap but packs about 1000x: refused as a bomb while it
    decompresses; 8 MiB of zeros (under the 32 MiB floor) deploys."""

    def pack(size: int) -> bytes:
        handler = "def handler(event, context):\n    return 'ok'\n"
        if kind == "zip":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("handler.py", handler)
                zf.writestr("zeros.bin", bytes(size))
            return buf.getvalue()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in (("handler.py", handler.encode()), ("zeros.bin", bytes(size))):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    with orvad.admin() as c:
        fn = create_function(c, f"ratio-{kind.replace('.', '-')}")
        for size, expected in ((48 << 20, "failed"), (8 << 20, "succeeded")):
            r = c.post(
                f"/api/v1/functions/{fn['id']}/deploy",
                content=pack(size),
                headers={"content-type": "application/octet-stream"},
            )
            assert r.status_code == 202, r.text
            done = wait_deployed(c, r.json()["id"], deadline_s=60)
            assert done["status"] == expected, done
            if expected == "failed":
                assert "compression bomb" in done["error_message"], done


def test_entry_count_is_capped(orvad: Orvad) -> None:
    entries: list[tuple[str, str, str | bytes]] = [("file", f"f{i}", b"") for i in range(10_001)]
    with orvad.admin() as c:
        fn = create_function(c, "many-entries")
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", _tar(entries))})
        bad = wait_deployed(c, r.json()["id"])
        assert bad["status"] == "failed" and "entries; the limit is 10000" in bad["error_message"], bad


def test_archive_without_the_entrypoint_fails(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "no-entrypoint")
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            files={"file": ("x.tgz", _tar([("file", "main.py", "x")]))},
        )
        bad = wait_deployed(c, r.json()["id"])
        assert bad["status"] == "failed" and "handler.py not found" in bad["error_message"], bad
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["status"] == "error"


@pytest.mark.parametrize(
    "archive",
    [
        _tar([("file", "handler.py", "a"), ("file", "handler.py", "b")]),
        _tar([("file", "lib", "a"), ("file", "lib/x.py", "b"), ("file", "handler.py", "c")]),
        b"\x1f\x8b" + b"garbage" * 100,
    ],
)
def test_archive_errors_never_show_host_paths(orvad: Orvad, archive: bytes) -> None:
    with orvad.admin() as c:
        fn = create_function(c, f"no-paths-{abs(hash(archive)) % 10**8}")
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", archive)})
        bad = wait_deployed(c, r.json()["id"])
        assert bad["status"] == "failed"
        message = bad["error_message"]
        assert str(orvad.data_dir) not in message and "/staging/" not in message and "/tmp/" not in message, (
            message
        )
        logs = c.get(f"/api/v1/deployments/{bad['id']}/logs").json()["lines"]
        assert all(str(orvad.data_dir) not in ln["line"] for ln in logs)


@pytest.mark.sandbox
def test_unpacked_tree_is_owned_by_root_and_read_only_for_the_jail(orvad: Orvad) -> None:
    tgz = _tar([("file", "myfn/handler.py", PY % 5), ("file", "myfn/lib/util.py", "X = 1\n")])
    with orvad.admin() as c:
        fn = create_function(c, "unpacked-modes")
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", tgz)})
        dep = wait_deployed(c, r.json()["id"])
        assert dep["status"] == "succeeded", dep
        version = orvad.data_dir / "functions" / fn["id"] / "versions" / dep["code_hash"]
        for path in [version, *version.rglob("*")]:
            st = path.lstat()
            assert st.st_uid == 0 and not st.st_mode & 0o022, (path, oct(st.st_mode), st.st_uid)
        assert not (version / ".orva-built").exists(), "the built marker lives beside the tree, not in it"
        assert httpx.get(f"{orvad.url}/fn/{fn['id']}").json() == {"v": 5}
