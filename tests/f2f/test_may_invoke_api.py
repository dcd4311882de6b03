"""The may_invoke field through the API: default, validation, who may set it, names of functions that do
not exist yet, and what a rename does (names are resolved at each call: docs/SDK.md)."""

from __future__ import annotations

from tests.deploy_helpers import create_function
from tests.helpers import Orvad


def test_may_invoke_defaults_to_none_and_takes_names_or_a_lone_star(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "mi-default")
        assert fn["may_invoke"] == []
        assert c.get("/api/v1/functions/mi-default").json()["may_invoke"] == []
        made = create_function(c, "mi-made", may_invoke=["resize", "notify", "resize"])
        assert made["may_invoke"] == ["resize", "notify"]  # duplicates dropped, order kept
        r = c.put("/api/v1/functions/mi-default", json={"may_invoke": ["not-yet-created"]})
        assert r.status_code == 200, r.text
        assert r.json()["may_invoke"] == ["not-yet-created"]  # resolved at call time: may not exist yet
        r = c.put("/api/v1/functions/mi-default", json={"may_invoke": ["*"]})
        assert r.status_code == 200 and r.json()["may_invoke"] == ["*"]
        listed = {f["name"]: f for f in c.get("/api/v1/functions").json()["functions"]}
        assert listed["mi-default"]["may_invoke"] == ["*"]
        assert c.put("/api/v1/functions/mi-default", json={"may_invoke": []}).json()["may_invoke"] == []
        for bad in (["*", "a"], ["Upper"], [fn["id"]], [5], "a", ["a"] * 101, ["x" * 64], None):
            r = c.put("/api/v1/functions/mi-default", json={"may_invoke": bad})
            assert r.status_code == 400, (bad, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION" and error["details"]["field"] == "may_invoke"
            assert "may_invoke" in error["hint"]
        assert c.get("/api/v1/functions/mi-default").json()["may_invoke"] == []


def test_setting_may_invoke_needs_the_invoke_permission_too(orvad: Orvad) -> None:
    """A write-only key cannot give a function a grant to call what the key itself could not call."""
    with orvad.admin() as c:
        create_function(c, "mi-perm")
        writer = c.post("/api/v1/keys", json={"name": "w-only", "permissions": ["read", "write"]}).json()[
            "key"
        ]
        both = c.post("/api/v1/keys", json={"name": "w-inv", "permissions": ["write", "invoke"]}).json()[
            "key"
        ]
    with orvad.client(writer) as w:
        r = w.put("/api/v1/functions/mi-perm", json={"may_invoke": ["*"]})
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "FORBIDDEN" and error["details"] == {
            "required": "invoke",
            "field": "may_invoke",
        }
        r = w.post("/api/v1/functions", json={"name": "mi-perm2", "runtime": "python", "may_invoke": ["x"]})
        assert r.status_code == 403, r.text
        # taking grants away never needs it
        assert w.put("/api/v1/functions/mi-perm", json={"may_invoke": []}).status_code == 200
        assert w.put("/api/v1/functions/mi-perm", json={"description": "x"}).status_code == 200
    with orvad.client(both) as b:
        r = b.put("/api/v1/functions/mi-perm", json={"may_invoke": ["other"]})
        assert r.status_code == 200 and r.json()["may_invoke"] == ["other"]


def test_a_rename_leaves_may_invoke_naming_the_old_name(orvad: Orvad) -> None:
    """may_invoke holds names: renaming the callee does not rename the grant (the caller loses it, and a new
    function under the old name would get it); renaming the caller keeps its own list."""
    with orvad.admin() as c:
        create_function(c, "mi-caller", may_invoke=["mi-callee"])
        create_function(c, "mi-callee")
        assert c.put("/api/v1/functions/mi-callee", json={"name": "mi-callee2"}).status_code == 200
        assert c.get("/api/v1/functions/mi-caller").json()["may_invoke"] == ["mi-callee"]
        assert c.put("/api/v1/functions/mi-caller", json={"name": "mi-caller2"}).status_code == 200
        assert c.get("/api/v1/functions/mi-caller2").json()["may_invoke"] == ["mi-callee"]
