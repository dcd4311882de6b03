"""The HTTP side: one httpx client per command, the error envelope as an exception, and an SSE reader."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import click
import httpx

from orva_cli.config import Settings


class CliError(click.ClickException):
    """Ends the command with exit 1 and one line on stderr: ``error: CODE: message (hint: ...)``."""

    exit_code = 1

    def __init__(self, code: str, message: str, hint: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.hint, self.status, self.details = code, hint, status, details or {}

    def line(self) -> str:
        text = f"error: {self.code}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")
        return " ".join(text.split())  # one line, whatever the message held (YAML errors, tracebacks)

    def show(self, file: Any = None) -> None:
        click.echo(self.line(), err=True)


def envelope_error(response: httpx.Response) -> CliError | None:
    """The envelope of an error answer as a CliError, or None when the body is not one."""
    try:
        err = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        return None
    return CliError(err["code"], str(err.get("message", "")), err.get("hint"), response.status_code,
                    err.get("details"))


class Client:
    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        headers = {"User-Agent": "orva-cli"}
        if settings.api_key:
            headers["X-Orva-API-Key"] = settings.api_key
        # A plain-HTTP endpoint never uses TLS (redirects are not followed), so skip loading the CA bundle,
        # a tenth of a second per command; the empty context would fail closed if it were ever used.
        verify: ssl.SSLContext | bool = (ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                                         if settings.endpoint.startswith("http://") else True)
        self.http = httpx.Client(base_url=settings.endpoint, headers=headers, timeout=timeout_s, verify=verify)

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
        return response.json()

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

    def events(self, path: str, params: dict[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
        """(event, data) pairs of a server-sent event stream until orvad ends it; comments (pings) skipped."""
        # no read timeout: a quiet stream is kept open by orvad's pings, and a follower may wait for hours
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        try:
            with self.http.stream("GET", path, params=params, timeout=timeout) as response:
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
            snippet = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
            return CliError(f"HTTP_{response.status_code}", snippet, status=response.status_code)
        if err.code == "UNAUTHORIZED":  # the server's hint speaks of headers; say how to give this CLI a key
            err.hint = (f"the API key from {self.settings.origin('api_key')} was refused; run `orva login` with a "
                        "valid key" if self.settings.api_key else
                        "no API key: run `orva login`, set ORVA_API_KEY or pass --api-key")
        return err

    def unreachable(self, exc: httpx.TransportError) -> CliError:
        s = self.settings
        reason = str(exc) or type(exc).__name__
        return CliError("CONNECTION_FAILED", f"cannot reach orvad at {s.endpoint}: {reason}",
                        f"is orvad running there? the endpoint comes from {s.origin('endpoint')}")


def _decoded(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # every orvad event is JSON; anything else is passed on as text
        return data
