"""Cron runs of deployed functions and `orva.cron` from handlers in both runtimes (issue 23), on a real orvad with
a test clock: a tick becomes an execution with trigger cron whose handler sees the payload and the cron headers;
handlers upsert, list and delete their own schedules (sync and async Python, Node); and the trust boundary:
a function cannot see, change or delete another function's schedules whatever it sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.cron.conftest import TestClock
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

PY = """
import json
from orva import cron, kv, OrvaError
from orva import _channel


def run(req):
    do = req["do"]
    if do == "upsert":
        given = {"expression": req["expression"]} if "expression" in req else {}
        return cron.upsert(req["name"], **given, **req.get("options", {}))
    if do == "list":
        return [s["name"] for s in cron.list()]
    if do == "delete":
        return cron.delete(req["name"])
    if do == "raw":
        return _channel.call(req["op"], req["args"])


def handler(event, context):
    headers = event["headers"]
    if headers.get("x-orva-trigger") == "cron":
        kv.put("run:" + headers["x-orva-cron-id"], {
            "body": json.loads(event["body"]), "headers": {k: v for k, v in headers.items() if k.startswith("x-orva")},
        })
        return {"ok": True}
    try:
        return {"result": run(json.loads(event["body"]))}
    except OrvaError as e:
        return {"error": e.code, "message": e.message, "hint": e.hint}
"""

PY_ASYNC = """
from orva import cron


async def handler(event, context):
    made = await cron.aupsert("async-one", "0 9 * * mon-fri", timezone="Asia/Tokyo", payload=[1, 2])
    names = [s["name"] for s in await cron.alist()]
    gone = await cron.adelete("async-one")
    return {"made": made, "names": names, "gone": gone, "again": await cron.adelete("async-one")}
"""

NODE = """
const { cron, OrvaError } = require("orva");

exports.handler = async (event) => {
  const req = JSON.parse(event.body);
  try {
    if (req.do === "basic") {
      const made = await cron.upsert("node-one", "*/15 * * * *", { timezone: "Europe/Berlin", payload: { n: 1 }, catchUp: "skip" });
      const changed = await cron.upsert({ name: "node-one", enabled: false });
      const names = (await cron.list()).map((s) => s.name);
      return { made, changed, names, gone: await cron.delete("node-one"), again: await cron.delete("node-one") };
    }
    if (req.do === "bad") return await cron.upsert("x", "* * * * * *");
  } catch (e) {
    if (e instanceof OrvaError) return { error: e.code, message: e.message, hint: e.hint };
    throw e;
  }
};
"""


@pytest.fixture(scope="module")
def admin(clocked: tuple[Orvad, TestClock]) -> Iterator[httpx.Client]:
    with clocked[0].admin() as c:
        yield c


@pytest.fixture
def names() -> Callable[[str], str]:
    stem = uuid.uuid4().hex[:6]
    return lambda what: f"cronsdk-{stem}-{what}"


def _deploy(admin: httpx.Client, name: str, code: str, runtime: str = "python") -> dict[str, Any]:
    fn = create_function(admin, name, runtime, entrypoint="handler.js" if runtime == "node" else "handler.py")
    dep = wait_deployed(admin, deploy_inline(admin, name, code)["id"])
    assert dep["status"] == "succeeded", dep
    return fn


def _call(c: httpx.Client, fn: str, **req: Any) -> Any:
    r = c.post(f"/fn/{fn}/", content=json.dumps(req), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_tick_runs_the_function_with_trigger_cron(
    clocked: tuple[Orvad, TestClock], admin: httpx.Client, names: Callable[[str], str]
) -> None:
    _, clock = clocked
    fn = names("runs")
    _deploy(admin, fn, PY)
    clock.set(datetime(2026, 6, 1, 11, 59, 30, tzinfo=UTC))
    s = admin.post(
        f"/api/v1/functions/{fn}/cron",
        json={
            "name": "noon",
            "expression": "0 12 * * *",
            "timezone": "Europe/Berlin",
            "payload": {"report": "x"},
        },
    ).json()
    assert s["next_run_at"] == "2026-06-02T10:00:00.000Z"  # 12:00 CEST
    clock.set(datetime(2026, 6, 2, 10, 0, tzinfo=UTC))

    def ran() -> bool:
        return admin.get(f"/api/v1/functions/{fn}/kv/run:{s['id']}").status_code == 200

    wait_for(ran, 60, "the handler's record of its cron run")
    seen = admin.get(f"/api/v1/functions/{fn}/kv/run:{s['id']}").json()["value"]
    assert seen["body"] == {"report": "x"}
    assert seen["headers"]["x-orva-trigger"] == "cron" and seen["headers"]["x-orva-cron-id"] == s["id"]
    assert seen["headers"]["x-orva-cron-name"] == "noon" and seen["headers"]["x-orva-job-id"].startswith(
        "job_"
    )

    # the execution is recorded with trigger cron, and the schedule shows the run's job succeeded
    def executed() -> bool:
        rows = admin.get("/api/v1/executions", params={"function_id": fn, "limit": 50}).json()["executions"]
        return any(r["trigger"] == "cron" and r["status"] == "success" for r in rows)

    wait_for(executed, 30, "an execution with trigger cron")
    wait_for(
        lambda: admin.get(f"/api/v1/functions/{fn}/cron/noon").json()["last_status"] == "succeeded",
        30,
        "the schedule's last_status",
    )
    after = admin.get(f"/api/v1/functions/{fn}/cron/noon").json()
    assert (
        after["next_run_at"] == "2026-06-03T10:00:00.000Z"
        and after["last_tick_at"] == "2026-06-02T10:00:00.000Z"
    )


def test_python_handler_manages_its_own_schedules(admin: httpx.Client, names: Callable[[str], str]) -> None:
    fn = names("py")
    _deploy(admin, fn, PY)
    made = _call(
        admin,
        fn,
        do="upsert",
        name="nightly",
        expression="30 2 * * *",
        options={"timezone": "America/New_York", "payload": {"a": 1}},
    )["result"]
    assert made["created"] is True and made["source"] == "sdk" and made["function_name"] == fn
    assert made["timezone"] == "America/New_York" and made["payload"] == {"a": 1} and made["enabled"] is True
    changed = _call(admin, fn, do="upsert", name="nightly", options={"enabled": False})["result"]
    assert changed["created"] is False and changed["id"] == made["id"] and changed["enabled"] is False
    assert changed["expression"] == "30 2 * * *" and changed["next_run_at"] is None
    # the operator sees it (and the handler sees the operator's)
    assert admin.get(f"/api/v1/functions/{fn}/cron/nightly").json()["source"] == "sdk"
    admin.post(
        f"/api/v1/functions/{fn}/cron", json={"name": "from-api", "expression": "@hourly"}
    ).raise_for_status()
    assert sorted(_call(admin, fn, do="list")["result"]) == ["from-api", "nightly"]
    assert _call(admin, fn, do="delete", name="nightly")["result"] is True
    assert _call(admin, fn, do="delete", name="nightly")["result"] is False
    # refusals carry their code and hint to the handler
    bad = _call(admin, fn, do="upsert", name="s", expression="*/10 * * * * *")
    assert bad["error"] == "VALIDATION" and "seconds" in bad["message"] and "five fields" in bad["hint"]
    bad = _call(admin, fn, do="upsert", name="s", expression="@daily", options={"timezone": "Nowhere/City"})
    assert bad["error"] == "VALIDATION" and "IANA" in bad["hint"]
    bad = _call(admin, fn, do="upsert", name="new-one")
    assert bad["error"] == "VALIDATION" and "expression is required" in bad["message"]
    bad = _call(admin, fn, do="raw", op="cron.upsert", args={"expression": "@daily"})
    assert bad["error"] == "VALIDATION" and "name is required" in bad["message"]


def test_python_async_twins(admin: httpx.Client, names: Callable[[str], str]) -> None:
    fn = names("pya")
    _deploy(admin, fn, PY_ASYNC)
    r = admin.post(f"/fn/{fn}/", content=b"{}", timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["made"]["timezone"] == "Asia/Tokyo" and out["made"]["payload"] == [1, 2]
    assert out["names"] == ["async-one"] and out["gone"] is True and out["again"] is False


def test_node_handler_manages_its_own_schedules(admin: httpx.Client, names: Callable[[str], str]) -> None:
    fn = names("js")
    _deploy(admin, fn, NODE, "node")
    out = _call(admin, fn, do="basic")
    assert (
        out["made"]["created"] is True
        and out["made"]["catch_up"] == "skip"
        and out["made"]["payload"] == {"n": 1}
    )
    assert out["changed"]["enabled"] is False and out["changed"]["expression"] == "*/15 * * * *"
    assert out["names"] == ["node-one"] and out["gone"] is True and out["again"] is False
    bad = _call(admin, fn, do="bad")
    assert bad["error"] == "VALIDATION" and "6 fields" in bad["message"] and bad["hint"]


def test_a_function_cannot_touch_another_functions_schedules(
    admin: httpx.Client, names: Callable[[str], str]
) -> None:
    victim, attacker = names("victim"), names("attacker")
    create_function(admin, victim, "python")
    target = admin.post(
        f"/api/v1/functions/{victim}/cron",
        json={"name": "payroll", "expression": "0 9 1 * *", "payload": {"pay": 1}},
    ).json()
    _deploy(admin, attacker, PY)
    # its list is its own: the victim's schedule is not there
    assert _call(admin, attacker, do="list")["result"] == []
    # naming the victim in the arguments is refused, not followed
    for op, args in (
        ("cron.upsert", {"name": "payroll", "expression": "* * * * *", "function_id": target["function_id"]}),
        ("cron.upsert", {"name": "payroll", "expression": "* * * * *", "function": victim}),
        ("cron.delete", {"name": "payroll", "function_id": target["function_id"]}),
        ("cron.delete", {"name": "payroll", "id": target["id"]}),
        ("cron.list", {"function_id": target["function_id"]}),
    ):
        out = _call(admin, attacker, do="raw", op=op, args=args)
        assert out.get("error") == "VALIDATION" and "unknown argument" in out["message"], (op, out)
    # the victim's id is no name (names follow the function-name rule), and deleting "payroll" deletes nothing of the victim's
    out = _call(admin, attacker, do="raw", op="cron.delete", args={"name": target["id"]})
    assert out.get("error") == "VALIDATION"
    assert _call(admin, attacker, do="delete", name="payroll")["result"] is False
    # an upsert of the same name makes the attacker's own schedule
    mine = _call(
        admin,
        attacker,
        do="upsert",
        name="payroll",
        expression="* * * * *",
        options={"payload": {"pay": 999}},
    )["result"]
    assert mine["created"] is True and mine["id"] != target["id"] and mine["function_name"] == attacker
    # the victim's schedule is untouched
    now = admin.get(f"/api/v1/functions/{victim}/cron/payroll").json()
    assert (
        now["expression"] == "0 9 1 * *"
        and now["payload"] == {"pay": 1}
        and now["updated_at"] == target["updated_at"]
    )
    assert [s["name"] for s in admin.get(f"/api/v1/functions/{victim}/cron").json()["schedules"]] == [
        "payroll"
    ]
    # wrong types everywhere are refused without harm
    for args in (
        {"name": 5},
        {"name": "x", "expression": ["*"]},
        {"name": "x", "expression": "@daily", "enabled": "no"},
        {"name": "x" * 10_000},
    ):
        out = _call(admin, attacker, do="raw", op="cron.upsert", args=args)
        assert out.get("error") == "VALIDATION", (args, out)
    out = _call(
        admin,
        attacker,
        do="raw",
        op="cron.upsert",
        args={"name": "big", "expression": "@daily", "payload": "x" * 70_000},
    )
    assert out.get("error") == "PAYLOAD_TOO_LARGE"
