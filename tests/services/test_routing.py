"""Custom routes: the pure table (with property tests) and the API's validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orvad.services.routing import RouteEntry, RouteTable
from tests.deploy_helpers import create_function
from tests.helpers import Orvad, wait_for

segment = st.text(alphabet="abcdefgh-", min_size=1, max_size=4)


def _entry(path: str, fid: str = "f") -> RouteEntry:
    return RouteEntry(id=path, path=path, function_id=fid, methods=None, created_at="")


def test_exact_prefix_and_longest_match() -> None:
    table = RouteTable(
        [_entry("/shop/*", "shop"), _entry("/shop/cart/*", "cart"), _entry("/shop/about", "about")]
    )
    assert table.match("/shop/cart/items/1").route.function_id == "cart"
    assert table.match("/shop/cart/items/1").subpath == "/items/1"
    assert table.match("/shop/about").route.function_id == "about"
    assert table.match("/shop/about").subpath == "/"
    assert table.match("/shop/about/x").route.function_id == "shop"
    assert table.match("/shop").subpath == "/"
    assert table.match("/shopping") is None
    table.remove("/shop/cart/*")
    assert table.match("/shop/cart/x").route.function_id == "shop"


@given(st.lists(segment, min_size=1, max_size=4), st.lists(segment, max_size=3))
def test_prefix_route_sees_the_rest_of_the_path(base: list[str], rest: list[str]) -> None:
    prefix = "/" + "/".join(base)
    table = RouteTable([_entry(prefix + "/*")])
    path = prefix + ("/" + "/".join(rest) if rest else "")
    found = table.match(path)
    assert found is not None and found.subpath == (path[len(prefix) :] or "/")


@given(
    st.lists(st.lists(segment, min_size=1, max_size=3), min_size=1, max_size=6, unique_by=tuple),
    st.lists(segment, min_size=1, max_size=5),
)
def test_the_longest_matching_prefix_wins(prefixes: list[list[str]], path_parts: list[str]) -> None:
    table = RouteTable([_entry("/" + "/".join(p) + "/*") for p in prefixes])
    path = "/" + "/".join(path_parts)
    found = table.match(path)
    candidates = [
        "/" + "/".join(p)
        for p in prefixes
        if path == "/" + "/".join(p) or path.startswith("/" + "/".join(p) + "/")
    ]
    if not candidates:
        assert found is None
    else:
        assert found is not None and found.route.base == max(candidates, key=len)


def test_route_api_validation(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "routed-fn")
        ok = c.post(
            "/api/v1/routes", json={"path": "/webhooks/stripe", "function_id": fn["name"], "methods": "POST"}
        )
        assert (
            ok.status_code == 201 and ok.json()["function_id"] == fn["id"] and ok.json()["methods"] == "POST"
        )
        dup = c.post("/api/v1/routes", json={"path": "/webhooks/stripe", "function_id": fn["id"]})
        assert dup.status_code == 409
        for path in (
            "/api/x",
            "/fn/x",
            "/web/app",
            "/_orva/x",
            "/health",
            "/healthz",
            "/mcp",
            "/metrics/x",
            "/oauth/token",
            "/oauth/anything",
            "/.well-known/oauth-authorization-server",
            "/.well-known/oauth-protected-resource/mcp",
            "relative",
            "/",
            "/pct%20x",
        ):
            r = c.post("/api/v1/routes", json={"path": path, "function_id": fn["id"]})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "path", path
        bad = c.post("/api/v1/routes", json={"path": "/ok", "function_id": fn["id"], "methods": "FETCH"})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "methods"
        missing = c.post("/api/v1/routes", json={"path": "/ok", "function_id": "no-such-fn"})
        assert missing.status_code == 404
        assert c.post("/api/v1/routes", json={"path": "/shop/*", "function_id": fn["id"]}).status_code == 201
        paths = [r["path"] for r in c.get("/api/v1/routes").json()["routes"]]
        assert "/shop/*" in paths and "/webhooks/stripe" in paths
        for ref in (fn["id"], fn["name"]):  # the filter takes an id or a name
            mine = c.get("/api/v1/routes", params={"function_id": ref}).json()["routes"]
            assert sorted(r["path"] for r in mine) == ["/shop/*", "/webhooks/stripe"]
        assert c.get("/api/v1/routes", params={"function_id": "no-such-fn"}).status_code == 404
        assert c.delete("/api/v1/routes", params={"path": "/shop/*"}).status_code == 200
        assert c.delete("/api/v1/routes", params={"path": "/shop/*"}).status_code == 404
        c.delete(f"/api/v1/functions/{fn['id']}")
        assert all(r["function_id"] != fn["id"] for r in c.get("/api/v1/routes").json()["routes"])


def test_pool_config_defaults_partial_updates_and_validation(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "pool-cfg")
        got = c.get("/api/v1/pool/config", params={"function_id": fn["id"]}).json()
        assert {
            k: got[k]
            for k in ("min_warm", "max_warm", "idle_ttl_seconds", "target_concurrency", "scale_to_zero")
        } == {
            "min_warm": 1,
            "max_warm": 16,
            "idle_ttl_seconds": 300,
            "target_concurrency": 1,
            "scale_to_zero": True,
        }
        r = c.put(
            "/api/v1/pool/config", json={"function_id": fn["name"], "max_warm": 4, "scale_to_zero": False}
        )
        assert r.status_code == 200 and (
            r.json()["max_warm"],
            r.json()["scale_to_zero"],
            r.json()["min_warm"],
        ) == (4, False, 1)
        bad = c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 5})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "min_warm"
        bad = c.put("/api/v1/pool/config", json={"function_id": fn["id"], "target_concurrency": 0})
        assert bad.status_code == 400
        key = c.post("/api/v1/keys", json={"name": "w", "permissions": ["read", "write"]}).json()["key"]
    with orvad.client(key) as c:
        denied = c.put("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 2})
        assert denied.status_code == 403  # pool administration needs admin
        assert c.get("/api/v1/pool/config", params={"function_id": fn["id"]}).status_code == 200


@pytest.mark.sandbox
def test_put_route_creates_then_replaces_with_no_gap(orvad: Orvad) -> None:
    import threading

    import httpx

    from tests.deploy_helpers import deploy_inline, wait_deployed

    with orvad.admin() as c:
        fns = []
        for word in ("alpha", "beta"):
            fn = create_function(c, f"put-route-{word}")
            code = f"def handler(e, c):\n    return '{word}'\n"
            assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
            fns.append(fn)
        made = c.put("/api/v1/routes", json={"path": "/swap/*", "function_id": fns[0]["name"]})
        assert made.status_code == 201 and made.json()["function_id"] == fns[0]["id"]
        assert (
            c.post("/api/v1/routes", json={"path": "/swap/*", "function_id": fns[1]["id"]}).status_code == 409
        )

        answers: list[tuple[int, str]] = []
        done = threading.Event()

        def call_while_swapping() -> None:
            with httpx.Client(base_url=orvad.url, timeout=30) as caller:
                while not done.is_set():
                    r = caller.get("/swap/x")
                    answers.append((r.status_code, r.text))

        callers = [threading.Thread(target=call_while_swapping) for _ in range(2)]
        for t in callers:
            t.start()
        try:
            wait_for(lambda: len(answers) >= 2, 30, "the callers' first answers")
            for i in range(20):  # swap back and forth while requests flow
                seen = len(answers)
                wait_for(lambda: len(answers) > seen, 30, "an answer between two swaps")  # noqa: B023
                r = c.put("/api/v1/routes", json={"path": "/swap/*", "function_id": fns[(i + 1) % 2]["id"]})
                assert r.status_code == 200 and r.json()["function_id"] == fns[(i + 1) % 2]["id"]
        finally:
            done.set()
            for t in callers:
                t.join(30)
        assert answers and all(code == 200 and text in ("alpha", "beta") for code, text in answers), [
            a for a in answers if a[0] != 200 or a[1] not in ("alpha", "beta")
        ][:5]
        listed = [r for r in c.get("/api/v1/routes").json()["routes"] if r["path"] == "/swap/*"]
        assert len(listed) == 1 and listed[0]["function_id"] == fns[0]["id"]  # 20 swaps: back to alpha
        bad = c.put("/api/v1/routes", json={"path": "/api/nope", "function_id": fns[0]["id"]})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "path"
        for fn in fns:
            c.delete(f"/api/v1/functions/{fn['id']}")
