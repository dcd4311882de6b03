"""Secrets: names out, values in, AES-GCM at rest, never in responses or logs."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import pytest

from orvad.sealing import Unsealable
from orvad.services.secrets import open_sealed, seal
from tests.deploy_helpers import create_function
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

SECRET = "sk_live_very-secret-value-4242"


def test_secret_values_never_leave_and_are_encrypted_at_rest(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "sec-fn")
        r = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "STRIPE_KEY", "value": SECRET})
        assert r.status_code == 200 and SECRET not in r.text
        listed = c.get(f"/api/v1/functions/{fn['id']}/secrets")
        assert [s["key"] for s in listed.json()["secrets"]] == ["STRIPE_KEY"] and SECRET not in listed.text
        assert SECRET not in c.get(f"/api/v1/functions/{fn['id']}").text
        bad = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "bad key", "value": SECRET})
        assert bad.status_code == 400 and SECRET not in bad.text
        too_big = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "BIG", "value": "x" * 40_000})
        assert too_big.status_code == 400 and too_big.json()["error"]["details"]["field"] == "value"
        assert c.delete(f"/api/v1/functions/{fn['id']}/secrets/NOPE").status_code == 404
    server.stop()
    key_file = server.data_dir / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored = server.database_bytes()  # orva.db and its WAL, or pg_dump's text (a BYTEA column as hex)
    assert SECRET.encode() not in stored and SECRET.encode().hex().encode() not in stored
    assert SECRET not in server.stderr() and SECRET not in server.stdout()

    again = server.start()  # the same data dir and database, restarted
    with again.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}/secrets").json()["secrets"][0]["key"] == "STRIPE_KEY"
        assert c.delete(f"/api/v1/functions/{fn['id']}/secrets/STRIPE_KEY").status_code == 200
        assert c.get(f"/api/v1/functions/{fn['id']}/secrets").json()["secrets"] == []


def test_ciphertext_is_bound_to_function_and_key() -> None:
    master = bytes(range(32))
    nonce, ct = seal(master, "fn-a", "KEY", "value")
    assert open_sealed(master, "fn-a", "KEY", nonce, ct) == "value"
    for fid, key in (("fn-b", "KEY"), ("fn-a", "OTHER")):
        with pytest.raises(Unsealable):
            open_sealed(master, fid, key, nonce, ct)


def test_rotate_master_key_keeps_every_secret(make_orvad: Callable[..., Orvad]) -> None:
    import subprocess
    import sys

    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "rot-fn")
        for i in range(5):
            c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": f"K{i}", "value": f"value-{i}"})
        dep = c.post(
            f"/api/v1/functions/{fn['id']}/deploy-inline",
            json={
                "code": "import os\n\ndef handler(e, c):\n    return [os.environ.get(f'K{i}') for i in range(5)]\n"
            },
        )
        from tests.deploy_helpers import wait_deployed

        assert wait_deployed(c, dep.json()["id"])["status"] == "succeeded"
    server.stop()
    old_key = (server.data_dir / "master.key").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "orvad", "rotate-master-key", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **server.database_env()},
    )
    assert done.returncode == 0 and "re-encrypted 5 secret(s)" in done.stdout, (done.stdout, done.stderr)
    assert (server.data_dir / "master.key").read_text() != old_key
    assert stat.S_IMODE((server.data_dir / "master.key").stat().st_mode) == 0o600
    again = server.start()  # the same data dir and database, restarted
    from tests.helpers import wait_for

    with again.admin() as c:
        wait_for(lambda: c.get(f"/fn/{fn['id']}").status_code == 200, 60, "the function to serve")
        answer = c.get(f"/fn/{fn['id']}")
        assert answer.json() == [f"value-{i}" for i in range(5)], answer.text


def test_nul_bytes_are_refused_and_a_stored_one_names_its_key(make_orvad: Callable[..., Orvad]) -> None:
    """An environment cannot carry NUL: the API refuses it, and a value stored before that rule
    fails the spawn with its key (409), not every request with 502 'embedded null byte'."""
    import json

    from tests.deploy_helpers import deploy_inline, wait_deployed

    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "nul-fn")
        bad_secret = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "TOKEN", "value": "a\x00b"})
        assert bad_secret.status_code == 400, bad_secret.text
        assert (
            bad_secret.json()["error"]["details"]["key"] == "TOKEN"
            and "NUL" in bad_secret.json()["error"]["message"]
        )
        bad_env = c.put(f"/api/v1/functions/{fn['id']}", json={"env_vars": {"MODE": "x\x00y"}})
        assert bad_env.status_code == 400 and "MODE" in bad_env.json()["error"]["message"], bad_env.text
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["env_vars"] == {}
        dep = deploy_inline(c, fn["id"], "def handler(event, context):\n    return 'ok'\n")
        assert wait_deployed(c, dep["id"])["status"] == "succeeded"
    server.stop()
    server.sql(  # a row written by an older orvad
        "UPDATE functions SET env_vars = ? WHERE id = ?", (json.dumps({"MODE": "x\x00y"}), fn["id"])
    )
    again = server.start()  # the same data dir and database, restarted
    with again.admin() as c:
        r = c.post(f"/fn/{fn['id']}/", content=b"")
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["details"]["key"] == "MODE" and "NUL" in err["message"] and "env_vars" in err["hint"]


def test_names_the_hosts_loader_reads_are_refused(make_orvad: Callable[..., Orvad]) -> None:
    """Found by the red-team pass: a function's variables are, for a moment, the environment of root's
    nsjail on the host, so env_vars {"LD_PRELOAD": "<its code>/evil.so"} ran the tenant's library as root.
    Names the loader and glibc read are refused as env vars and secrets, and one stored by an older orvad
    fails the spawn (409) instead of reaching nsjail; PATH stays settable (host programs start by absolute path)."""
    import json

    from tests.deploy_helpers import deploy_inline, wait_deployed

    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "loader-names")
        for name in (
            "LD_PRELOAD",
            "ld_library_path",
            "LD_AUDIT",
            "GLIBC_TUNABLES",
            "GCONV_PATH",
            "MALLOC_ARENA_MAX",
            "TMPDIR",
        ):
            r = c.put(f"/api/v1/functions/{fn['id']}", json={"env_vars": {name: "/x"}})
            assert r.status_code == 400 and name in r.json()["error"]["message"], (name, r.text)
            r = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": name, "value": "/x"})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "key", (name, r.text)
        ok = c.put(f"/api/v1/functions/{fn['id']}", json={"env_vars": {"PATH": "/code/bin:/usr/bin"}})
        assert ok.status_code == 200, ok.text
        dep = deploy_inline(
            c, fn["id"], "import os\ndef handler(event, context):\n    return os.environ['PATH']\n"
        )
        assert wait_deployed(c, dep["id"])["status"] == "succeeded"
        assert c.post(f"/fn/{fn['id']}/").text == "/code/bin:/usr/bin"
    server.stop()
    server.sql(  # a row written before the rule
        "UPDATE functions SET env_vars = ? WHERE id = ?",
        (json.dumps({"LD_PRELOAD": "/tmp/x.so"}), fn["id"]),
    )
    again = server.start()  # the same data dir and database, restarted
    with again.admin() as c:
        r = c.post(f"/fn/{fn['id']}/")
        assert r.status_code == 409 and r.json()["error"]["details"]["key"] == "LD_PRELOAD", r.text


def test_the_sandbox_argv_never_hands_loader_names_to_nsjail_and_starts_nsenter_by_path() -> None:
    import pytest

    from orvad.host.sandbox import HostFacts, SandboxSpec, build_invocation

    host = HostFacts("/usr/bin/nsjail", "v1", "/policy.kafel")
    spec = SandboxSpec(
        argv=("/usr/bin/true",),
        code_dir="/code",
        binds=(),
        memory_mb=64,
        cpus=1.0,
        netns="orva1e1",
        network="egress",
        env={"PATH": "/evil"},
    )
    inv = build_invocation(spec, host)
    assert inv.argv[0] == "/usr/bin/nsenter" and inv.env["PATH"] == "/evil"
    with pytest.raises(ValueError):
        build_invocation(
            SandboxSpec(
                argv=("/usr/bin/true",),
                code_dir="/code",
                binds=(),
                memory_mb=64,
                cpus=1.0,
                env={"LD_PRELOAD": "/code/evil.so"},
            ),
            host,
        )
