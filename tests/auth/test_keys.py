"""API keys: creation, listing, permissions enforced per method, revocation and expiry."""

from __future__ import annotations

import re

from tests.helpers import Orvad


def _mint(orvad: Orvad, **body: object) -> dict:
    with orvad.admin() as c:
        r = c.post("/api/v1/keys", json={"name": "t", **body})
        assert r.status_code == 201, r.text
        return r.json()


def test_create_list_and_plaintext_shown_once(orvad: Orvad) -> None:
    created = _mint(orvad, name="ci-deployer", permissions=["read", "write"], expires_in_days=30)
    assert re.fullmatch(r"orva_[0-9a-f]{64}", created["key"])
    assert created["permissions"] == ["read", "write"] and created["expires_at"]
    with orvad.admin() as c:
        listed = c.get("/api/v1/keys").json()
    assert listed["next_cursor"] is None
    mine = next(k for k in listed["keys"] if k["id"] == created["id"])
    assert "key" not in mine and mine["prefix"] == created["key"][:12]
    assert created["key"] not in str(listed)
    ids = [k["id"] for k in listed["keys"]]
    assert ids == sorted(ids, reverse=True)  # newest first


def test_permissions_are_enforced(orvad: Orvad) -> None:
    read_only = _mint(orvad, permissions=["read"])["key"]
    writer = _mint(orvad, permissions=["read", "write"])["key"]
    with orvad.client(read_only) as c:
        assert c.get("/api/v1/auth/status").status_code == 200
        r = c.post("/api/v1/keys", json={"name": "nope"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
        assert r.json()["error"]["details"]["required"] == "admin"
        r = c.get("/api/v1/keys")
        assert r.status_code == 403  # key management needs admin even to read
    with orvad.client(writer) as c:
        assert c.get("/api/v1/keys").status_code == 403
    with orvad.client(headers={"Authorization": f"Bearer {orvad.admin_key}"}) as c:
        assert c.get("/api/v1/keys").status_code == 200


def test_revoked_key_fails_on_the_next_request(orvad: Orvad) -> None:
    key = _mint(orvad, permissions=["read", "admin"])
    with orvad.client(key["key"]) as c:
        assert c.get("/api/v1/keys").status_code == 200
        with orvad.admin() as admin:
            assert admin.delete(f"/api/v1/keys/{key['id']}").status_code == 200
            missing = admin.delete(f"/api/v1/keys/{key['id']}")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        r = c.get("/api/v1/keys")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"


def test_expiry_and_bad_input(orvad: Orvad) -> None:
    with orvad.admin() as c:
        for body, field in (
            ({"name": "x", "permissions": ["root"]}, "permissions"),
            ({"name": "x", "permissions": []}, "permissions"),
            ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
            ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
            (
                {"name": "x", "expires_at": "9999-12-31T23:59:59-01:00"},
                "expires_at",
            ),  # past 9999 in UTC: was 500
            ({"name": "x", "expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
            ({"name": ""}, "name"),
            ({"name": "x", "colour": "red"}, None),
        ):
            r = c.post("/api/v1/keys", json=body)
            assert r.status_code == 400, body
            err = r.json()["error"]
            assert err["code"] == "VALIDATION"
            if field:
                assert err["details"]["field"] == field
        at = c.post("/api/v1/keys", json={"name": "x", "expires_at": "2999-01-01T00:00:00Z"})
        assert at.status_code == 201 and at.json()["expires_at"].startswith("2999-01-01")
    with orvad.client("orva_" + "0" * 64) as c:
        assert c.get("/api/v1/keys").status_code == 401
    with orvad.client("not-a-key") as c:
        assert c.get("/api/v1/keys").status_code == 401


def test_last_used_is_recorded(orvad: Orvad) -> None:
    from tests.helpers import wait_for

    key = _mint(orvad, permissions=["read", "admin"])
    with orvad.client(key["key"]) as c:
        c.get("/api/v1/auth/status")  # public: does not count as use
        c.get("/api/v1/keys")

        def used() -> bool:
            rows = c.get("/api/v1/keys").json()["keys"]
            return next(k for k in rows if k["id"] == key["id"])["last_used_at"] is not None

        wait_for(used, 5.0, "last_used_at to be written by the batched writer")
