"""`orva executions request|replay` and `orva fixtures list|save|run|delete` against a real orvad with real
workers (issue 23): the captured request shown with its credentials redacted, a replay on the current version,
fixtures saved from options and from an execution, run through /fn, and errors in orva's words."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.deploy_helpers import deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

ECHO = """
def handler(event, context):
    return {"v": %d, "method": event["method"], "path": event["path"], "query": event["rawQuery"],
            "body": event["body"], "accept": event["headers"].get("accept"),
            "trigger": event["requestContext"]["trigger"]}
"""


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "clirp-") as runner:
        yield runner


def _deploy(orvad: Orvad, name: str, version: int) -> None:
    with orvad.admin() as c:
        wait_deployed(c, deploy_inline(c, name, ECHO % version)["id"])


def test_executions_request_and_replay(cli: Cli, orvad: Orvad) -> None:
    fn = f"clirp-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", fn, "--runtime", "python")
    _deploy(orvad, fn, 1)
    r = httpx.post(
        f"{orvad.url}/fn/{fn}/items?x=1",
        headers={"Authorization": "Bearer hunter2-secret", "Accept": "text/plain"},
        content=b"hello body",
        timeout=30,
    )
    assert r.status_code == 200, r.text
    execution_id = r.headers["x-orva-execution-id"]
    with orvad.admin() as c:
        wait_for(
            lambda: c.get(f"/api/v1/executions/{execution_id}/request").status_code == 200, 10, "the capture"
        )
    shown = cli.ok("executions", "request", execution_id).stdout
    assert shown.startswith("POST /items?x=1\n")
    assert "authorization: [redacted]" in shown and "accept: text/plain" in shown and "hello body" in shown
    assert "hunter2" not in shown
    record = cli.json("executions", "request", execution_id)
    assert record["body"] == "hello body" and ["authorization", "[redacted]"] in record["headers"]

    _deploy(orvad, fn, 2)
    done = cli.ok("executions", "replay", execution_id)
    answer = json.loads(done.stdout)
    assert answer["v"] == 2 and answer["trigger"] == "replay" and answer["body"] == "hello body"
    assert answer["path"] == "/items" and answer["query"] == "x=1" and answer["accept"] == "text/plain"
    assert "replayed as execution" in done.stderr
    replayed = cli.json("executions", "replay", execution_id)
    assert replayed["replay_of"] == execution_id and replayed["status"] == 200

    stderr = cli.fails(1, "executions", "request", "no-such-execution")
    assert "no execution" in error_line(stderr, "NOT_FOUND")


def test_fixtures_save_list_run_delete(cli: Cli, orvad: Orvad, tmp_path: Path) -> None:
    fn = f"clirp-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", fn, "--runtime", "python", "--no-capture-requests")
    _deploy(orvad, fn, 1)
    assert cli.json("functions", "get", fn)["capture_requests"] is False
    assert (
        "saved fixture happy" in cli.ok("fixtures", "save", fn, "happy", "--data", '{"name": "orva"}').stdout
    )
    cli.ok(
        "fixtures",
        "save",
        fn,
        "listing",
        "-X",
        "GET",
        "--path",
        "/users?page=2",
        "-H",
        "Accept: text/plain",
        "--description",
        "the second page",
    )
    listed = cli.ok("fixtures", "list", fn).stdout
    assert "happy" in listed and "listing" in listed and "/users" in listed
    items = {f["name"]: f for f in cli.json("fixtures", "list", fn)}
    assert items["listing"]["query"] == "page=2" and items["listing"]["headers"] == {"accept": "text/plain"}
    assert items["happy"]["headers"] == {"content-type": "application/json"}

    ran = json.loads(cli.ok("fixtures", "run", fn, "happy").stdout)
    assert (
        ran["method"] == "POST" and json.loads(ran["body"]) == {"name": "orva"} and ran["trigger"] == "http"
    )
    ran = cli.json("fixtures", "run", fn, "listing")
    assert ran["status"] == 200 and ran["body"]["path"] == "/users" and ran["body"]["query"] == "page=2"
    assert ran["body"]["accept"] == "text/plain"
    # saving under the same name replaces it
    cli.ok("fixtures", "save", fn, "happy", "--data", '{"name": "again"}')
    assert json.loads(json.loads(cli.ok("fixtures", "run", fn, "happy").stdout)["body"]) == {"name": "again"}
    # a credential header is refused in orva's words
    stderr = cli.fails(1, "fixtures", "save", fn, "creds", "-H", "Authorization: Bearer x")
    assert "credential" in error_line(stderr, "VALIDATION")
    # capture was off: its executions have no request, said so
    r = httpx.get(f"{orvad.url}/fn/{fn}/", timeout=30)
    with orvad.admin() as c:
        wait_for(
            lambda: c.get(f"/api/v1/executions/{r.headers['x-orva-execution-id']}").status_code == 200,
            10,
            "row",
        )
    stderr = cli.fails(1, "executions", "replay", r.headers["x-orva-execution-id"])
    assert f"orva functions update {fn} --capture-requests" in error_line(stderr, "NOT_FOUND")
    # from an execution of a capturing function: its request, redacted headers left out
    cli.ok("functions", "update", fn, "--capture-requests")
    r = httpx.put(
        f"{orvad.url}/fn/{fn}/from?y=2",
        headers={"X-Api-Key": "k-secret", "Accept": "a/b"},
        content=b"xyz",
        timeout=30,
    )
    execution_id = r.headers["x-orva-execution-id"]
    with orvad.admin() as c:
        wait_for(
            lambda: c.get(f"/api/v1/executions/{execution_id}/request").status_code == 200, 10, "capture"
        )
    cli.ok("fixtures", "save", fn, "from-exec", "--from-execution", execution_id)
    saved = cli.json("fixtures", "list", fn)
    copy = next(f for f in saved if f["name"] == "from-exec")
    assert (copy["method"], copy["path"], copy["query"], copy["body"]) == ("PUT", "/from", "y=2", "xyz")
    assert "x-api-key" not in copy["headers"] and copy["headers"]["accept"] == "a/b"

    assert "deleted fixture happy" in cli.ok("fixtures", "delete", fn, "happy").stdout
    stderr = cli.fails(1, "fixtures", "run", fn, "happy")
    assert "orva" in error_line(stderr, "NOT_FOUND") or "fixture" in stderr
