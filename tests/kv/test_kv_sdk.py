"""`orva.kv` from handlers through /fn in both runtimes (issue 23), and the attacks on its trust boundary: a
function reaches only its own keys whatever it sends (a function_id argument, keys like ../other, raw
channel calls), huge keys and values are refused without harming orvad, and concurrent compare-and-set
from many invocations has exactly one winner while concurrent increments add up exactly."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

PY = """
import base64, json
from orva import kv, OrvaError
from orva import _channel


def run(req):
    do = req["do"]
    if do == "basic":
        v1 = kv.put("greeting", {"hello": "world"})
        v2 = kv.put("greeting", {"hello": "again"})
        entry = kv.get_entry("greeting")
        kv.put("blob", bytes(range(256)), ttl_s=3600)
        blob = kv.get("blob")
        counts = [kv.incr("n") for _ in range(3)] + [kv.incr("n", by=-5)]
        first = kv.cas("c", "a", 0)
        refused = kv.cas("c", "b", 0)
        second = kv.cas("c", "b", first.version)
        versions = kv.put_many({"m/1": 1, "m/2": [2], "m/3": b"three"})
        many = kv.get_many(["m/1", "m/2", "m/3", "absent"])
        page = kv.list(prefix="m/", limit=2)
        rest = kv.list(prefix="m/", cursor=page.next_cursor)
        gone = kv.delete_many(["m/1", "m/2", "absent"])
        return {
            "v1": v1, "v2": v2, "entry": list(entry), "blob_ok": blob == bytes(range(256)),
            "counts": counts, "cas": [list(first), list(refused), list(second)],
            "versions": sorted(versions), "many": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in many.items()},
            "pages": [list(page), list(rest), rest.next_cursor],
            "entries": [e["key"] for e in page.entries] == list(page) and isinstance(page, list),
            "gone": gone, "deleted": kv.delete("greeting"), "again": kv.delete("greeting"),
            "missing": kv.get("greeting", "default"),
        }
    if do == "put":
        return {"version": kv.put(req["key"], req["value"], ttl_s=req.get("ttl_s"))}
    if do == "get":
        entry = kv.get_entry(req["key"])
        return {"entry": None if entry is None else [entry.value, entry.version]}
    if do == "incr":
        return {"value": kv.incr(req["key"])}
    if do == "cas":
        return {"ok": kv.cas(req["key"], req["value"], req["version"]).ok}
    if do == "list":
        return {"keys": list(kv.list(limit=1000))}
    if do == "raw":
        return {"result": _channel.call(req["op"], req["args"])}
    if do == "huge":
        return {"version": kv.put(req["key"], "x" * req["size"])}


def handler(event, context):
    try:
        return run(json.loads(event["body"]))
    except OrvaError as e:
        return {"error": e.code, "message": e.message}
"""

PY_ASYNC = """
import json
from orva import kv


async def handler(event, context):
    await kv.aput("a", {"x": 1}, ttl_s=60)
    got = await kv.aget("a")
    n = await kv.aincr("n")
    ok = await kv.acas("a", 2, (await kv.aget_entry("a")).version)
    many = await kv.aget_many(["a", "n"])
    listed = await kv.alist()
    return {"got": got, "n": n, "ok": ok.ok, "many": many, "keys": [e["key"] for e in listed.entries] == listed and listed,
            "deleted": await kv.adelete("a")}
"""

NODE = """
const { kv, OrvaError } = require("orva");

async function run(req) {
  switch (req.do) {
    case "basic": {
      const v1 = await kv.put("greeting", { hello: "world" });
      const entry = await kv.getEntry("greeting");
      await kv.put("blob", Buffer.from([0, 1, 255]), { ttlS: 3600 });
      const blob = await kv.get("blob");
      const counts = [await kv.incr("n"), await kv.incr("n"), await kv.incr("n", 10)];
      const first = await kv.cas("c", "a", 0);
      const refused = await kv.cas("c", "b", null);
      const second = await kv.cas("c", "b", first.version);
      await kv.putMany({ "m/1": 1, "m/2": Buffer.from("two") });
      const many = await kv.getMany(["m/1", "m/2", "absent"]);
      const page = await kv.list({ prefix: "m/" });
      return {
        v1, entry: [entry.value, entry.version], blob: [...blob], isBuffer: Buffer.isBuffer(blob), counts,
        cas: [first, refused, second].map((r) => [r.ok, r.version]),
        many: { "m/1": many["m/1"], "m/2": many["m/2"].toString() },
        keys: [...page], isArray: Array.isArray(page), nextCursor: page.nextCursor,
        entries: page.entries.map((e) => e.key), gone: await kv.deleteMany(["m/1", "m/2"]),
        deleted: await kv.delete("greeting"), missing: await kv.get("greeting", "default"),
      };
    }
    case "put": return { version: await kv.put(req.key, req.value, { ttlS: req.ttl_s }) };
    case "get": { const e = await kv.getEntry(req.key); return { entry: e && [e.value, e.version] }; }
    case "incr": return { value: await kv.incr(req.key) };
    case "list": return { keys: [...(await kv.list({ limit: 1000 }))] };
  }
}

exports.handler = async (event) => {
  try {
    return await run(JSON.parse(event.body));
  } catch (e) {
    if (e instanceof OrvaError) return { error: e.code, message: e.message };
    throw e;
  }
};
"""


def _deploy(admin: httpx.Client, name: str, code: str, runtime: str = "python") -> dict[str, Any]:
    fn = create_function(admin, name, runtime, entrypoint="handler.js" if runtime == "node" else "handler.py")
    dep = wait_deployed(admin, deploy_inline(admin, name, code)["id"])
    assert dep["status"] == "succeeded", dep
    return fn


def _call(c: httpx.Client, fn: str, **req: Any) -> Any:
    r = c.post(f"/fn/{fn}/", content=json.dumps(req), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def names() -> Callable[[str], str]:
    stem = uuid.uuid4().hex[:6]
    return lambda what: f"kvsdk-{stem}-{what}"


def test_python_handler_uses_kv(orvad: Orvad, names: Callable[[str], str]) -> None:
    with orvad.admin() as admin:
        fn = names("py")
        _deploy(admin, fn, PY)
        out = _call(admin, fn, do="basic")
        assert (
            out["v2"] > out["v1"] and out["entry"][0] == {"hello": "again"} and out["entry"][1] == out["v2"]
        )
        assert out["blob_ok"] and out["counts"] == [1, 2, 3, -2]
        first, refused, second = out["cas"]
        assert (
            first[0] is True and refused == [False, first[1]] and second[0] is True and second[1] > first[1]
        )
        assert out["versions"] == ["m/1", "m/2", "m/3"]
        assert out["many"] == {"m/1": 1, "m/2": [2], "m/3": "three"}
        assert out["pages"] == [["m/1", "m/2"], ["m/3"], None] and out["entries"] is True
        assert out["gone"] == 2 and out["deleted"] is True and out["again"] is False
        assert out["missing"] == "default"
        # the operator sees what the handler wrote, and the other way round
        blob = admin.get(f"/api/v1/functions/{fn}/kv/blob").json()
        assert blob["type"] == "bytes" and blob["size"] == 256 and blob["expires_at"] is not None
        admin.put(f"/api/v1/functions/{fn}/kv/from-api", json={"value": [1, "two"]}).raise_for_status()
        assert _call(admin, fn, do="get", key="from-api")["entry"][0] == [1, "two"]
        # TTL from a handler: gone on read
        _call(admin, fn, do="put", key="short", value=1, ttl_s=0.3)
        wait_for(lambda: _call(admin, fn, do="get", key="short")["entry"] is None, 10, "the key to expire")


def test_python_async_twins(orvad: Orvad, names: Callable[[str], str]) -> None:
    with orvad.admin() as admin:
        fn = names("pya")
        _deploy(admin, fn, PY_ASYNC)
        out = _call(admin, fn)
        assert out == {
            "got": {"x": 1},
            "n": 1,
            "ok": True,
            "many": {"a": 2, "n": 1},
            "keys": ["a", "n"],
            "deleted": True,
        }


def test_node_handler_uses_kv(orvad: Orvad, names: Callable[[str], str]) -> None:
    with orvad.admin() as admin:
        fn = names("js")
        _deploy(admin, fn, NODE, "node")
        out = _call(admin, fn, do="basic")
        assert out["entry"] == [{"hello": "world"}, out["v1"]]
        assert out["blob"] == [0, 1, 255] and out["isBuffer"] is True
        assert out["counts"] == [1, 2, 12]
        first, refused, second = out["cas"]
        assert first[0] is True and refused == [False, first[1]] and second[0] is True
        assert out["many"] == {"m/1": 1, "m/2": "two"} and out["keys"] == ["m/1", "m/2"]
        assert out["isArray"] is True and out["nextCursor"] is None and out["entries"] == ["m/1", "m/2"]
        assert out["gone"] == 2 and out["deleted"] is True and out["missing"] == "default"
        _call(admin, fn, do="put", key="short", value=1, ttl_s=0.3)
        wait_for(lambda: _call(admin, fn, do="get", key="short")["entry"] is None, 10, "the key to expire")


def test_a_function_cannot_reach_another_functions_keys(orvad: Orvad, names: Callable[[str], str]) -> None:
    with orvad.admin() as admin:
        victim, attacker, js = names("victim"), names("attacker"), names("attacker-js")
        victim_id = _deploy(admin, victim, PY)["id"]
        _deploy(admin, attacker, PY)
        _deploy(admin, js, NODE, "node")
        _call(admin, victim, do="put", key="secret", value="victim's")
        for fn in (attacker, js):
            assert _call(admin, fn, do="get", key="secret")["entry"] is None
            for key in (
                "../secret",
                f"../{victim_id}/secret",
                f"{victim_id}/secret",
                f"{victim}:secret",
                "/secret",
            ):
                assert _call(admin, fn, do="get", key=key)["entry"] is None, key
            _call(admin, fn, do="put", key="secret", value="attacker's")
            assert _call(admin, fn, do="list")["keys"] == ["secret"]
        # raw channel calls naming the victim: refused, never obeyed
        for args in (
            {"key": "secret", "function_id": victim_id},
            {"key": "secret", "function": victim},
            {"key": "secret", "namespace": victim_id},
        ):
            out = _call(admin, attacker, do="raw", op="kv.get", args=args)
            assert out["error"] == "VALIDATION", out
        out = _call(
            admin,
            attacker,
            do="raw",
            op="kv.put",
            args={"key": "secret", "value": 1, "function_id": victim_id},
        )
        assert out["error"] == "VALIDATION"
        out = _call(admin, attacker, do="raw", op="kv.get_many", args={"keys": ["secret"]})
        assert out["result"]["entries"]["secret"]["value"] == "attacker's"
        out = _call(
            admin, attacker, do="raw", op="kv.get", args={"key": {"function_id": victim_id, "key": "secret"}}
        )
        assert out["error"] == "VALIDATION"
        assert _call(admin, attacker, do="raw", op="kv.nope", args={})["error"] == "UNKNOWN_OPERATION"
        # the victim's key is untouched
        assert admin.get(f"/api/v1/functions/{victim}/kv/secret").json()["value"] == "victim's"
        assert [k["key"] for k in admin.get(f"/api/v1/functions/{victim}/kv").json()["keys"]] == ["secret"]


def test_huge_keys_and_values_are_refused_and_orvad_goes_on(
    orvad: Orvad, names: Callable[[str], str]
) -> None:
    mib = 1024 * 1024
    with orvad.admin() as admin:
        fn = names("huge")
        _deploy(admin, fn, PY)
        assert "version" in _call(admin, fn, do="huge", key="ok", size=mib - 2)  # "x"*n is n+2 bytes of JSON
        out = _call(admin, fn, do="huge", key="big", size=mib - 1)
        assert out["error"] == "PAYLOAD_TOO_LARGE", out
        out = _call(admin, fn, do="huge", key="bigger", size=12 * mib)
        assert out.get("error"), out  # PAYLOAD_TOO_LARGE from orvad, or the channel's own frame cap
        out = _call(admin, fn, do="raw", op="kv.get", args={"key": "k" * 100_000})
        assert out["error"] == "VALIDATION"
        out = _call(admin, fn, do="raw", op="kv.get_many", args={"keys": [f"k{i}" for i in range(101)]})
        assert out["error"] == "VALIDATION"
        assert admin.get(f"/api/v1/functions/{fn}/kv/big").status_code == 404
        assert admin.get(f"/api/v1/functions/{fn}/kv/ok").json()["size"] == mib
        assert admin.get("/api/v1/system/health").status_code == 200
        assert _call(admin, fn, do="incr", key="after")["value"] == 1


def test_concurrent_invocations_cas_one_winner_and_incr_exact(
    orvad: Orvad, names: Callable[[str], str]
) -> None:
    with orvad.admin() as admin:
        fn = names("race")
        _deploy(admin, fn, PY)
        admin.put("/api/v1/pool/config", json={"function_id": fn, "max_warm": 8}).raise_for_status()
        base = _call(admin, fn, do="put", key="lock", value="free")["version"]

        def attempt(i: int) -> bool:
            with orvad.admin() as c:
                return bool(_call(c, fn, do="cas", key="lock", value=f"owner-{i}", version=base)["ok"])

        def bump(_: int) -> int:
            with orvad.admin() as c:
                return int(_call(c, fn, do="incr", key="hits")["value"])

        with ThreadPoolExecutor(16) as pool:
            wins = list(pool.map(attempt, range(30)))
            values = list(pool.map(bump, range(60)))
        assert wins.count(True) == 1
        assert sorted(values) == list(range(1, 61))
        assert admin.get(f"/api/v1/functions/{fn}/kv/hits").json()["value"] == 60
