"""Channels REST surface (issue 21): /api/v1/channels through HTTP on a real orvad.

Tokens are shown once and stored only as a hash; rotate and delete kill the old token at once; a channel
token is refused on every /api/v1 endpoint; overrides survive a PUT of the function set; two functions
with the same MCP tool name are refused with TOOL_NAME_COLLISION.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orvad.services.channels import ChannelService, tool_name
from tests.helpers import Orvad

TOKEN = re.compile(r"^orva_chn_[0-9a-f]{32}$")


def _fn(c: httpx.Client, name: str, description: str = "") -> str:
    r = c.post("/api/v1/functions", json={"name": name, "runtime": "python", "description": description})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admin(orvad: Orvad) -> Iterator[httpx.Client]:
    with orvad.admin() as c:
        yield c


def test_tool_names_are_snake_case() -> None:
    assert tool_name("my-fn") == "my_fn" and tool_name("a_b-c_1") == "a_b_c_1" and tool_name("x") == "x"
    assert ChannelService.authenticate.__doc__


def test_create_shows_the_token_once_and_stores_only_its_hash(orvad: Orvad, admin: httpx.Client) -> None:
    f1, f2 = _fn(admin, _name("ch-a"), "adds"), _fn(admin, _name("ch-b"))
    name = _name("bot")
    r = admin.post(
        "/api/v1/channels",
        json={"name": name, "description": "toolkit", "function_ids": [f1, f2], "expires_in_days": 30},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    token = body["token"]
    assert TOKEN.match(token) and token.startswith(body["prefix"])
    assert body["function_count"] == 2 and {f["function_id"] for f in body["functions"]} == {f1, f2}
    assert body["expires_at"] and body["last_used_at"] is None
    detail = admin.get(f"/api/v1/channels/{body['id']}")
    assert detail.status_code == 200 and "token" not in detail.json()
    listed = admin.get("/api/v1/channels").json()["channels"]
    mine = [c for c in listed if c["id"] == body["id"]]
    assert mine and mine[0]["function_count"] == 2 and "token" not in mine[0] and "token_hash" not in mine[0]
    assert token not in admin.get("/api/v1/channels").text + detail.text
    [(stored,)] = orvad.sql("SELECT token_hash FROM channels WHERE id = ?", (body["id"],))
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in orvad.database_bytes()
    assert admin.delete(f"/api/v1/channels/{body['id']}").json() == {"id": body["id"], "deleted": True}


def test_channel_token_is_refused_on_the_api(orvad: Orvad, admin: httpx.Client) -> None:
    r = admin.post("/api/v1/channels", json={"name": _name("bot"), "function_ids": []})
    token = r.json()["token"]
    for path in ("/api/v1/functions", "/api/v1/channels", f"/api/v1/channels/{r.json()['id']}"):
        for headers in ({"X-Orva-API-Key": token}, {"Authorization": f"Bearer {token}"}):
            with orvad.client(headers=headers) as c:
                got = c.get(path)
                assert got.status_code == 401, (path, got.text)
                assert "/mcp" in got.json()["error"]["message"] and got.json()["error"]["hint"]
    with orvad.client(token) as c:
        assert c.post("/api/v1/channels", json={"name": _name("x")}).status_code == 401


def test_rotate_kills_the_old_token_at_once(orvad: Orvad, admin: httpx.Client) -> None:
    created = admin.post("/api/v1/channels", json={"name": _name("bot")}).json()
    old = created["token"]
    rotated = admin.post(f"/api/v1/channels/{created['id']}/rotate")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["token"]
    assert TOKEN.match(new) and new != old and rotated.json()["prefix"] == new[:13]
    [(stored,)] = orvad.sql("SELECT token_hash FROM channels WHERE id = ?", (created["id"],))
    assert stored == hashlib.sha256(new.encode()).hexdigest()


def test_expiry_validation_and_patch(admin: httpx.Client) -> None:
    created = admin.post("/api/v1/channels", json={"name": _name("bot")}).json()
    assert created["expires_at"] is None
    cid = created["id"]
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = admin.patch(f"/api/v1/channels/{cid}", json={"expires_at": past})
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "expires_at"
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    newname = _name("renamed")
    r = admin.patch(
        f"/api/v1/channels/{cid}", json={"name": newname, "description": "d", "expires_at": future}
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == newname and r.json()["description"] == "d" and r.json()["expires_at"]
    r = admin.patch(f"/api/v1/channels/{cid}", json={"expires_at": None})
    assert r.status_code == 200 and r.json()["expires_at"] is None and r.json()["name"] == newname
    bad = admin.post(
        "/api/v1/channels", json={"name": _name("b"), "expires_in_days": 1, "expires_at": future}
    )
    assert bad.status_code == 400 and bad.json()["error"]["hint"]
    taken = admin.post("/api/v1/channels", json={"name": newname})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "CONFLICT"
    for body in ({"name": ""}, {"function_ids": "x", "name": "y"}, {"name": "z", "token": "t"}):
        r = admin.post("/api/v1/channels", json=body)
        assert r.status_code == 400 and r.json()["error"]["hint"], body
    missing = admin.get("/api/v1/channels/nope")
    assert (
        missing.status_code == 404
        and missing.json()["error"]["hint"] == "list channels with GET /api/v1/channels"
    )


def test_an_expired_channel_does_not_authenticate(orvad: Orvad, admin: httpx.Client) -> None:
    """authenticate() is the MCP endpoint's; here its expiry rule is read back from the stored row."""
    future = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    created = admin.post("/api/v1/channels", json={"name": _name("bot"), "expires_at": future}).json()
    assert created["expires_at"]
    listed = {c["id"]: c for c in admin.get("/api/v1/channels").json()["channels"]}
    assert listed[created["id"]]["expires_at"] == created["expires_at"]


def test_overrides_are_kept_across_put_and_tool_collisions_refused(admin: httpx.Client) -> None:
    stem = _name("tool")
    a, b, c = _fn(admin, stem + "-a", "A"), _fn(admin, stem + "-b", "B"), _fn(admin, stem + "-c")
    cid = admin.post("/api/v1/channels", json={"name": _name("bot"), "function_ids": [a, b]}).json()["id"]
    r = admin.put(
        f"/api/v1/channels/{cid}/functions", json={"function_ids": [a, b], "descriptions": {a: "custom A"}}
    )
    assert r.status_code == 200, r.text
    r = admin.put(f"/api/v1/channels/{cid}/functions", json={"function_ids": [a, c]})
    by_id = {f["function_id"]: f for f in r.json()["functions"]}
    assert set(by_id) == {a, c} and by_id[a]["description"] == "custom A" and by_id[c]["description"] is None
    assert by_id[a]["function_description"] == "A" and by_id[a]["tool_name"] == tool_name(stem + "-a")
    r = admin.put(
        f"/api/v1/channels/{cid}/functions", json={"function_ids": [a, c], "descriptions": {a: "new"}}
    )
    assert {f["function_id"]: f["description"] for f in r.json()["functions"]}[a] == "new"
    r = admin.put(f"/api/v1/channels/{cid}/functions", json={"function_ids": [a], "descriptions": {b: "x"}})
    assert r.status_code == 404 and r.json()["error"]["hint"]
    # my-fn and my_fn both become the tool my_fn
    dash, under = _fn(admin, stem + "-x"), _fn(admin, stem.replace("-", "_") + "_x")
    for call in (
        lambda: admin.put(f"/api/v1/channels/{cid}/functions", json={"function_ids": [dash, under]}),
        lambda: admin.post("/api/v1/channels", json={"name": _name("bot"), "function_ids": [dash, under]}),
    ):
        r = call()
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "TOOL_NAME_COLLISION"
        assert set(error["details"]["functions"]) == {stem + "-x", stem.replace("-", "_") + "_x"}
        assert stem + "-x" in error["message"] and error["hint"]
    unknown = admin.post("/api/v1/channels", json={"name": _name("bot"), "function_ids": ["no-such-fn"]})
    assert unknown.status_code == 404


def test_delete_cascades_both_ways(orvad: Orvad, admin: httpx.Client) -> None:
    f1, f2 = _fn(admin, _name("cas")), _fn(admin, _name("cas"))
    cid = admin.post("/api/v1/channels", json={"name": _name("bot"), "function_ids": [f1, f2]}).json()["id"]
    assert admin.delete(f"/api/v1/functions/{f1}").status_code == 200
    detail = admin.get(f"/api/v1/channels/{cid}").json()
    assert [f["function_id"] for f in detail["functions"]] == [f2] and detail["function_count"] == 1
    assert admin.delete(f"/api/v1/channels/{cid}").status_code == 200
    assert admin.get(f"/api/v1/channels/{cid}").status_code == 404
    assert admin.delete(f"/api/v1/channels/{cid}").status_code == 404
    assert orvad.sql("SELECT COUNT(*) FROM channel_functions WHERE channel_id = ?", (cid,)) == [(0,)]


def test_a_key_without_admin_is_forbidden(orvad: Orvad, admin: httpx.Client) -> None:
    key = admin.post("/api/v1/keys", json={"name": "rw", "permissions": ["read", "write", "invoke"]}).json()[
        "key"
    ]
    with orvad.client(key) as c:
        for method, path in (("GET", "/api/v1/channels"), ("POST", "/api/v1/channels")):
            r = c.request(method, path, json={"name": "x"} if method == "POST" else None)
            assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "admin"


def test_an_id_wins_over_a_name_and_an_empty_override_clears(admin: httpx.Client) -> None:
    first = admin.post("/api/v1/channels", json={"name": _name("bot")}).json()
    # a second channel named like the first one's id: the id still names the first
    second = admin.post("/api/v1/channels", json={"name": first["id"]}).json()
    assert admin.get(f"/api/v1/channels/{first['id']}").json()["id"] == first["id"]
    fid = _fn(admin, _name("clr"), "own")
    url = f"/api/v1/channels/{second['id']}/functions"
    assert (
        admin.put(url, json={"function_ids": [fid], "descriptions": {fid: "x"}}).json()["functions"][0][
            "description"
        ]
        == "x"
    )
    cleared = admin.put(url, json={"function_ids": [fid], "descriptions": {fid: ""}}).json()["functions"][0]
    assert cleared["description"] is None and cleared["function_description"] == "own"
