"""GET /api/v1/functions (issue 18.16, 18.17): every item carries its newest deployment in the same
request, ?runtime= matches a language's versioned ids, and ?q= searches names and descriptions."""

from __future__ import annotations

from collections.abc import Callable

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

PY = "def handler(event, context):\n    return {'v': %d}\n"
LAST_FIELDS = {"id", "version", "status", "code_hash", "submitted_at", "finished_at", "duration_ms"}


def test_one_request_lists_500_functions_with_their_newest_deployment(
    make_orvad: Callable[..., Orvad],
) -> None:
    server = make_orvad()
    with server.admin() as c:
        for i in range(500):
            create_function(c, f"bulk-{i:03d}", description=f"bulk function {i}")
        fn = create_function(c, "twice-deployed")
        first = wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])
        second = wait_deployed(c, deploy_inline(c, fn["id"], PY % 2)["id"])
        assert (first["status"], second["status"]) == ("succeeded", "succeeded")
        once = create_function(c, "once-deployed")
        only = wait_deployed(c, deploy_inline(c, once["id"], PY % 3)["id"])

        r = c.get("/api/v1/functions", params={"limit": 500})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["functions"]) == 500 and page["next_cursor"] is not None
        rest = c.get("/api/v1/functions", params={"limit": 500, "cursor": page["next_cursor"]}).json()
        items = {f["name"]: f for f in page["functions"] + rest["functions"]}
        assert len(items) == 502 and rest["next_cursor"] is None

    latest = items["twice-deployed"]["last_deployment"]
    assert set(latest) == LAST_FIELDS
    assert latest == {
        k: second[k] for k in LAST_FIELDS
    }  # the newest of the two, as GET /deployments/{id} has it
    assert latest["version"] == 2 and latest["code_hash"] != first["code_hash"]
    assert items["once-deployed"]["last_deployment"] == {k: only[k] for k in LAST_FIELDS}
    never = [f for name, f in items.items() if name.startswith("bulk-")]
    assert len(never) == 500 and all(f["last_deployment"] is None for f in never)


def test_runtime_filter_matches_versioned_ids_and_q_searches_name_and_description(orvad: Orvad) -> None:
    with orvad.admin() as c:
        runtimes = c.get("/api/v1/runtimes").json()["runtimes"]
        versioned = next(r["id"] for r in runtimes if r["language"] == "python")  # e.g. python3.11
        node = next(r["id"] for r in runtimes if r["language"] == "node")  # e.g. node20
        plain = create_function(c, "flt-plain-py", "python", description="Greets the Visitor")
        exact = create_function(c, "flt-versioned-py", versioned)
        js = create_function(c, "flt-node", node, description="counts greetings")

        def names(**params: str) -> set[str]:
            r = c.get("/api/v1/functions", params={"limit": "500", **params})
            assert r.status_code == 200, r.text
            return {f["name"] for f in r.json()["functions"] if f["name"].startswith("flt-")}

        assert names(runtime="python") == {plain["name"], exact["name"]}  # the language: every python id
        assert names(runtime=versioned) == {exact["name"]}  # an exact id: only itself
        assert names(runtime="node") == {js["name"]}
        assert names(runtime=node) == {js["name"]}
        assert names(runtime="python3") == set()  # not a prefix search
        assert names(q="GREET") == {plain["name"], js["name"]}  # description, any case
        assert names(q="versioned") == {exact["name"]}  # name
        assert names(q="greet", runtime="node") == {js["name"]}  # filters combine
        assert names(q="no such text anywhere") == set()
