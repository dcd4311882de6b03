"""The HTTP side: one httpx client per command, the error envelope as an exception, and an SSE reader."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from typing import Any

import click
import httpx

from orva_cli.config import Settings
from orva_cli.hints import for_cli

CONNECTION_FAILED = "CONNECTION_FAILED"
EXIT_UNREACHABLE = 3  # orvad could not be reached at all (docs/CLI.md's exit codes)


class CliError(click.ClickException):
    """Ends the command with exit 1 and one line on stderr: ``error: CODE: message (hint: ...)``;
    under --json, the error as one JSON line instead."""

    exit_code = 1

    def __init__(
        self,
        code: str,
        message: str,
        hint: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        api_hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.hint, self.status, self.details = code, hint, status, details or {}
        self.api_hint = api_hint  # the API's own hint, when the CLI printed another
        self.as_json = _json_wanted()  # read now: the command's context is gone when the error is shown

    def line(self) -> str:
        text = f"error: {self.code}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")
        return " ".join(text.split())  # one line, whatever the message held (YAML errors, tracebacks)

    def document(self) -> dict[str, Any]:
        """The error under --json: the API's envelope fields (its own hint) plus the CLI's hint."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "hint": self.api_hint if self.api_hint is not None else self.hint,
            "cli_hint": self.hint,
        }
        if self.status is not None:
            body["status"] = self.status
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def show(self, file: Any = None) -> None:
        if self.as_json:
            click.echo(json.dumps(self.document(), ensure_ascii=False), err=True)
        else:
            click.echo(self.line(), err=True)


class Unreachable(CliError):
    """orvad could not be reached at all: exit 3, so scripts can tell it from an API error."""

    exit_code = EXIT_UNREACHABLE


def _json_wanted() -> bool:
    ctx = click.get_current_context(silent=True)
    out = getattr(ctx.find_root().obj, "out", None) if ctx is not None else None
    return bool(getattr(out, "json", False))


def envelope_error(response: httpx.Response) -> CliError | None:
    """The envelope of an error answer as a CliError with the hint in the CLI's words, or None when
    the body is not one."""
    try:
        err = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        return None
    details: dict[str, Any] = err["details"] if isinstance(err.get("details"), dict) else {}
    execution = response.headers.get("x-orva-execution-id")
    if execution and "execution_id" not in details:
        details = {**details, "execution_id": execution}
    api_hint = err.get("hint") if isinstance(err.get("hint"), str) else None
    return CliError(
        err["code"],
        str(err.get("message", "")),
        for_cli(err["code"], api_hint, details),
        response.status_code,
        details,
        api_hint=api_hint,
    )


class Client:
    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        headers = {"User-Agent": "orva-cli"}
        if settings.api_key:
            headers["X-Orva-API-Key"] = settings.api_key
        # A plain-HTTP endpoint never uses TLS (redirects are not followed), so skip loading the CA bundle,
        # a tenth of a second per command; the empty context would fail closed if it were ever used.
        verify: ssl.SSLContext | bool = (
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if settings.endpoint.startswith("http://") else True
        )
        self.http = httpx.Client(
            base_url=settings.endpoint, headers=headers, timeout=timeout_s, verify=verify
        )

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw answer, whatever its status; only a failure to talk to orvad raises."""
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a successful call; an error answer raises its envelope as CliError."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise self.failure(response)
        return None if response.status_code == 204 else response.json()  # 204: no content (a DELETE)

    def text(self, path: str, **kwargs: Any) -> str:
        response = self.send("GET", path, **kwargs)
        if response.status_code >= 400:
            raise self.failure(response)
        return response.text

    def pages(self, path: str, items: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a newest-first list, following next_cursor."""
        params = dict(params or {})
        while True:
            page = self.call("GET", path, params=params)
            yield from page[items]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def events(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """(event, data) pairs of a server-sent event stream until orvad ends it; comments (pings) skipped.
        A POST whose answer is a stream (`orva ai chat`) passes method and body (sent as JSON)."""
        # no read timeout: a quiet stream is kept open by orvad's pings, and a follower may wait for hours
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        try:
            with self.http.stream(method, path, params=params, json=body, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self.failure(response)
                event, data = "message", []  # type: str, list[str]
                for line in response.iter_lines():
                    if not line:
                        if data:
                            yield event, _decoded("\n".join(data))
                        event, data = "message", []
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None

    def failure(self, response: httpx.Response) -> CliError:
        err = envelope_error(response)
        if err is None:
            snippet = (
                response.text.strip().splitlines()[0][:200]
                if response.text.strip()
                else response.reason_phrase
            )
            return CliError(f"HTTP_{response.status_code}", snippet, status=response.status_code)
        if err.code == "UNAUTHORIZED":  # the server's hint speaks of headers; say how to give this CLI a key
            err.hint = (
                f"the API key from {self.settings.origin('api_key')} was refused; run `orva login` with a "
                "valid key"
                if self.settings.api_key
                else "no API key: run `orva login`, set ORVA_API_KEY or pass --api-key"
            )
        return err

    def unreachable(self, exc: httpx.TransportError) -> CliError:
        s = self.settings
        reason = re.sub(r"^\[Errno \d+\] ", "", str(exc)) or type(exc).__name__
        return Unreachable(
            CONNECTION_FAILED,
            f"cannot reach orvad at {s.endpoint} ({reason})",
            f"is orvad running? (make run); the endpoint is from {s.origin('endpoint')}",
        )


def _decoded(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # every orvad event is JSON; anything else is passed on as text
        return data
