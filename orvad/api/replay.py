"""Replay and saved requests (issue 23): an execution's captured request, replaying it, and each
function's fixtures (saved test requests for the dashboard's Test tab and ``orva fixtures``).

- ``GET /api/v1/executions/{id}/request`` (read, like the execution's logs): the request as captured
  (orvad/invoke/capture.py: credentials redacted, the body up to 1 MiB).
- ``POST /api/v1/executions/{id}/replay`` (invoke): the captured request again, on the function's
  current version, trigger ``replay``. Its credentials were redacted, so it runs as the caller: an
  operator ``Grant`` (satisfies ``auth_mode`` ``api_key``). A ``signed`` function is refused
  (NOT_REPLAYABLE): its signature covered a timestamp, and orvad remembers each signature.
- ``/api/v1/functions/{id}/fixtures[/{fid}]``: list, create, read, replace, delete.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, principal_of, read_object
from orvad.clock import now_iso
from orvad.errors import Conflict, NotFound, NotReplayable, Unauthorized, ValidationError
from orvad.ids import uuid7
from orvad.invoke.capture import REDACTED, REDACTED_QUERY, is_credential
from orvad.invoke.request import Grant, InvokeRequest
from orvad.models import Function
from orvad.store.captures import CapturedRequest, Fixture

MAX_FIXTURES = 100  # per function
MAX_FIXTURE_BODY = 1 << 20  # bytes, once decoded (the capture's bound)
MAX_FIXTURE_HEADERS = 50
MAX_HEADER_NAME, MAX_HEADER_VALUE = 128, 8192
MAX_PATH, MAX_QUERY, MAX_DESCRIPTION = 2048, 4096, 1000
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FIXTURE_FIELDS = ("name", "method", "path", "query", "headers", "body", "body_encoding", "description")
FIXTURE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")  # no CR, LF, NUL or other controls
_PATH = re.compile(r"^/[^\x00-\x20\x7f?#]*$")
_QUERY = re.compile(r"^[^\x00-\x20\x7f#]*$")


def _body_json(body: bytes) -> dict[str, Any]:
    """{body, body_encoding}: text when the bytes are UTF-8, else base64."""
    try:
        return {"body": body.decode("utf-8"), "body_encoding": "text"}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "body_encoding": "base64"}


def _captured_json(captured: CapturedRequest, fn: Function | None) -> dict[str, Any]:
    return {
        "execution_id": captured.execution_id,
        "function_id": fn.id if fn else None,
        "method": captured.method,
        "path": captured.path,
        "query": captured.query,
        "headers": captured.headers,
        **_body_json(captured.body),
        "body_size": captured.body_size,
        "body_truncated": captured.body_truncated,
    }


async def _captured(request: Request) -> tuple[dict[str, Any], CapturedRequest]:
    """The execution and its captured request; 404 with what to do when either is missing."""
    daemon, ident = daemon_of(request), request.path_params["id"]
    row = await daemon.executions.get(ident)
    if row is None:
        raise NotFound(
            f"no execution {ident}",
            hint="executions are written a few milliseconds after the response (retry shortly); older than "
            "ORVA_LOG_RETENTION_DAYS they are pruned with their requests; see GET /api/v1/executions",
        )
    captured = await daemon.captures.request(ident)
    if captured is None:
        fn = daemon.functions.get(row["function_id"])
        details: dict[str, Any] = {"execution_id": ident}
        if fn is not None:
            details |= {"function": fn.name, "capture_requests": fn.capture_requests}
        if fn is not None and not fn.capture_requests:
            hint = (
                f"request capture is off for function {fn.name}: turn it on with PUT /api/v1/functions/"
                f'{fn.name} {{"capture_requests": true}} (later executions keep their request)'
            )
        else:
            hint = (
                "its request was not kept: capture was off for the function when it ran, or orvad refused the "
                "request before reading its body (see the execution's error_code); a replay needs a captured request"
            )
        raise NotFound(f"execution {ident} has no captured request", hint=hint, details=details)
    return row, captured


async def get_request(request: Request) -> Response:
    row, captured = await _captured(request)
    return JSONResponse(_captured_json(captured, daemon_of(request).functions.get(row["function_id"])))


def _replay_headers(captured: CapturedRequest) -> list[tuple[bytes, bytes]]:
    """The captured headers minus the redacted ones (their values are gone) and the framing's."""
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in captured.headers
        if value != REDACTED
        and not is_credential(name)
        and name not in ("content-length", "transfer-encoding")
    ]


def _replay_query(query: str) -> bytes:
    kept = [part for part in query.split("&") if part and not part.endswith("=" + REDACTED_QUERY)]
    return "&".join(kept).encode("latin-1")


async def replay(request: Request) -> Response:
    daemon = daemon_of(request)
    row, captured = await _captured(request)
    fn = daemon.functions.get(row["function_id"])
    if fn is None:
        raise NotFound(f"the function of execution {captured.execution_id} is gone")
    if fn.auth_mode == "signed":
        raise NotReplayable(
            f"function {fn.name} is signed: its executions cannot be replayed (the signature covered a timestamp "
            "and orvad refuses a signature it has seen)",
            hint=f"send a freshly signed request to /fn/{fn.name}, or save the request as a fixture "
            f"(POST /api/v1/functions/{fn.name}/fixtures) and sign it when you send it",
            details={"function": fn.name, "auth_mode": str(fn.auth_mode)},
        )
    if captured.body_truncated:
        raise NotReplayable(
            f"execution {captured.execution_id}'s body was {captured.body_size} bytes; only its first 1 MiB "
            "was kept, so it cannot be replayed as it was",
            hint=f"send the whole request to /fn/{fn.name} again",
            details={"function": fn.name, "body_size": captured.body_size},
        )
    principal = principal_of(request)
    if principal is None:
        raise Unauthorized("authentication required")
    who = (
        principal.key.id
        if principal.key is not None
        else principal.session.user.id
        if principal.session
        else ""
    )
    result = await daemon.invoker.dispatch(
        InvokeRequest(
            fn,
            subpath=captured.path,
            trigger="replay",
            method=captured.method,
            headers=_replay_headers(captured),
            query=_replay_query(captured.query),
            body=captured.body,
            client=request.client.host if request.client else "",
            request_id=request.scope.get("state", {}).get("request_id", ""),
            grant=Grant("operator", who),  # the caller holds invoke (the guard): satisfies api_key
        )
    )
    return JSONResponse(
        {
            "execution_id": result.execution_id,
            "replay_of": captured.execution_id,
            "function_id": fn.id,
            "status": result.status,
            "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in result.headers},
            **_body_json(result.body),
            "complete": result.complete,
        }
    )


# fixtures
def _fixture_json(f: Fixture) -> dict[str, Any]:
    return {
        "id": f.id,
        "function_id": f.function_id,
        "name": f.name,
        "method": f.method,
        "path": f.path,
        "query": f.query,
        "headers": f.headers,
        **_body_json(f.body),
        "description": f.description,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
    }


def _bad(field: str, message: str, hint: str) -> ValidationError:
    return ValidationError(f"{field} {message}", hint=hint, details={"field": field})


def _string(
    body: dict[str, Any], field: str, default: str, limit: int, pattern: re.Pattern[str], hint: str
) -> str:
    value = body.get(field, default)
    if not isinstance(value, str) or len(value) > limit or not pattern.fullmatch(value):
        raise _bad(
            field, f"must be a string of at most {limit} characters ({hint})", hint=f"for example {hint}"
        )
    return value


def _fixture_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The validated fields of a fixture (every field but name has a default). A lone surrogate in any of
    them was refused where the body was read (api/common.read_object)."""
    name = body.get("name")
    if not isinstance(name, str) or not FIXTURE_NAME_RE.fullmatch(name):
        raise _bad(
            "name",
            "must be 1..64 characters of letters, digits, space . _ -, starting with a letter or digit",
            'for example {"name": "happy path"}',
        )
    method = body.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _bad("method", f"must be one of {', '.join(METHODS)}", 'for example {"method": "POST"}')
    path = _string(body, "path", "/", MAX_PATH, _PATH, '"/" or "/orders/42"')
    query = _string(body, "query", "", MAX_QUERY, _QUERY, '"page=2&sort=name" (without the ?)').removeprefix(
        "?"
    )
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or len(headers) > MAX_FIXTURE_HEADERS:
        raise _bad(
            "headers",
            f"must be an object of at most {MAX_FIXTURE_HEADERS} header names to values",
            'for example {"headers": {"content-type": "application/json"}}',
        )
    for hname, hvalue in headers.items():
        if (
            not isinstance(hvalue, str)
            or len(hname) > MAX_HEADER_NAME
            or len(hvalue) > MAX_HEADER_VALUE
            or not _TOKEN.fullmatch(hname)
            or not _VALUE.fullmatch(hvalue)
        ):
            raise _bad(
                "headers",
                f"has a header that HTTP cannot carry: {str(hname)[:80]!r}",
                f"names are letters, digits and -, at most {MAX_HEADER_NAME}; values are text without line breaks, "
                f"at most {MAX_HEADER_VALUE}",
            )
        if is_credential(hname):
            raise _bad(
                "headers",
                f"has {hname!r}, which carries a credential: a fixture never stores one",
                "leave it out: the Test tab and orva fixtures run send your own session or key",
            )
    encoding = body.get("body_encoding", "text")
    raw = body.get("body", "")
    if encoding not in ("text", "base64") or not isinstance(raw, str):
        raise _bad(
            "body",
            'must be a string, with body_encoding "text" (the default) or "base64"',
            '{"body": "{\\"id\\": 1}"} or {"body": "AAEC", "body_encoding": "base64"}',
        )
    if encoding == "base64":
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(
                "body", "is not valid base64", 'for example {"body": "AAEC", "body_encoding": "base64"}'
            ) from None
    else:
        data = raw.encode("utf-8")
    if len(data) > MAX_FIXTURE_BODY:
        raise _bad(
            "body",
            f"is {len(data)} bytes; a fixture holds at most {MAX_FIXTURE_BODY} (1 MiB)",
            "save a smaller body",
        )
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise _bad("description", f"must be a string of at most {MAX_DESCRIPTION} characters", "shorten it")
    return {
        "name": name,
        "method": method.upper(),
        "path": path,
        "query": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "body": data,
        "description": description,
    }


def _function(request: Request) -> Function:
    return daemon_of(request).functions.resolve(request.path_params["id"])


async def _fixture(request: Request, fn: Function) -> Fixture:
    found = await daemon_of(request).captures.fixture(fn.id, request.path_params["fid"])
    if found is None:
        raise NotFound(
            f"function {fn.name} has no fixture {request.path_params['fid']!r}",
            hint=f"see GET /api/v1/functions/{fn.name}/fixtures",
        )
    return found


def _name_taken(fn: Function, name: str) -> Conflict:
    return Conflict(
        f"function {fn.name} already has a fixture named {name!r}",
        hint=f"pick another name, or replace it with PUT /api/v1/functions/{fn.name}/fixtures/{name}",
        details={"field": "name"},
    )


async def list_fixtures(request: Request) -> Response:
    fn = _function(request)
    items = [_fixture_json(f) for f in await daemon_of(request).captures.fixtures(fn.id)]
    return JSONResponse({"fixtures": items, "max": MAX_FIXTURES})


async def create_fixture(request: Request) -> Response:
    fn = _function(request)
    store = daemon_of(request).captures
    fields = _fixture_fields(await read_object(request, FIXTURE_FIELDS))
    if await store.count(fn.id) >= MAX_FIXTURES:
        raise Conflict(
            f"function {fn.name} has {MAX_FIXTURES} fixtures, the most it may keep",
            hint=f"delete one first (DELETE /api/v1/functions/{fn.name}/fixtures/<name>)",
            details={"max": MAX_FIXTURES},
        )
    now = now_iso()
    fixture = Fixture(uuid7(), fn.id, created_at=now, updated_at=now, **fields)
    if not await store.insert(fixture):
        raise _name_taken(fn, fixture.name)
    return JSONResponse(_fixture_json(fixture), status_code=201)


async def get_fixture(request: Request) -> Response:
    fn = _function(request)
    return JSONResponse(_fixture_json(await _fixture(request, fn)))


async def put_fixture(request: Request) -> Response:
    """Replace a fixture's fields (the whole fixture: a field left out takes its default)."""
    fn = _function(request)
    current = await _fixture(request, fn)
    fields = _fixture_fields(await read_object(request, FIXTURE_FIELDS))
    fixture = Fixture(current.id, fn.id, created_at=current.created_at, updated_at=now_iso(), **fields)
    if not await daemon_of(request).captures.update(fixture):
        raise _name_taken(fn, fixture.name)
    return JSONResponse(_fixture_json(fixture))


async def delete_fixture(request: Request) -> Response:
    fn = _function(request)
    fixture = await _fixture(request, fn)
    await daemon_of(request).captures.delete(fixture.id)
    return JSONResponse({"function_id": fn.id, "id": fixture.id, "name": fixture.name, "deleted": True})


routes = [
    Route("/api/v1/executions/{id}/request", get_request, methods=["GET"]),
    Route("/api/v1/executions/{id}/replay", replay, methods=["POST"]),
    Route("/api/v1/functions/{id}/fixtures", list_fixtures, methods=["GET"]),
    Route("/api/v1/functions/{id}/fixtures", create_fixture, methods=["POST"]),
    Route("/api/v1/functions/{id}/fixtures/{fid}", get_fixture, methods=["GET"]),
    Route("/api/v1/functions/{id}/fixtures/{fid}", put_fixture, methods=["PUT"]),
    Route("/api/v1/functions/{id}/fixtures/{fid}", delete_fixture, methods=["DELETE"]),
]
