"""The OpenAPI document is generated from the route table and states each route's auth rule."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema_rs
import pytest
from starlette.routing import Route

from orvad.api.schemas import OPS
from orvad.auth.guard import requirement
from orvad.config import load_settings
from orvad.daemon import Daemon
from orvad.http.app import create_app
from tests.assistant.fake_provider import FakeProvider, running, text
from tests.helpers import Orvad, free_port


def test_openapi_covers_every_route_with_its_auth(orvad: Orvad, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with orvad.client() as c:
        r = c.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    app = create_app(Daemon(load_settings({"data_dir": str(tmp_path)}, environ={})))
    expected = {
        (m.lower(), re.sub(r"{(\w+):\w+}", r"{\1}", route.path))  # {key:path} is published as {key}
        for route in app.routes
        if isinstance(route, Route)
        for m in (route.methods or set()) - {"HEAD"}
    }
    published = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert published == expected
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["x-orva-auth"] == requirement(method.upper(), path)
            assert op["summary"]
            assert (op["security"] == []) == (op["x-orva-auth"] == "public")
    assert spec["paths"]["/api/v1/keys"]["post"]["x-orva-auth"] == "admin"
    assert spec["paths"]["/api/v1/keys/{id}"]["delete"]["parameters"][0]["name"] == "id"


def test_openapi_describes_bodies_responses_content_types_and_links(orvad: Orvad) -> None:
    with orvad.client() as c:
        spec = c.get("/api/v1/openapi.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    ids = {op["operationId"] for ops in paths.values() for op in ops.values()}
    assert len(ids) == sum(len(ops) for ops in paths.values()), "operationIds are unique"
    assert {(m, p) for m, p in OPS} <= {(m.upper(), p) for p, ops in paths.items() for m in ops}, (
        "no stale entry"
    )
    no_body = {
        ("post", "/api/v1/functions/{id}/kill"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/channels/{id}/rotate"),
        ("post", "/api/v1/ai/conversations/{id}/cancel"),
        ("post", "/api/v1/ai/tool-calls/{id}/approve"),
        ("post", "/api/v1/ai/tool-calls/{id}/reject"),
        ("post", "/api/v1/jobs/{id}/retry"),
        ("post", "/api/v1/functions/{id}/cron/{cid}/run"),
        ("post", "/api/v1/system/vacuum"),  # issue 24: ?mode= and ?wait= only
        ("post", "/api/v1/functions/{id}/inbound-webhooks/{wid}/rotate"),  # issue 24: orvad makes the secret
        ("post", "/api/v1/webhooks/{id}/rotate"),  # issue 24, outbound webhooks
        ("post", "/api/v1/webhooks/{id}/test"),
        ("post", "/api/v1/webhooks/deliveries/{id}/retry"),
    }
    for path, ops in paths.items():
        for method, op in ops.items():
            if method in ("post", "put") and (method, path) not in no_body:
                assert op["requestBody"]["content"], (method, path)
            success = {s: r for s, r in op["responses"].items() if s.startswith(("2", "3"))}
            assert success, f"{method} {path} documents no success answer"
            for response in success.values():
                for content in response.get("content", {}).values():
                    assert "Error" not in json.dumps(content), f"{method} {path}: 2xx with the error schema"
            assert op["responses"]["default"] == {"$ref": "#/components/responses/Error"}
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in ids, link
    body = lambda method, path: paths[path][method]["requestBody"]["content"]  # noqa: E731
    ok = lambda method, path, status="200": paths[path][method]["responses"][status]["content"]  # noqa: E731
    assert list(ok("get", "/api/v1/events")) == ["text/event-stream"]
    assert list(ok("get", "/api/v1/deployments/{id}/stream")) == ["text/event-stream"]
    assert list(ok("get", "/web/")) == ["text/html"]
    assert list(ok("get", "/api/v1/system/metrics")) == ["text/plain"]
    assert set(ok("get", "/api/v1/functions/{id}/diff")) == {"application/json", "text/x-diff"}
    for ops in paths.values():  # each body's example is valid by its own schema
        for op in ops.values():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            if media:
                schema = {
                    **schemas[media["schema"]["$ref"].rsplit("/", 1)[1]],
                    "components": spec["components"],
                }
                assert jsonschema_rs.Draft202012Validator(schema).is_valid(media["example"]), media
    assert {"multipart/form-data", "application/gzip", "application/zip"} <= set(
        body("post", "/api/v1/functions/{id}/deploy")
    )
    assert body("post", "/api/v1/functions")["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FunctionCreate"
    }
    assert ok("post", "/api/v1/functions", "201")["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Function"
    }
    assert paths["/api/v1/system/health"]["get"]["responses"]["503"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/Health"}
    assert spec["components"]["responses"]["Error"]["headers"]["X-Request-ID"]["required"]
    assert "Location" in paths["/api/v1/functions"]["post"]["responses"]["201"]["headers"]
    assert "Location" in paths["/api/v1/functions/{id}/deploy-inline"]["post"]["responses"]["202"]["headers"]
    links = paths["/api/v1/functions"]["post"]["responses"]["201"]["links"]
    assert {"GetFunction", "UpdateFunction", "DeleteFunction"} <= set(links)
    assert links["GetFunction"] == {
        "operationId": "functions_get_function",
        "parameters": {"id": "$response.body#/id"},
    }
    query = {p["name"]: p for p in paths["/api/v1/functions"]["get"]["parameters"]}
    assert query["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
    }  # the Go original's ceiling
    assert query["offset"]["schema"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 1_000_000,
    }  # beside cursor
    diff = {p["name"]: p for p in paths["/api/v1/functions/{id}/diff"]["get"]["parameters"]}
    assert (
        diff["from"]["required"]
        and diff["to"]["required"]
        and diff["format"]["schema"]["enum"] == ["json", "unified"]
    )
    for public in ("/web/", "/health", "/api/v1/auth/status", "/api/v1/system/health"):
        assert paths[public]["get"]["security"] == [] and paths[public]["get"]["x-orva-auth"] == "public"
    # the runtimes this host has, and its cores, bound the function schema
    with orvad.admin() as c:
        runtimes = {r["id"] for r in c.get("/api/v1/runtimes").json()["runtimes"]}
    assert runtimes <= set(schemas["FunctionCreate"]["properties"]["runtime"]["enum"])
    assert schemas["FunctionCreate"]["properties"]["cpus"]["maximum"] == (os.cpu_count() or 1)
    assert schemas["Function"]["required"] and "active_deployment_id" in schemas["Function"]["required"]


def test_permission_map() -> None:
    assert requirement("GET", "/api/v1/system/health") == "public"
    assert requirement("POST", "/api/v1/auth/login") == "public"
    assert requirement("GET", "/health/ready") == "public"
    assert (
        requirement("GET", "/web/")
        == requirement("GET", "/web/assets/{name}")
        == requirement("GET", "/")
        == "public"
    )
    assert requirement("GET", "/api/v1/auth/me") == "session"
    assert requirement("GET", "/api/v1/keys") == "admin"
    assert requirement("PUT", "/api/v1/pool/config") == "admin"
    assert requirement("GET", "/api/v1/pool/config") == "read"
    assert requirement("GET", "/api/v1/functions") == "read"
    assert requirement("HEAD", "/api/v1/functions") == "read"
    assert requirement("DELETE", "/api/v1/functions/x") == "write"
    assert requirement("GET", "/api/v1/audit-log") == "admin"


def test_the_session_scheme_names_the_cookie_in_use(make_orvad) -> None:  # type: ignore[no-untyped-def]
    server = make_orvad(env={"ORVA_SECURE_COOKIES": "true"})
    with server.client() as c:
        scheme = c.get("/api/v1/openapi.json").json()["components"]["securitySchemes"]["session"]
    assert scheme == {"type": "apiKey", "in": "cookie", "name": "__Host-orva_session"}


# ---- the request schemas agree with the handlers' validation --------------------------------------------

# Strings a pattern or format decides: (valid, invalid) per field name. Each valid one must pass the
# published schema and be accepted; each invalid one must fail the schema and be refused with 400. A value
# that ends in a newline is invalid to JSON Schema's `$` (ECMA-262), so the handler must refuse it too.
STRINGS: dict[str, tuple[list[Any], list[Any]]] = {
    "url": (  # an outbound webhook's receiver
        ["http://127.0.0.1:9/x", "HTTPS://example.com/hooks/orva?a=1"],
        ["x", "ftp://127.0.0.1/x", "", 5],  # (user@ in a URL: tests/webhooks/test_outbound_api.py)
    ),
    "name": (["a", "hello-world", "a_b", "a" + "0" * 62], ["A", "1a", "_a", "a.b", "a" * 64, "a\n", ""]),
    "entrypoint": (
        ["handler.py", "src/app.v2.py", "_x.py"],
        ["../x.py", "a/../b.py", "/abs.py", "x.txt", ".hidden.py", "-x.py", "handler.py\n", "a\n/b.py"],
    ),
    "filename": (["handler.py", "lib/main.py"], ["../x.py", "x.txt", "/x.py"]),
    "path": (
        ["/hooks/x", "/shop/*", "/a/", "/api2/x", "/x:y@z"],
        ["hooks", "/api/x", "/fn/*", "/", "/*", "/a%20b", "/a//b", "/health", "/a\n", "/a b"],
    ),
    "methods": (["*", "GET", "GET,POST,DELETE"], ["FOO", "GET;POST", "", "GET,"]),
    "key": (["A", "TOKEN_1", "ORVA_SIGNING_SECRET", "_x"], ["ORVA_X", "orva_x", "1A", "A-B", "A\n", ""]),
    "username": (["a", "admin@x.y"], ["a b", "", "a" * 65, "a\n"]),
    "code": (["x = 1"], ["", "   \n"]),
    # inbound webhooks (issue 24): an HTTP header name
    "header": (
        ["X-Sig", "X-Hub-Signature-256", "x_sig.v2"],
        ["X Sig", "", "X:Sig", "é", "X\n", "a" * 101, 5],
    ),
    "value": (["", "v" * 8192], ["a\x00b"]),
    "dependencies": ([""], [5]),
    "expires_at": ([], ["yesterday", 5]),
    "scheduled_at": (
        ["2030-01-01T00:00:00Z", "2020-01-01T00:00:00.5+02:00"],
        ["yesterday", 5, "2024-13-01T00:00:00Z"],
    ),
    "code_hash": (["abcdef", "ABCDEF0123", "0" * 64], ["abcde", "xyzxyz", "0" * 65, "", 5]),
    # AI provider configs (AiProviderUpsert)
    "label": (
        ["x", "local-ollama", "Claude (work) 2", " y ", "a?b#c"],
        ["", "   ", "a\nb", "a/b", "x" * 65, 5],
    ),
    "base_url": (
        ["http://127.0.0.1:11434/v1", "https://api.example.com/v1/", "http://[::1]:8080", None],
        ["ftp://x/v1", "http://u:p@h/v1", "h:1", "http://a b/", "http://h/v1?x=1", 5],
    ),
    "api_key": (["sk-abc", "", " sk-x\n", None], ["a b", "sk-a\nX: 1", "a\x01b", "x" * 4097, 5]),
    # cron schedules (CronUpsert, CronUpdate): croniter and zoneinfo decide the rest (tests/cron/)
    "expression": (
        ["*/5 * * * *", "@hourly", "30 2 * * 1-5", "0 0 1 jan *", " 0  * * * * "],
        ["* * * * * *", "* * * *", "", "@", "0 * * * * 2030", 5, "x" * 201],
    ),
    "timezone": (
        ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"],
        ["", "../etc/passwd", "Europe/", "a b", "UTC\n", "/UTC", 5],
    ),
    # egress rules (issue 24): addresses and wildcards only, so that nothing is looked up in DNS
    "target": (
        ["203.0.113.0/24", "2001:db8::/32", "*.example.com", "198.18.3.4"],
        ["", "1.2.3.4; flush ruleset", "1.2.3.4\n", "a b", '1.2.3.4"', 5],
    ),
    "host": (["198.18.3.4", "2001:db8::1", "*.example.com"], ["", "1.2.3.4;x", "x\n", "a b", 5]),
}
ENV_VARS = (
    [{}, {"A": "x"}, {"_a1": ""}, {"ORVA": "x"}],
    [
        {"ORVA_X": "1"},
        {"orva_x": "1"},
        {"1A": "x"},
        {"A-B": "x"},
        {"A": 1},
        {"A": "a\x00b"},
        {"A\n": "x"},
        "A=x",
    ],
)
CORS_ORIGINS = (
    [[], ["*"], ["https://app.example.com", "http://127.0.0.1:3000"], ["https://[::1]:8443"]],
    [
        ["https://app.example.com/"],
        ["null"],
        ["HTTPS://APP.EXAMPLE.COM"],
        ["https://*.example.com"],
        [5],
        "https://app.example.com",
        ["https://a.example"] * 65,
    ],
)
INPUT_SCHEMA = (
    [{"type": "object"}, {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}],
    [5, "x", {}, {"type": "string"}, {"properties": {}}, ["type"]],
)
MAY_INVOKE = (
    [[], ["*"], ["resize", "notify-2"], ["a", "a"]],
    [["*", "a"], ["A"], ["x" * 64], [5], "a", ["a"] * 101, ["*", "*"]],
)
EGRESS_ALLOW = (
    [
        [],
        ["203.0.113.10"],
        ["2001:db8::/48", "api.example.com"],
    ],  # names are resolved only when a worker starts
    ["203.0.113.10", [5], ["a.example"] * 65],
)
PORTS = ([[], [80], [1, 65535]], [[0], [65536], ["80"], "80", [1] * 17])
SERVERS = ([[], ["198.18.9.53"], ["2001:db8::53"]], ["198.18.9.53", [5], ["198.18.9.53"] * 5])
FUNCTION_IDS = ([[], ["agree"]], ["agree", [5], [""], ["x" * 129], ["x"] * 257])
DESCRIPTIONS = ([{}], ["x", {"agree": 5}, {"agree": "x" * 1025}])
PERMS = ([["read"], ["invoke", "read", "write", "admin"]], [[], ["root"], "read"])
POOL = (
    [{}, {"min_warm": 0, "max_warm": 256}, {"scale_to_zero": False, "idle_ttl_seconds": 86400}],
    [
        {"min_warm": 257},
        {"max_warm": 0},
        {"target_concurrency": 1.5},
        {"scale_to_zero": "no"},
        {"zzz": 1},
        [],
        5,
    ],
)
# any JSON value: a KV value (bytes as {"$bytes": base64}), a cron schedule's payload
ANY_JSON = {
    "value": (
        [1, "x", None, {"a": [1, 2.5]}, {"$bytes": "AAE="}],
        [{"$bytes": "not base64!"}, {"$bytes": 5}],
    ),
    "payload": ([1, "x", None, {"a": [1, 2.5]}, [True]], []),
}
# Byte caps (an env value's 32 KiB, their 64 KiB total, a secret's 32 KiB) JSON Schema cannot state: the schema
# bounds them conservatively (characters that always fit, at most 7 variables), so a body over those bounds
# may still be accepted and is not tested as invalid.
# bodies whose validity spans fields
EXTRA_INVALID: dict[str, list[dict[str, Any]]] = {
    "FunctionCreate": [{"name": "x-mixed", "runtime": "node", "entrypoint": "x.py"}],
    "Rollback": [{}, {"deployment_id": "a", "code_hash": "b"}],
    "KeyCreate": [{"name": "k", "expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"}],
    "ChannelCreate": [{"name": "c", "expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"}],
}


# fields whose values a table above gives whatever their schema
TABLES = {
    "events": (  # an outbound webhook's event types
        [["*"], ["function.created", "job.failed"]],
        [[], ["nope"], "function.created", [5], None],
    ),
    "env_vars": ENV_VARS,
    "permissions": PERMS,
    "function_ids": FUNCTION_IDS,
    "descriptions": DESCRIPTIONS,
    "cors_origins": CORS_ORIGINS,
    "input_schema": INPUT_SCHEMA,
    "may_invoke": MAY_INVOKE,
    "pool": POOL,
    "egress_allow": EGRESS_ALLOW,
    "ports": PORTS,
    "servers": SERVERS,
}


def _values(field: str, schema: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(valid, invalid) values for one property, from its schema and the tables above."""
    if field in STRINGS and ("pattern" in schema or "format" in schema or field == "dependencies"):
        return STRINGS[field]  # (dependencies: no package names to fetch)
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: null means absent
        good, bad = _values(field, {**schema, "type": kind[0]})
        return [*good, None], [v for v in bad if v is not None]
    if field in TABLES:
        return TABLES[field]
    if field in ANY_JSON and "type" not in schema:
        return ANY_JSON[field]
    if "enum" in schema:
        return list(schema["enum"]), ["not-an-option", 5]
    if kind in ("integer", "number"):
        lo, hi = schema["minimum"], schema["maximum"]
        step = 1 if kind == "integer" else 0.05
        # JSON has one number type: 2.0 is the integer 2 (JSON Schema says so too)
        return [lo, hi, float(hi)], [lo - step, hi + step, str(lo), True] + (
            [lo + 0.5] if kind == "integer" else []
        )
    if kind == "boolean":
        return [True, False], ["true", 1]
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        valid = ["x" * max(lo, 1)] + (["x" * hi] if hi else [])
        invalid = [5, None] + (["x" * (lo - 1)] if lo else []) + (["x" * (hi + 1)] if hi else [])
        return valid, invalid
    raise AssertionError(f"no test values for {field}: {schema}")


@dataclass
class Target:
    method: str
    url: str
    base: Callable[[], dict[str, Any]]
    fix: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body
    before: Callable[[], None] = lambda: None
    alone: bool = False  # each field is sent alone, not added to the base body (exactly one of them)


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """The assistant's fake AI provider (tests/assistant/fake_provider.py): answers every chat request "OK"."""
    for fake in running():
        fake.default_turn = [text("OK")]
        yield fake


def test_request_schemas_agree_with_the_handlers(make_orvad, fake_provider) -> None:  # type: ignore[no-untyped-def]
    """Every declared body: schema-valid values are accepted (no 400), schema-invalid ones are refused (400)."""
    server = make_orvad()
    with server.client() as c:
        spec = c.get("/api/v1/openapi.json").json()
    with server.admin() as admin:
        _agree(spec, admin, fake_provider)


def _ai_conversation(admin: httpx.Client) -> tuple[dict[str, Any], str]:
    """An assistant conversation with one message, its provider one nothing listens on (the turn fails at once)."""
    provider = admin.post(
        "/api/v1/ai/providers",
        json={"kind": "openai", "label": "agree", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
    ).json()
    admin.put("/api/v1/ai/settings", json={"provider_id": provider["id"], "model": "m"}).raise_for_status()
    with admin.stream("POST", "/api/v1/ai/chat", json={"content": "hi"}) as r:
        assert r.status_code == 200, r.read()
        conv_id = r.headers["x-orva-conversation-id"]
        r.read()  # the turn's end (a PROVIDER_ERROR frame)
    conv = admin.get(f"/api/v1/ai/conversations/{conv_id}").json()
    return conv, conv["messages"][0]["id"]


def _agree(spec: dict[str, Any], admin: httpx.Client, fake: FakeProvider) -> None:
    schemas = spec["components"]["schemas"]
    # an AI provider config whose endpoint is the fake provider: test connection succeeds
    ai_provider = admin.post(
        "/api/v1/ai/providers", json={"kind": "openai", "label": "agree-fake", "base_url": fake.openai_url}
    ).json()
    fn = admin.post("/api/v1/functions", json={"name": "agree", "runtime": "python"}).json()
    channel = admin.post("/api/v1/channels", json={"name": "agree"}).json()
    schedule = admin.post(
        f"/api/v1/functions/{fn['id']}/cron",
        json={"name": "agree-put", "expression": "0 * * * *", "enabled": False},
    ).json()
    conv, first_message = _ai_conversation(admin)
    inbound = admin.post(
        f"/api/v1/functions/{fn['id']}/inbound-webhooks", json={"name": "agree", "format": "hmac_sha256_hex"}
    ).json()
    fw_rule = admin.post("/api/v1/firewall/rules", json={"target": "198.18.77.0/24"}).json()
    # an outbound webhook to a port nothing listens on (its deliveries wait in the outbox)
    outbound = admin.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/agree", "events": ["*"]}
    ).json()
    names = iter(range(10_000))
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    STRINGS["expires_at"] = ([future], STRINGS["expires_at"][1])
    node = [r for r in schemas["FunctionCreate"]["properties"]["runtime"]["enum"] if r.startswith("node")]

    def update_fix(body: dict[str, Any]) -> dict[str, Any]:
        # an entrypoint is checked against the runtime, sent or stored: send them together
        runtime = body.setdefault("runtime", "python")
        body.setdefault("entrypoint", "handler.js" if runtime in node else "handler.py")
        return body

    def fresh_name(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "name": f"n{next(names)}"} if body.get("name") == "<fresh>" else body

    def fresh_label(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "label": f"l{next(names)}"} if body.get("label") == "<fresh>" else body

    targets = {
        "FunctionCreate": Target(
            "POST", "/api/v1/functions", lambda: {"name": "<fresh>", "runtime": "python"}, fresh_name
        ),
        "FunctionUpdate": Target("PUT", f"/api/v1/functions/{fn['id']}", dict, update_fix),
        "DeployInline": Target(
            "POST",
            f"/api/v1/functions/{fn['id']}/deploy-inline",
            lambda: {"code": "def handler(event, context):\n    return 1\n"},
        ),
        "Rollback": Target(
            "POST", f"/api/v1/functions/{fn['id']}/rollback", lambda: {"deployment_id": "nope"}, alone=True
        ),
        "KeyCreate": Target("POST", "/api/v1/keys", lambda: {"name": "k"}),
        "ChannelCreate": Target("POST", "/api/v1/channels", lambda: {"name": "<fresh>"}, fresh_name),
        "ChannelUpdate": Target("PATCH", f"/api/v1/channels/{channel['id']}", dict),
        "ChannelFunctions": Target(
            "PUT", f"/api/v1/channels/{channel['id']}/functions", lambda: {"function_ids": []}
        ),
        "RouteSave": Target("PUT", "/api/v1/routes", lambda: {"path": "/r", "function_id": fn["id"]}),
        "PoolConfigUpdate": Target(
            "PUT",
            "/api/v1/pool/config",
            lambda: {"function_id": fn["id"]},
            before=lambda: admin.put(
                "/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0, "max_warm": 256}
            ).raise_for_status(),
        ),
        "KvPut": Target("PUT", f"/api/v1/functions/{fn['id']}/kv/agree", lambda: {"value": 1}),
        "JobEnqueue": Target(
            "POST", "/api/v1/jobs", lambda: {"function": fn["id"], "scheduled_at": "2035-01-01T00:00:00Z"}
        ),
        "CronUpsert": Target(
            "POST", f"/api/v1/functions/{fn['id']}/cron", lambda: {"name": "agree", "expression": "0 * * * *"}
        ),
        "CronUpdate": Target(
            "PUT", f"/api/v1/functions/{fn['id']}/cron/{schedule['id']}", lambda: {"enabled": True}
        ),
        "InboundWebhookCreate": Target(
            "POST",
            f"/api/v1/functions/{fn['id']}/inbound-webhooks",
            lambda: {"name": "<fresh>", "format": "hmac_sha256_hex"},
            fresh_name,
        ),
        "InboundWebhookUpdate": Target(
            "PUT", f"/api/v1/functions/{fn['id']}/inbound-webhooks/{inbound['id']}", lambda: {"enabled": True}
        ),
        "WebhookCreate": Target(
            "POST",
            "/api/v1/webhooks",
            lambda: {"url": "http://127.0.0.1:9/x", "events": ["function.created"]},
        ),
        "WebhookUpdate": Target("PUT", f"/api/v1/webhooks/{outbound['id']}", lambda: {"enabled": True}),
        "FirewallRuleCreate": Target("POST", "/api/v1/firewall/rules", lambda: {"target": "198.19.0.0/16"}),
        "FirewallRuleUpdate": Target(
            "PUT", f"/api/v1/firewall/rules/{fw_rule['id']}", lambda: {"description": "x"}
        ),
        "FirewallResolve": Target("POST", "/api/v1/firewall/resolve", lambda: {"host": "198.18.3.4"}),
        "FirewallDns": Target("PUT", "/api/v1/firewall/dns", lambda: {"servers": []}),
        "SecretUpsert": Target(
            "POST", f"/api/v1/functions/{fn['id']}/secrets", lambda: {"key": "K", "value": "v"}
        ),
        # the AI assistant (a provider nothing listens on: a turn ends at once with a PROVIDER_ERROR frame)
        "AiConversationCreate": Target("POST", "/api/v1/ai/conversations", dict),
        "AiConversationUpdate": Target("PATCH", f"/api/v1/ai/conversations/{conv['id']}", dict),
        "AiChat": Target("POST", "/api/v1/ai/chat", lambda: {"content": "hi"}),
        "AiRegenerate": Target("POST", f"/api/v1/ai/conversations/{conv['id']}/regenerate", dict),
        "AiEdit": Target(
            "POST",
            f"/api/v1/ai/conversations/{conv['id']}/messages/{first_message}/edit",
            lambda: {"content": "x"},
        ),
        "AiProviderUpsert": Target(
            "POST", "/api/v1/ai/providers", lambda: {"kind": "openai", "label": "<fresh>"}, fresh_label
        ),
        "AiProviderTest": Target("POST", f"/api/v1/ai/providers/{ai_provider['id']}/test", dict),
        "AiSettingsUpdate": Target("PUT", "/api/v1/ai/settings", dict),  # last: it may unset the provider
        # invalid bodies first: once a user exists, onboarding answers 409 whatever the body
        "Onboard": Target(
            "POST", "/api/v1/auth/onboard", lambda: {"username": "admin", "password": "AdminPass123!Secure"}
        ),
        "Login": Target(
            "POST", "/api/v1/auth/login", lambda: {"username": "nobody", "password": "wrong-password"}
        ),
    }
    assert set(targets) | {"ChangePassword"} == {
        n for n, s in schemas.items() if s.get("additionalProperties") is False
    }
    checked = 0
    for name, target in targets.items():
        schema = {**schemas[name], "components": spec["components"]}
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        props, required = schemas[name]["properties"], schemas[name].get("required", [])
        valid: list[dict[str, Any]] = [target.base()]
        invalid: list[tuple[str, dict[str, Any]]] = [("unknown field", {**target.base(), "zzz": 1})]
        invalid += [(f, {k: v for k, v in target.base().items() if k != f}) for f in required]
        invalid += [("cross-field", body) for body in EXTRA_INVALID.get(name, [])]
        for field, prop in props.items():
            good, bad = _values(field, prop)
            base = {} if target.alone else target.base()
            valid += [{**base, field: v} for v in good]
            invalid += [(field, {**base, field: v}) for v in bad]
        for why, body in invalid:
            body = target.fix(body)
            assert not validator.is_valid(body), f"{name}: test value is schema-valid: {body!r:.200}"
            target.before()
            r = admin.request(target.method, target.url, json=body)
            assert r.status_code == 400, (
                f"{name} ({why}) accepted a schema-invalid body {body!r:.200}: {r.text:.300}"
            )
            checked += 1
        for body in valid:
            body = target.fix(body)
            assert validator.is_valid(body), f"{name}: test value is schema-invalid: {body!r:.200}"
            target.before()
            r = admin.request(target.method, target.url, json=body)
            assert r.status_code != 400 and r.status_code < 500, (
                f"{name} refused {body!r:.200}: {r.text:.300}"
            )
            checked += 1
    assert checked > 200


# deployments.py (not this suite's file) still reads after_seq/limit with str.isdigit: '²' passes it and int()
# raises, a 500. Reported to the lead; left out here until it uses api/common.int_param.
QUERY_KNOWN_BUGS: set[str] = set()
QUERY_SKIP = {"/api/v1/events"}  # a Server-Sent Events stream: a valid request never ends


def _query_values(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    if schema.get("type") == "integer":
        lo, hi = schema["minimum"], schema.get("maximum")
        valid = [str(lo)] + ([str(hi)] if hi is not None else [])
        return valid, [str(lo - 1), "1.5", "x", "²", "٣", " 1"] + ([str(hi + 1)] if hi is not None else [])
    if "enum" in schema:
        return list(schema["enum"]), ["not-an-option"]
    if schema.get("format") == "date-time":
        return ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00"], [
            "yesterday",
            "2024-13-01T00:00:00Z",
        ]
    return [], []


def test_query_parameters_agree_with_the_handlers(make_orvad) -> None:  # type: ignore[no-untyped-def]
    """Every documented query parameter: in-range values are accepted, out-of-range and malformed ones are
    400, and a required one left out is 400."""
    server = make_orvad()
    with server.client() as c:
        spec = c.get("/api/v1/openapi.json").json()
    with server.admin() as c:
        fn = c.post("/api/v1/functions", json={"name": "q", "runtime": "python"}).json()
        dep = c.post(
            "/api/v1/functions/q/deploy-inline", json={"code": "def handler(e, c):\n    return 1\n"}
        ).json()
        conv = c.post("/api/v1/ai/conversations", json={}).json()
        hook = c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/q", "events": ["*"]}).json()
        checked = 0
        for path, ops in spec["paths"].items():
            if path in QUERY_KNOWN_BUGS | QUERY_SKIP or "get" not in ops:
                continue
            params = [p for p in ops["get"].get("parameters", []) if p["in"] == "query"]
            if not params:
                continue
            url = path.replace(
                "{id}",
                dep["id"]
                if path.startswith("/api/v1/deployments/")
                else conv["id"]
                if path.startswith("/api/v1/ai/conversations/")
                else hook["id"]
                if path.startswith("/api/v1/webhooks/")
                else fn["id"],
            )
            required = {p["name"]: fn["id"] for p in params if p["required"]}
            if path.endswith("/diff"):
                continue  # its required ids must be succeeded deployments: tested in test_deploy
            for param in params:
                good, bad = _query_values(param["schema"])
                for value in bad:
                    r = c.get(url, params={**required, param["name"]: value})
                    assert r.status_code == 400, (
                        f"GET {path}?{param['name']}={value!r} answered {r.status_code}"
                    )
                    checked += 1
                for value in good:
                    r = c.get(url, params={**required, param["name"]: value})
                    assert r.status_code == 200, f"GET {path}?{param['name']}={value!r}: {r.text:.300}"
                    checked += 1
                if param["required"]:
                    r = c.get(url, params={k: v for k, v in required.items() if k != param["name"]})
                    assert r.status_code == 400, (
                        f"GET {path} without {param['name']} answered {r.status_code}"
                    )
        r = c.request("DELETE", "/api/v1/routes")
        assert r.status_code == 400, r.text  # ?path= is required
    assert checked > 40
