"""Function records over HTTP: create with defaults, validation naming the field, update, list, delete."""

from __future__ import annotations

import pytest

from tests.helpers import Orvad


def _create(c, **body):  # type: ignore[no-untyped-def]
    r = c.post("/api/v1/functions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_with_contract_defaults(orvad: Orvad) -> None:
    with orvad.admin() as c:
        py = _create(c, name="defaults-py", runtime="python")
        assert (py["memory_mb"], py["cpus"], py["timeout_ms"]) == (128, 1.0, 30000)
        assert (py["network_mode"], py["auth_mode"], py["entrypoint"], py["env_vars"]) == (
            "none",
            "none",
            "handler.py",
            {},
        )
        assert py["status"] == "created" and py["active_deployment_id"] is None
        node = _create(c, name="defaults-node", runtime="node")
        assert node["entrypoint"] == "handler.js"
        by_name = c.get("/api/v1/functions/defaults-py")
        assert by_name.status_code == 200 and by_name.json()["id"] == py["id"]
        assert c.get(f"/api/v1/functions/{py['id']}").json()["name"] == "defaults-py"
        dup = c.post("/api/v1/functions", json={"name": "defaults-py", "runtime": "python"})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "CONFLICT"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"runtime": "python"}, "name"),
        ({"name": "Bad_Name", "runtime": "python"}, "name"),
        ({"name": "9starts-with-digit", "runtime": "python"}, "name"),
        ({"name": "ok", "runtime": "cobol"}, "runtime"),
        ({"name": "ok", "runtime": "python", "memory_mb": 8}, "memory_mb"),
        ({"name": "ok", "runtime": "python", "memory_mb": 5000}, "memory_mb"),
        ({"name": "ok", "runtime": "python", "cpus": 0.01}, "cpus"),
        ({"name": "ok", "runtime": "python", "cpus": 64}, "cpus"),
        ({"name": "ok", "runtime": "python", "timeout_ms": 50}, "timeout_ms"),
        ({"name": "ok", "runtime": "python", "timeout_ms": "30000"}, "timeout_ms"),
        ({"name": "ok", "runtime": "python", "network_mode": "host"}, "network_mode"),
        ({"name": "ok", "runtime": "python", "auth_mode": "password"}, "auth_mode"),
        ({"name": "ok", "runtime": "python", "env_vars": {"1BAD": "x"}}, "env_vars"),
        ({"name": "ok", "runtime": "python", "env_vars": {"ORVA_X": "x"}}, "env_vars"),
        ({"name": "ok", "runtime": "python", "env_vars": {"A": 1}}, "env_vars"),
        ({"name": "ok", "runtime": "python", "entrypoint": "../escape.py"}, "entrypoint"),
        ({"name": "ok", "runtime": "python", "entrypoint": "handler.js"}, "entrypoint"),
        ({"name": "ok", "runtime": "python", "concurrency_policy": "drop"}, "concurrency_policy"),
    ],
)
def test_every_field_is_validated(orvad: Orvad, body: dict, field: str) -> None:
    with orvad.admin() as c:
        r = c.post("/api/v1/functions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "VALIDATION" and err["details"]["field"] == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (rb'{"name": "sur", "runtime": "python", "env_vars": {"X": "\ud800"}}', "env_vars"),  # half a pair
        (rb'{"name": "sur", "runtime": "python", "env_vars": {"X": "\udc00\ud800"}}', "env_vars"),  # reversed
        (rb'{"name": "sur\ud83d", "runtime": "python"}', "name"),
    ],
)
def test_a_lone_surrogate_escape_is_refused_with_its_field(orvad: Orvad, raw: bytes, field: str) -> None:
    """Found with spare jails (issue 26): half a UTF-16 surrogate pair, which only a \\u escape can make, was
    a 500 INTERNAL when orvad stored it. It is no Unicode character: the body is refused, nothing is made."""
    with orvad.admin() as c:
        r = c.post("/api/v1/functions", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "VALIDATION" and err["details"] == {"field": field}, err
        assert "lone surrogate" in err["message"] and err["hint"]
        assert c.get("/api/v1/functions/sur").status_code == 404
        fine = (
            rb'{"name": "sur-pair", "runtime": "python", "env_vars": {"X": "\ud83d\ude00"}}'  # a whole pair
        )
        r = c.post("/api/v1/functions", content=fine, headers={"content-type": "application/json"})
        assert r.status_code == 201 and r.json()["env_vars"] == {"X": "\U0001f600"}, r.text
        c.delete("/api/v1/functions/sur-pair")


def test_unknown_fields_and_read_only_status(orvad: Orvad) -> None:
    with orvad.admin() as c:
        r = c.post("/api/v1/functions", json={"name": "unk", "runtime": "python", "colour": "red"})
        assert r.status_code == 400 and r.json()["error"]["details"]["fields"] == ["colour"]
        r = c.post("/api/v1/functions", json={"name": "unk", "runtime": "python", "status": "active"})
        assert r.status_code == 400
        fn = _create(c, name="status-fn", runtime="python")
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"status": "building"})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "status"
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"status": "active"})
        assert r.status_code == 409  # no version to activate yet


def test_update_list_filter_and_delete(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _create(c, name="upd-fn", runtime="python", description="first")
        r = c.put(
            "/api/v1/functions/upd-fn", json={"memory_mb": 256, "env_vars": {"MODE": "x"}, "name": "upd-fn2"}
        )
        assert r.status_code == 200
        assert (r.json()["memory_mb"], r.json()["env_vars"], r.json()["name"]) == (
            256,
            {"MODE": "x"},
            "upd-fn2",
        )
        assert c.get("/api/v1/functions/upd-fn").status_code == 404
        listed = c.get("/api/v1/functions", params={"runtime": "python", "status": "created"}).json()[
            "functions"
        ]
        assert any(f["id"] == fn["id"] for f in listed)
        assert all(
            f["runtime"].startswith("python") and f["status"] == "created" for f in listed
        )  # python3.x too
        page = c.get("/api/v1/functions", params={"limit": 1}).json()
        assert len(page["functions"]) == 1 and page["next_cursor"]
        nxt = c.get("/api/v1/functions", params={"limit": 1, "cursor": page["next_cursor"]}).json()
        assert nxt["functions"][0]["id"] < page["functions"][0]["id"]
        assert c.delete(f"/api/v1/functions/{fn['id']}").status_code == 200
        assert c.get(f"/api/v1/functions/{fn['id']}").status_code == 404
        assert c.delete(f"/api/v1/functions/{fn['id']}").status_code == 404
