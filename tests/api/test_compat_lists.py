"""Lists as the Go original's scripts read them (issue 19): ?limit=&offset= pages beside ?cursor=, and the
function and execution lists carry `total` (every item the filters match, whatever the page)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

FAILS_ON_ASK = (
    "def handler(event, context):\n"
    "    if event['query'].get('fail'):\n"
    "        raise RuntimeError('asked to fail')\n"
    "    return {'ok': True}\n"
)


def _get(c: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    r = c.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _offset_pages(
    c: httpx.Client, path: str, items: str, limit: int, **filters: Any
) -> tuple[list[str], set[int]]:
    """Page as a Go Orva script does: offset += limit until offset >= total. (ids in order, totals seen)"""
    ids: list[str] = []
    totals: set[int] = set()
    offset = 0
    while True:
        page = _get(c, path, limit=limit, offset=offset, **filters)
        totals.add(page["total"])
        assert len(page[items]) <= limit
        ids += [item["id"] for item in page[items]]
        offset += limit
        if offset >= page["total"]:
            assert page["next_cursor"] is None  # the last page says so both ways
            return ids, totals
        assert page["next_cursor"] == page[items][-1]["id"]  # cursor paging can take over from any page


def test_functions_page_with_offset_and_carry_total(orvad: Orvad) -> None:
    tag = f"pg{secrets.token_hex(3)}"
    with orvad.admin() as c:
        made = [create_function(c, f"{tag}-{i}")["id"] for i in range(5)]
        newest_first = made[::-1]
        ids, totals = _offset_pages(c, "/api/v1/functions", "functions", 2, q=tag)
        assert ids == newest_first and totals == {5}

        # the same list by cursor carries the same total
        first = _get(c, "/api/v1/functions", q=tag, limit=3)
        rest = _get(c, "/api/v1/functions", q=tag, limit=3, cursor=first["next_cursor"])
        assert [f["id"] for f in first["functions"] + rest["functions"]] == newest_first
        assert first["total"] == rest["total"] == 5 and rest["next_cursor"] is None

        # an offset past the end: an empty page, the total still there
        past = _get(c, "/api/v1/functions", q=tag, offset=50)
        assert past == {"functions": [], "next_cursor": None, "total": 5}
        # filters narrow the total; no filter counts every function orvad has
        assert _get(c, "/api/v1/functions", q=f"{tag}-3")["total"] == 1
        everything = _get(c, "/api/v1/functions", limit=1)
        assert everything["total"] >= 5 and len(everything["functions"]) == 1
        assert _get(c, "/api/v1/functions", q=tag, status="active")["total"] == 0  # none has code


@pytest.fixture(scope="module")
def invoked(orvad: Orvad) -> dict[str, Any]:
    """A function invoked 7 times, 2 of them failing, each execution recorded."""
    with orvad.admin() as c:
        fn = create_function(c, f"ex{secrets.token_hex(3)}")
        assert wait_deployed(c, deploy_inline(c, fn["id"], FAILS_ON_ASK)["id"])["status"] == "succeeded"
        for i in range(7):
            r = c.post(f"/fn/{fn['name']}", params={"fail": "1"} if i in (2, 5) else {})
            assert r.status_code == (500 if i in (2, 5) else 200), r.text
        wait_for(
            lambda: _get(c, "/api/v1/executions", function_id=fn["id"])["total"] == 7,
            30,
            "the 7 executions to be recorded",
        )
    return fn


@pytest.mark.sandbox
def test_executions_page_with_offset_and_filters_and_carry_total(
    orvad: Orvad, invoked: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        every = _get(c, "/api/v1/executions", function_id=invoked["id"], limit=100)["executions"]
        assert len(every) == 7
        ids, totals = _offset_pages(c, "/api/v1/executions", "executions", 3, function_id=invoked["id"])
        assert ids == [e["id"] for e in every] and totals == {7}
        by_name, _ = _offset_pages(c, "/api/v1/executions", "executions", 3, function_id=invoked["name"])
        assert by_name == ids  # the name filters as the id does

        errors = _get(c, "/api/v1/executions", function_id=invoked["id"], status="error", limit=1, offset=1)
        assert errors["total"] == 2 and len(errors["executions"]) == 1
        assert errors["executions"][0]["id"] == [e["id"] for e in every if e["status"] == "error"][1]

        # a time window: the total counts inside it only
        middle = every[3]["started_at"]
        since = _get(c, "/api/v1/executions", function_id=invoked["id"], since=middle)
        until = _get(c, "/api/v1/executions", function_id=invoked["id"], until=middle)
        assert since["total"] + until["total"] == 7 and since["total"] >= 4
        assert len(since["executions"]) == since["total"]

        # cursor paging keeps working, and carries the total too
        first = _get(c, "/api/v1/executions", function_id=invoked["id"], limit=4)
        rest = _get(c, "/api/v1/executions", function_id=invoked["id"], limit=4, cursor=first["next_cursor"])
        assert [e["id"] for e in first["executions"] + rest["executions"]] == ids
        assert first["total"] == rest["total"] == 7 and rest["next_cursor"] is None
        assert _get(c, "/api/v1/executions", limit=1)["total"] >= 7  # no filter: every execution


def test_deployments_page_with_offset_and_carry_total(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, f"dp{secrets.token_hex(3)}")
        made = [
            wait_deployed(c, deploy_inline(c, fn["id"], f"def handler(e, c):\n    return {i}\n")["id"])["id"]
            for i in range(3)
        ]
        path = f"/api/v1/functions/{fn['name']}/deployments"
        ids, totals = _offset_pages(c, path, "deployments", 2)
        assert ids == made[::-1] and totals == {3}
        by_cursor = _get(c, path, limit=2)
        assert by_cursor["total"] == 3 and _get(c, path, cursor=by_cursor["next_cursor"])["total"] == 3
        error = c.get(path, params={"offset": "-2"}).json()["error"]
        assert error["details"]["field"] == "offset" and path in error["hint"]
        assert c.get(path, params={"limit": "501"}).json()["error"]["details"]["field"] == "limit"


BAD = [
    ({"offset": "-1"}, "offset"),
    ({"offset": "abc"}, "offset"),
    ({"offset": "1.5"}, "offset"),
    ({"offset": ""}, "offset"),
    ({"offset": "1000001"}, "offset"),
    ({"offset": "9" * 5000}, "offset"),
    ({"offset": "²"}, "offset"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "-5"}, "limit"),
    ({"limit": "9" * 5000}, "limit"),
    ({"offset": "10", "cursor": "01900000-0000-7000-8000-000000000000"}, "offset"),
]


@pytest.mark.parametrize("path", ["/api/v1/functions", "/api/v1/executions"])
def test_bad_paging_is_a_400_naming_the_field_with_a_hint(orvad: Orvad, path: str) -> None:
    with orvad.admin() as c:
        for params, field in BAD:
            r = c.get(path, params=params)
            assert r.status_code == 400, (params, r.status_code, r.text[:300])
            error = r.json()["error"]
            assert error["code"] == "VALIDATION" and error["details"]["field"] == field, (params, error)
            assert error["hint"] and path in error["hint"] if field == "offset" else error["hint"], error
        both = c.get(path, params={"offset": "0", "cursor": "x"}).json()["error"]
        assert "cursor" in both["message"] and "offset" in both["message"]
        # the Go original's largest page is accepted
        assert c.get(path, params={"limit": "1000", "offset": "1000000"}).status_code == 200
        assert c.get(path, params={"offset": "0007"}).json()["total"] >= 0  # leading zeros are still a number


UNDERSCORED = "def handler(event, context):\n    return {'path': event['path'], 'body': event['body']}\n"


@pytest.mark.sandbox
def test_names_with_underscores_work_in_fn_routes_and_the_cli(
    orvad: Orvad, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Names may contain `_` (issue 18): /fn/<name>, a custom route to it, and the CLI by name all serve it."""
    from tests.cli.test_cli import logged_in, write_tree

    name = f"my_fn_{secrets.token_hex(2)}"
    folder = write_tree(tmp_path_factory.mktemp("underscored"), {"handler.py": UNDERSCORED})
    with logged_in(orvad, tmp_path_factory.mktemp("home"), name) as cli:
        cli.ok("deploy", str(folder), "--name", name)
        shown = cli.json("functions", "get", name)
        assert shown["name"] == name and shown["status"] == "active"
        answer = cli.json("invoke", name, "--data", '{"hi": 1}', "--path", "/deep/er")
        assert answer["status"] == 200 and answer["body"]["path"] == "/deep/er", answer
        assert json.loads(answer["body"]["body"]) == {"hi": 1}
        route = f"/hooks/{name}"
        cli.ok("routes", "set", route, name)
        assert name in cli.ok("functions", "list").stdout
        with orvad.client() as c:
            assert c.post(f"/fn/{name}", content=b"x").json()["body"] == "x"
            assert c.get(f"/fn/{name}/a_b/c").json()["path"] == "/a_b/c"
            assert c.post(route, content=b"routed").json()["body"] == "routed"
        with orvad.admin() as c:
            wait_for(
                lambda: _get(c, "/api/v1/executions", function_id=name)["total"] == 4,
                30,
                f"the 4 executions of {name} to be recorded",
            )
        assert cli.ok("logs", name).stdout.count("  success  200  ") == 4  # `orva logs` finds them by name


# sqlite_only: this test reads SQLite's own planner (EXPLAIN QUERY PLAN on orva.db: which index, no TEMP
# B-TREE); PostgreSQL plans differently (and by its statistics), so the same assertions mean nothing there.
SQLITE_ONLY_REASON = "EXPLAIN QUERY PLAN: the indexes SQLite's planner picks on orva.db"


@pytest.mark.sandbox
@pytest.mark.sqlite_only
def test_the_execution_list_and_its_total_use_the_indexes(orvad: Orvad, invoked: dict[str, Any]) -> None:
    """The SQL the store runs, planned by SQLite on orvad's own database: a function filter reads the
    (function_id, id) index (COUNT from it alone), a time range the started_at index, and no page sorts."""
    import sqlite3

    from orvad.store.executions import _filters, _where

    def plan(sql: str, params: list[Any]) -> str:
        with sqlite3.connect(f"file:{orvad.data_dir / 'orva.db'}?mode=ro", uri=True) as db:
            return " | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    def both(function_id: str | None, since: str | None) -> tuple[str, str]:
        where, params = _filters(function_id, None, since, None)
        return (
            plan(f"SELECT COUNT(*) FROM executions{_where(where)}", params),
            plan(
                f"SELECT * FROM executions{_where(where)} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, 51, 100],
            ),
        )

    count, page = both(invoked["id"], None)
    assert "COVERING INDEX executions_function" in count and "INDEX executions_function" in page, (
        count,
        page,
    )
    count, page = both(None, "2026-01-01T00:00:00.000Z")
    assert "INDEX executions_started" in count, count
    for _, page in (both(None, None), both(invoked["id"], None), both(None, "2026-01-01T00:00:00.000Z")):
        assert "TEMP B-TREE" not in page, page  # newest first straight off an index: no sort of the matches


def test_the_cli_shows_one_page_with_limit_and_offset(
    orvad: Orvad, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.cli.test_cli import logged_in

    tag = f"cp{secrets.token_hex(3)}"
    with logged_in(orvad, tmp_path_factory.mktemp("home"), tag) as cli, orvad.admin() as c:
        for i in range(3):
            create_function(c, f"{tag}-{i}")
        every = [f["name"] for f in cli.json("functions", "list") if f["name"].startswith(tag)]
        assert every == [f"{tag}-2", f"{tag}-1", f"{tag}-0"]  # newest first, by following the cursor
        page = cli.json("functions", "list", "--limit", "2", "--offset", "1")
        total = _get(c, "/api/v1/functions")["total"]
        assert [f["name"] for f in page] == _names(_get(c, "/api/v1/functions", limit=2, offset=1))
        shown = cli.ok("functions", "list", "--offset", "1", "--limit", "2")
        assert f"2-3 of {total}" in shown.stderr and page[0]["name"] in shown.stdout
        assert f"none past 100000 of {total}" in cli.ok("functions", "list", "--offset", "100000").stderr
        assert "--offset" in cli.ok("functions", "list", "--help").stdout
        refused = cli.run("functions", "list", "--offset", "-1")
        assert (
            refused.returncode == 2 and "--offset" in refused.stderr
        )  # click's range check, before any request


def _names(page: dict[str, Any]) -> list[str]:
    return [f["name"] for f in page["functions"]]
