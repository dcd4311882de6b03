"""KV through the operator API on a real orvad (issue 23): CRUD, paging, TTL on read and by the sweeper, cas
conflicts, exact totals from concurrent increments through many requests, the 1 MiB limit, bad keys,
permissions, the audit trail, the quota, and a deleted function's keys going with it."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import Orvad, wait_for

MIB = 1024 * 1024


def kv_url(fn: str, key: str | None = None) -> str:
    base = f"/api/v1/functions/{fn}/kv"
    return base if key is None else f"{base}/{quote(key, safe='')}"


@pytest.fixture
def fn(orvad: Orvad) -> Iterator[str]:
    name = f"kv-{uuid.uuid4().hex[:8]}"
    with orvad.admin() as c:
        c.post("/api/v1/functions", json={"name": name, "runtime": "python"}).raise_for_status()
    yield name


def _error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["request_id"], err
    return dict(err)


def test_put_get_list_delete(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        r = c.put(kv_url(fn, "greeting"), json={"value": {"hello": "world", "n": [1, 2.5, None, True]}})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["key"] == "greeting" and first["type"] == "json" and first["expires_at"] is None
        got = c.get(kv_url(fn, "greeting")).json()
        assert got["value"] == {"hello": "world", "n": [1, 2.5, None, True]}
        assert got["version"] == first["version"] and got["size"] == len(
            b'{"hello":"world","n":[1,2.5,null,true]}'
        )
        # every write bumps the version; unicode and slashes in keys, sent encoded or not
        second = c.put(kv_url(fn, "greeting"), json={"value": "hi ✓"}).json()
        assert second["version"] > first["version"]
        assert c.get(kv_url(fn, "greeting")).json()["value"] == "hi ✓"
        c.put(kv_url(fn, "users/42/name"), json={"value": "Ada"}).raise_for_status()
        assert c.get(f"/api/v1/functions/{fn}/kv/users/42/name").json()["value"] == "Ada"
        c.put(kv_url(fn, "../other"), json={"value": 1}).raise_for_status()
        assert c.get(kv_url(fn, "../other")).json()["key"] == "../other"
        # JSON null is a value, not an absence
        c.put(kv_url(fn, "nothing"), json={"value": None}).raise_for_status()
        assert c.get(kv_url(fn, "nothing")).json()["value"] is None
        # bytes: as {"$bytes": base64} in JSON, or raw with another content type
        blob = bytes(range(256))
        c.put(
            kv_url(fn, "blob"), json={"value": {"$bytes": base64.b64encode(blob).decode()}}
        ).raise_for_status()
        got = c.get(kv_url(fn, "blob")).json()
        assert (
            got["type"] == "bytes" and base64.b64decode(got["value"]["$bytes"]) == blob and got["size"] == 256
        )
        raw = c.put(
            kv_url(fn, "raw"), content=b"\x00\xffraw", headers={"Content-Type": "application/octet-stream"}
        )
        assert raw.status_code == 200 and raw.json()["type"] == "bytes", raw.text
        back = c.get(kv_url(fn, "raw"), headers={"Accept": "application/octet-stream"})
        assert back.content == b"\x00\xffraw" and back.headers["x-orva-kv-type"] == "bytes"
        assert back.headers["x-orva-kv-version"] == str(raw.json()["version"])
        listed = c.get(kv_url(fn)).json()
        assert [k["key"] for k in listed["keys"]] == sorted(
            ["greeting", "users/42/name", "../other", "nothing", "blob", "raw"], key=lambda k: k.encode()
        )
        assert listed["next_cursor"] is None and listed["usage"]["keys"] == 6
        assert "value" not in listed["keys"][0]
        assert c.delete(kv_url(fn, "greeting")).json() == {
            "function_id": c.get(f"/api/v1/functions/{fn}").json()["id"],
            "key": "greeting",
            "deleted": True,
        }
        err = _error(c.get(kv_url(fn, "greeting")), 404, "NOT_FOUND")
        assert f"/api/v1/functions/{fn}/kv" in str(err["hint"])
        _error(c.delete(kv_url(fn, "greeting")), 404, "NOT_FOUND")
        _error(c.get(kv_url("no-such-function", "k")), 404, "NOT_FOUND")


def test_paging_by_prefix_and_cursor(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        keys = [f"p/{i:03d}" for i in range(25)] + ["q/1", "o/1", "p", "p0"]
        for k in keys:
            c.put(kv_url(fn, k), json={"value": k}).raise_for_status()
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"prefix": "p/", "limit": "10", **({"cursor": cursor} if cursor else {})}
            page = c.get(kv_url(fn), params=params).json()
            seen += [k["key"] for k in page["keys"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"p/{i:03d}" for i in range(25)] and pages == 3
        everything = c.get(kv_url(fn), params={"limit": "1000"}).json()
        assert [k["key"] for k in everything["keys"]] == sorted(keys)
        _error(c.get(kv_url(fn), params={"limit": "0"}), 400, "VALIDATION")
        _error(c.get(kv_url(fn), params={"limit": "1001"}), 400, "VALIDATION")
        _error(c.get(kv_url(fn), params={"prefix": "a\x01"}), 400, "VALIDATION")


def _rows(orvad: Orvad, fn_id: str) -> list[str]:
    return [str(r[0]) for r in orvad.sql("SELECT key FROM kv WHERE function_id = ? ORDER BY key", (fn_id,))]


def test_ttl_hides_on_read_and_the_sweeper_deletes(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_KV_SWEEP_S": "0.1"})
    with server.admin() as c:
        fn_id = c.post("/api/v1/functions", json={"name": "ttl", "runtime": "python"}).json()["id"]
        short = c.put(kv_url("ttl", "short"), json={"value": 1, "ttl_s": 0.5}).json()
        assert short["expires_at"] is not None
        c.put(kv_url("ttl", "long"), json={"value": 2, "ttl_s": 3600}).raise_for_status()
        c.put(kv_url("ttl", "forever"), json={"value": 3}).raise_for_status()
        assert c.get(kv_url("ttl", "short")).json()["value"] == 1
        wait_for(lambda: c.get(kv_url("ttl", "short")).status_code == 404, 10, "the short key to expire")
        assert [k["key"] for k in c.get(kv_url("ttl")).json()["keys"]] == ["forever", "long"]
        wait_for(lambda: _rows(server, fn_id) == ["forever", "long"], 10, "the sweeper to delete the row")
        # a put without ttl_s clears an expiry; the quota counters follow the sweep
        c.put(kv_url("ttl", "long"), json={"value": 2}).raise_for_status()
        assert c.get(kv_url("ttl", "long")).json()["expires_at"] is None
        assert c.get(kv_url("ttl")).json()["usage"]["keys"] == 2
        _error(c.put(kv_url("ttl", "x"), json={"value": 1, "ttl_s": 0}), 400, "VALIDATION")
        _error(c.put(kv_url("ttl", "x"), json={"value": 1, "ttl_s": "5"}), 400, "VALIDATION")


def test_ttl_hides_on_read_without_the_sweeper(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_KV_SWEEP_S": "86400"})
    with server.admin() as c:
        fn_id = c.post("/api/v1/functions", json={"name": "ttl2", "runtime": "python"}).json()["id"]
        c.put(kv_url("ttl2", "k"), json={"value": 1, "ttl_s": 0.2}).raise_for_status()
        wait_for(lambda: c.get(kv_url("ttl2", "k")).status_code == 404, 10, "the key to expire")
        assert _rows(server, fn_id) == ["k"]  # still stored: only reads hide it
        assert c.get(kv_url("ttl2")).json()["keys"] == []
        _error(c.delete(kv_url("ttl2", "k")), 404, "NOT_FOUND")
        # an expired key counts as absent for if_version 0
        c.put(kv_url("ttl2", "j"), json={"value": 1, "ttl_s": 0.2}).raise_for_status()
        wait_for(lambda: c.get(kv_url("ttl2", "j")).status_code == 404, 10, "the key to expire")
        assert c.put(kv_url("ttl2", "j"), json={"value": 2, "if_version": 0}).status_code == 200


def test_if_version_conflicts(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        created = c.put(kv_url(fn, "c"), json={"value": "a", "if_version": 0})
        assert created.status_code == 200, created.text
        v1 = created.json()["version"]
        err = _error(c.put(kv_url(fn, "c"), json={"value": "b", "if_version": 0}), 409, "KV_VERSION_CONFLICT")
        assert err["details"] == {"key": "c", "version": v1, "expected": 0}
        assert f"/api/v1/functions/{fn}/kv/" in str(err["hint"])
        v2 = c.put(kv_url(fn, "c"), json={"value": "b", "if_version": v1}).json()["version"]
        _error(c.put(kv_url(fn, "c"), json={"value": "z", "if_version": v1}), 409, "KV_VERSION_CONFLICT")
        assert c.get(kv_url(fn, "c")).json()["value"] == "b"
        # delete and create again: a fresh version, so an old if_version cannot win
        c.delete(kv_url(fn, "c")).raise_for_status()
        v3 = c.put(kv_url(fn, "c"), json={"value": "c"}).json()["version"]
        assert v3 > v2
        _error(c.put(kv_url(fn, "c"), json={"value": "d", "if_version": v2}), 409, "KV_VERSION_CONFLICT")
        # raw bodies take it in the query
        raw = c.put(
            kv_url(fn, "c"),
            params={"if_version": str(v3)},
            content=b"x",
            headers={"Content-Type": "text/plain"},
        )
        assert raw.status_code == 200, raw.text
        _error(
            c.put(
                kv_url(fn, "c"),
                params={"if_version": str(v3)},
                content=b"y",
                headers={"Content-Type": "text/plain"},
            ),
            409,
            "KV_VERSION_CONFLICT",
        )


def test_concurrent_conditional_writes_have_one_winner(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        base = c.put(kv_url(fn, "lock"), json={"value": "free"}).json()["version"]

        def attempt(i: int) -> int:
            with orvad.admin() as cc:
                return cc.put(
                    kv_url(fn, "lock"), json={"value": f"owner-{i}", "if_version": base}
                ).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(attempt, range(40)))
        assert sorted(codes) == [200] + [409] * 39
        assert c.get(kv_url(fn, "lock")).json()["value"].startswith("owner-")


def test_value_limit_is_one_mib(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        ok = c.put(
            kv_url(fn, "big"), content=b"x" * MIB, headers={"Content-Type": "application/octet-stream"}
        )
        assert ok.status_code == 200 and ok.json()["size"] == MIB, ok.text
        err = _error(
            c.put(
                kv_url(fn, "big"),
                content=b"x" * (MIB + 1),
                headers={"Content-Type": "application/octet-stream"},
            ),
            413,
            "PAYLOAD_TOO_LARGE",
        )
        assert err["details"] == {"field": "value", "size": MIB + 1, "max": MIB}
        # a JSON string's size is its JSON text: two quotes and the characters
        assert c.put(kv_url(fn, "s"), json={"value": "y" * (MIB - 2)}).status_code == 200
        _error(c.put(kv_url(fn, "s"), json={"value": "y" * (MIB - 1)}), 413, "PAYLOAD_TOO_LARGE")
        b64 = base64.b64encode(b"z" * (MIB + 1)).decode()
        _error(c.put(kv_url(fn, "b"), json={"value": {"$bytes": b64}}), 413, "PAYLOAD_TOO_LARGE")
        assert c.get(kv_url(fn, "big")).json()["size"] == MIB  # the refused writes changed nothing
        assert c.get(kv_url(fn, "s")).json()["size"] == MIB


def test_bad_keys_and_bodies_are_refused(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        for bad in ("a\x00b", "tab\there", "\x7f", "k" * 513, "é" * 257):
            err = _error(c.put(kv_url(fn, bad), json={"value": 1}), 400, "VALIDATION")
            assert "512" in str(err["hint"]), err
            _error(c.get(kv_url(fn, bad)), 400, "VALIDATION")
        assert c.put(kv_url(fn, "k" * 512), json={"value": 1}).status_code == 200
        assert c.put(kv_url(fn, "é" * 256), json={"value": 1}).status_code == 200
        _error(c.put(kv_url(fn, "x"), json={"value": 1, "function_id": "other"}), 400, "VALIDATION")
        _error(c.put(kv_url(fn, "x"), json={"ttl_s": 5}), 400, "VALIDATION")
        _error(c.put(kv_url(fn, "x"), json={"value": {"$bytes": "!!notbase64"}}), 400, "VALIDATION")
        _error(
            c.put(kv_url(fn, "x"), content=b"{", headers={"Content-Type": "application/json"}),
            400,
            "INVALID_JSON",
        )
        _error(c.put(kv_url(fn, "x"), json={"value": 1, "if_version": -1}), 400, "VALIDATION")


def test_incr_through_concurrent_requests_is_exact(orvad: Orvad, fn: str) -> None:
    """The API has no incr: concurrent read-modify-write through if_version retries must still be exact."""
    with orvad.admin() as c:
        c.put(kv_url(fn, "n"), json={"value": 0}).raise_for_status()

    def bump(_: int) -> int:
        tries = 0
        with orvad.admin() as cc:
            while True:
                tries += 1
                got = cc.get(kv_url(fn, "n")).json()
                r = cc.put(kv_url(fn, "n"), json={"value": got["value"] + 1, "if_version": got["version"]})
                if r.status_code == 200:
                    return tries
                assert r.status_code == 409, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bump, range(50)))
    with orvad.admin() as c:
        assert c.get(kv_url(fn, "n")).json()["value"] == 50


def test_permissions_and_audit(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        reader = c.post("/api/v1/keys", json={"name": f"r-{fn}", "permissions": ["read"]}).json()["key"]
        invoker = c.post("/api/v1/keys", json={"name": f"i-{fn}", "permissions": ["invoke"]}).json()["key"]
        c.put(kv_url(fn, "secretish"), json={"value": "v"}).raise_for_status()
    with orvad.client(reader) as r:
        assert r.get(kv_url(fn, "secretish")).json()["value"] == "v"
        assert r.get(kv_url(fn)).status_code == 200
        err = _error(r.put(kv_url(fn, "x"), json={"value": 1}), 403, "FORBIDDEN")
        assert err["details"]["required"] == "write"  # type: ignore[index]
        _error(r.delete(kv_url(fn, "secretish")), 403, "FORBIDDEN")
    with orvad.client(invoker) as i:
        _error(i.get(kv_url(fn, "secretish")), 403, "FORBIDDEN")
        _error(i.get(kv_url(fn)), 403, "FORBIDDEN")
    with orvad.client() as anon:
        _error(anon.get(kv_url(fn)), 401, "UNAUTHORIZED")
    with orvad.admin() as c:
        c.delete(kv_url(fn, "secretish")).raise_for_status()
        rows = c.get("/api/v1/audit-log", params={"path_prefix": f"/api/v1/functions/{fn}/kv"}).json()[
            "entries"
        ]
        paths = [(e["method"], e["path"]) for e in rows]
        assert ("PUT", f"/api/v1/functions/{fn}/kv/secretish") in paths
        assert ("DELETE", f"/api/v1/functions/{fn}/kv/secretish") in paths


def test_quota_and_function_delete(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_KV_MAX_KEYS": "3", "ORVA_KV_MAX_BYTES": str(MIB)})
    with server.admin() as c:
        fn_id = c.post("/api/v1/functions", json={"name": "q", "runtime": "python"}).json()["id"]
        for k in ("a", "b", "c"):
            c.put(kv_url("q", k), json={"value": 1}).raise_for_status()
        err = _error(c.put(kv_url("q", "d"), json={"value": 1}), 409, "KV_QUOTA_EXCEEDED")
        assert err["details"] == {"keys": 4, "bytes": 4 * 2, "max_keys": 3, "max_bytes": MIB}
        assert c.put(kv_url("q", "a"), json={"value": 2}).status_code == 200  # overwrites fit
        c.delete(kv_url("q", "c")).raise_for_status()
        assert c.put(kv_url("q", "d"), json={"value": 1}).status_code == 200
        # expired keys make room at once, before the sweeper comes
        c.delete(kv_url("q", "d")).raise_for_status()
        c.put(kv_url("q", "e"), json={"value": 1, "ttl_s": 0.1}).raise_for_status()
        wait_for(lambda: c.get(kv_url("q", "e")).status_code == 404, 10, "the key to expire")
        assert c.put(kv_url("q", "f"), json={"value": 1}).status_code == 200
        # bytes: the key and value together
        c.delete(kv_url("q", "f")).raise_for_status()
        big = c.put(
            kv_url("q", "g"), content=b"x" * (MIB - 2), headers={"Content-Type": "application/octet-stream"}
        )
        _error(big, 409, "KV_QUOTA_EXCEEDED")
        assert c.get(kv_url("q")).json()["usage"] == {"keys": 2, "bytes": 4, "max_keys": 3, "max_bytes": MIB}
        c.delete(f"/api/v1/functions/{fn_id}").raise_for_status()
        assert _rows(server, fn_id) == []
        assert server.sql("SELECT COUNT(*) FROM kv_usage WHERE function_id = ?", (fn_id,)) == [(0,)]
