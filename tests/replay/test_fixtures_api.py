"""Saved test requests (fixtures, issue 23) through the API: create/list/get (by id or name)/replace/delete,
every field's validation with details.field and a hint, names unique per function, the 100-per-function and
1 MiB limits, credential headers refused (a fixture never stores one), read vs write permissions, and the
fixtures going with their function. No worker runs here."""

from __future__ import annotations

import base64

import pytest

from tests.deploy_helpers import create_function
from tests.helpers import Orvad

BASE = "/api/v1/functions/fx-crud/fixtures"


def test_fixture_crud(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "fx-crud")
        assert c.get(BASE).json() == {"fixtures": [], "max": 100}
        r = c.post(
            BASE,
            json={
                "name": "happy path",
                "method": "put",
                "path": "/orders/7",
                "query": "?full=1",
                "headers": {"Content-Type": "application/json", "X-Trace": "a"},
                "body": '{"n": 1}',
                "description": "the usual order",
            },
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["function_id"] == fn["id"] and made["name"] == "happy path" and made["method"] == "PUT"
        assert made["query"] == "full=1" and made["headers"] == {
            "content-type": "application/json",
            "x-trace": "a",
        }
        assert made["body"] == '{"n": 1}' and made["body_encoding"] == "text"
        # binary bodies travel as base64 both ways; defaults for what is left out
        raw = bytes(range(256))
        r = c.post(
            BASE, json={"name": "bin", "body": base64.b64encode(raw).decode(), "body_encoding": "base64"}
        )
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["body_encoding"] == "base64" and base64.b64decode(got["body"]) == raw
        assert (got["method"], got["path"], got["query"], got["headers"], got["description"]) == (
            "POST",
            "/",
            "",
            {},
            "",
        )
        # list by name; get by id and by name
        assert [f["name"] for f in c.get(BASE).json()["fixtures"]] == ["bin", "happy path"]
        assert c.get(f"{BASE}/{made['id']}").json()["name"] == "happy path"
        assert c.get(f"{BASE}/happy%20path").json()["id"] == made["id"]
        assert c.get(f"/api/v1/functions/{fn['id']}/fixtures/bin").json()["id"] == got["id"]
        # a taken name: 409 on create and on a rename
        r = c.post(BASE, json={"name": "bin"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT", r.text
        r = c.put(f"{BASE}/{made['id']}", json={"name": "bin"})
        assert r.status_code == 409 and "fixtures/bin" in r.json()["error"]["hint"]
        # replace: every field, a field left out takes its default
        r = c.put(f"{BASE}/happy%20path", json={"name": "renamed", "method": "GET"})
        assert r.status_code == 200, r.text
        put = r.json()
        assert put["id"] == made["id"] and put["created_at"] == made["created_at"]
        assert (put["name"], put["method"], put["body"], put["headers"]) == ("renamed", "GET", "", {})
        # another function's fixture is not this one's
        create_function(c, "fx-other")
        assert c.get(f"/api/v1/functions/fx-other/fixtures/{made['id']}").status_code == 404
        # delete
        r = c.delete(f"{BASE}/renamed")
        assert r.status_code == 200 and r.json() == {
            "function_id": fn["id"],
            "id": made["id"],
            "name": "renamed",
            "deleted": True,
        }
        r = c.get(f"{BASE}/renamed")
        assert r.status_code == 404 and "GET /api/v1/functions/fx-crud/fixtures" in r.json()["error"]["hint"]
        assert c.delete(f"{BASE}/renamed").status_code == 404
        assert c.get("/api/v1/functions/nope/fixtures").status_code == 404
        # they go with their function
        assert c.delete("/api/v1/functions/fx-crud").status_code in (200, 204)
        create_function(c, "fx-crud")
        assert c.get(BASE).json()["fixtures"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": " lead"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "method": "BREW"}, "method"),
        ({"name": "a", "method": 1}, "method"),
        ({"name": "a", "path": "no-slash"}, "path"),
        ({"name": "a", "path": "/a?b"}, "path"),
        ({"name": "a", "path": "/" + "p" * 2048}, "path"),
        ({"name": "a", "path": "/a\nb"}, "path"),
        ({"name": "a", "query": "a b"}, "query"),
        ({"name": "a", "query": "a#b"}, "query"),
        ({"name": "a", "query": "q" * 4097}, "query"),
        ({"name": "a", "headers": []}, "headers"),
        ({"name": "a", "headers": {"bad name": "v"}}, "headers"),
        ({"name": "a", "headers": {"x": "line\nbreak"}}, "headers"),
        ({"name": "a", "headers": {"x": 1}}, "headers"),
        ({"name": "a", "headers": {"x": "v" * 8193}}, "headers"),
        ({"name": "a", "headers": {f"h{i}": "v" for i in range(51)}}, "headers"),
        ({"name": "a", "body": {"json": "object"}}, "body"),
        ({"name": "a", "body": "!!!", "body_encoding": "base64"}, "body"),
        ({"name": "a", "body": "x", "body_encoding": "hex"}, "body"),
        ({"name": "a", "body": "x" * ((1 << 20) + 1)}, "body"),
        ({"name": "a", "description": "d" * 1001}, "description"),
    ],
)
def test_fixture_validation(orvad: Orvad, body: dict, field: str) -> None:  # type: ignore[type-arg]
    with orvad.admin() as c:
        if c.get("/api/v1/functions/fx-valid").status_code == 404:
            create_function(c, "fx-valid")
        r = c.post("/api/v1/functions/fx-valid/fixtures", json=body)
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "VALIDATION" and error["details"]["field"] == field and error["hint"]
        assert c.get("/api/v1/functions/fx-valid/fixtures").json()["fixtures"] == []


def test_fixture_limits_and_credentials(orvad: Orvad) -> None:
    with orvad.admin() as c:
        create_function(c, "fx-limits")
        base = "/api/v1/functions/fx-limits/fixtures"
        # exactly 1 MiB of body is fine
        r = c.post(base, json={"name": "big", "body": "x" * (1 << 20)})
        assert r.status_code == 201, r.text[:300]
        # a fixture never stores a credential, whatever its case
        for name in (
            "Authorization",
            "COOKIE",
            "X-Orva-API-Key",
            "x-api-key",
            "Stripe-Signature",
            "X-Auth-Token",
        ):
            r = c.post(base, json={"name": "cred", "headers": {name: "secret-value"}})
            assert r.status_code == 400, (name, r.text)
            error = r.json()["error"]
            assert error["details"]["field"] == "headers" and "credential" in error["message"]
            assert "secret-value" not in r.text
        for i in range(99):
            assert c.post(base, json={"name": f"f{i:03d}"}).status_code == 201
        r = c.post(base, json={"name": "one-too-many"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["details"] == {"max": 100} and "DELETE" in r.json()["error"]["hint"]
        assert len(c.get(base).json()["fixtures"]) == 100


def test_fixture_permissions(orvad: Orvad) -> None:
    with orvad.admin() as c:
        create_function(c, "fx-perm")
        c.post("/api/v1/functions/fx-perm/fixtures", json={"name": "seen"}).raise_for_status()
        reader = c.post("/api/v1/keys", json={"name": "fx-read", "permissions": ["read"]}).json()["key"]
        invoker = c.post("/api/v1/keys", json={"name": "fx-inv", "permissions": ["invoke"]}).json()["key"]
    with orvad.client(reader) as r:
        assert [f["name"] for f in r.get("/api/v1/functions/fx-perm/fixtures").json()["fixtures"]] == ["seen"]
        for method, path in (("POST", ""), ("PUT", "/seen"), ("DELETE", "/seen")):
            answer = r.request(method, f"/api/v1/functions/fx-perm/fixtures{path}", json={"name": "x"})
            assert answer.status_code == 403 and answer.json()["error"]["details"]["required"] == "write"
    with orvad.client(invoker) as i:
        assert i.get("/api/v1/functions/fx-perm/fixtures").status_code == 403
    with orvad.client() as anonymous:
        assert anonymous.get("/api/v1/functions/fx-perm/fixtures").status_code == 401
