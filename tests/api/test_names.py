"""Function names (issue 18.11, issue 19): 1..63 characters of a-z 0-9 - _, starting with a letter. The
error message, the OpenAPI schema and docs/API.md say the same, and a name with `_` works everywhere a
name is read: /fn/<name>, custom routes, the API's {id} and the executions filter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

RULE = "1..63 characters of a-z 0-9 - _, starting with a letter"
ROOT = Path(__file__).resolve().parents[2]
ECHO = (
    "import os\n\n\ndef handler(event, context):\n"
    "    return {'name': os.environ['ORVA_FUNCTION_NAME'], 'path': event['path']}\n"
)


@pytest.mark.parametrize("name", ["a", "my_fn", "a_b-c_1", "x" + "_" * 62, "snake_case_name"])
def test_underscores_are_accepted(orvad: Orvad, name: str) -> None:
    with orvad.admin() as c:
        r = c.post("/api/v1/functions", json={"name": name, "runtime": "python"})
        assert r.status_code == 201, r.text
        assert c.get(f"/api/v1/functions/{name}").json()["id"] == r.json()["id"]
        assert c.delete(f"/api/v1/functions/{name}").status_code == 200


@pytest.mark.parametrize(
    "name", ["_leading", "-leading", "1abc", "Upper_case", "a.b", "a b", "x" * 64, "", "ä_b"]
)
def test_the_refusal_states_the_rule(orvad: Orvad, name: str) -> None:
    with orvad.admin() as c:
        r = c.post("/api/v1/functions", json={"name": name, "runtime": "python"})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["message"] == f"name must be {RULE}" and error["details"]["field"] == "name"
        fn = create_function(c, f"rename-target-{abs(hash(name)) % 10**6}")
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"name": name})
        assert r.status_code == 400 and r.json()["error"]["message"] == f"name must be {RULE}"


def test_schema_and_docs_state_the_same_rule(orvad: Orvad) -> None:
    with orvad.client() as c:
        spec = c.get("/api/v1/openapi.json").json()
    name = spec["components"]["schemas"]["FunctionCreate"]["properties"]["name"]
    pattern = re.compile(name["pattern"])
    assert name["maxLength"] == 63 and name["description"] == RULE
    assert all(pattern.fullmatch(n) for n in ("a", "my_fn", "a-b_c9"))
    assert not any(pattern.fullmatch(n) for n in ("_a", "-a", "9a", "A", "a.b"))
    api = " ".join((ROOT / "docs" / "API.md").read_text().split())
    assert "1..63 characters of `a-z 0-9 - _`, starting with a letter" in api


@pytest.mark.sandbox
def test_a_name_with_underscores_serves_fn_routes_and_filters(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "hello_under_score")
        assert wait_deployed(c, deploy_inline(c, "hello_under_score", ECHO)["id"])["status"] == "succeeded"
        r = c.get("/fn/hello_under_score")
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "hello_under_score", "path": "/"}
        r = c.post("/fn/hello_under_score/deeper/my_path", json={})
        assert r.status_code == 200 and r.json()["path"] == "/deeper/my_path", r.text
        route = c.post(
            "/api/v1/routes",
            json={"path": "/hooks_v1/hello_under_score/*", "function_id": "hello_under_score"},
        )
        assert route.status_code == 201, route.text
        assert route.json()["function_id"] == fn["id"]
        r = c.get("/hooks_v1/hello_under_score/a_b")
        assert r.status_code == 200 and r.json() == {"name": "hello_under_score", "path": "/a_b"}, r.text
        listed = c.get("/api/v1/routes", params={"function_id": "hello_under_score"}).json()["routes"]
        assert [x["path"] for x in listed] == ["/hooks_v1/hello_under_score/*"]
        execs = c.get("/api/v1/executions", params={"function_id": "hello_under_score"})
        assert execs.status_code == 200
        renamed = c.put("/api/v1/functions/hello_under_score", json={"name": "still_under_score"})
        assert renamed.status_code == 200, renamed.text
        assert c.get("/fn/still_under_score").status_code == 200
        assert c.get("/fn/hello_under_score").status_code == 404
