"""/api/v1/auth: onboarding, login, the current user, refresh, logout, password change, and the sessions list
(GET/DELETE /api/v1/auth/sessions: a session sees and ends its own user's, an admin key everyone's)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, principal_of, read_object
from orvad.auth.devices import device_of
from orvad.auth.guard import credentials
from orvad.auth.sessions import Session
from orvad.clock import parse_iso, utcnow
from orvad.errors import NotFound, Unauthorized, ValidationError
from orvad.http.origins import client_address
from orvad.store.auth import UserRow


def user_json(user: UserRow) -> dict[str, str]:
    return {"id": user.id, "username": user.username, "created_at": user.created_at}


def _with_cookie(request: Request, session: Session, status: int) -> JSONResponse:
    """The session in a cookie: HttpOnly, SameSite=Lax, Path=/, never a Domain (the `__Host-` rules)."""
    response = JSONResponse(
        {"user": user_json(session.user), "expires_at": session.expires_at}, status_code=status
    )
    max_age = max(0, int((parse_iso(session.expires_at) - utcnow()).total_seconds()))
    sessions = daemon_of(request).sessions
    response.set_cookie(
        sessions.cookie_name,
        session.token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=sessions.secure_cookies,
    )
    return response


def _session(request: Request) -> Session:
    principal = principal_of(request)
    if principal is None or principal.session is None:
        raise Unauthorized("this endpoint needs a dashboard session")
    return principal.session


def _client(request: Request) -> str:
    """The caller's address as the throttle keys it: behind a trusted proxy, X-Forwarded-For's last
    untrusted hop (else every caller is the proxy, and one attacker's guesses lock the operator out)."""
    peer = request.client.host if request.client else "unknown"
    return client_address(
        peer, request.headers.get("x-forwarded-for"), daemon_of(request).settings.trusted_networks
    )


async def status(request: Request) -> Response:
    """Whether an admin user exists (the dashboard routes to onboarding or login), and where functions are served."""
    daemon = daemon_of(request)
    return JSONResponse(
        {
            "has_user": await daemon.sessions.has_user(),
            "functions_url": daemon.settings.functions_origin or None,
        }
    )


async def onboard(request: Request) -> Response:
    """Create the first admin user (first run only) and open a session.

    Proof of ownership: the bootstrap admin key (`<data-dir>/admin.key`) as `setup_token` or
    X-Orva-API-Key; whoever merely reaches an unclaimed orvad cannot claim it.
    """
    daemon = daemon_of(request)
    body = await read_object(request, ("username", "password", "setup_token"))
    token = body.get("setup_token")
    if token is not None and not isinstance(token, str):
        raise ValidationError(
            "setup_token must be a string",
            details={"field": "setup_token"},
            hint="send the contents of <data-dir>/admin.key",
        )
    daemon.keys.prove_ownership((token or "").strip() or credentials(request.scope, None)[0])
    session = await daemon.sessions.onboard(
        body.get("username"),
        body.get("password"),
        user_agent=request.headers.get("user-agent"),
        ip=_client(request),
    )
    return _with_cookie(request, session, 201)


async def login(request: Request) -> Response:
    """Log in with username and password; sets the session cookie."""
    daemon = daemon_of(request)
    body = await read_object(request, ("username", "password"))
    username, client = str(body.get("username", "")), _client(request)
    # counted before the password check, one check at a time per username (auth/throttle.py)
    async with daemon.login_throttle.attempt(client, username):
        session = await daemon.sessions.login(
            body.get("username"),
            body.get("password"),
            user_agent=request.headers.get("user-agent"),
            ip=client,
        )
        daemon.login_throttle.succeeded(client, username)
    return _with_cookie(request, session, 200)


async def me(request: Request) -> Response:
    """The user of the current session (also at the top level, as the Go original answered)."""
    session = _session(request)
    user = user_json(session.user)
    return JSONResponse({"user": user, "expires_at": session.expires_at, **user})


async def refresh(request: Request) -> Response:
    """Rotate the session token and move its expiry forward; the old token stops working."""
    session = await daemon_of(request).sessions.refresh(_session(request))
    return _with_cookie(request, session, 200)


async def logout(request: Request) -> Response:
    """End the current session and clear the cookie."""
    await daemon_of(request).sessions.logout(_session(request))
    return _cleared(request, JSONResponse({"logged_out": True}))


def _cleared(request: Request, response: Response) -> Response:
    sessions = daemon_of(request).sessions
    response.delete_cookie(
        sessions.cookie_name, path="/", httponly=True, samesite="lax", secure=sessions.secure_cookies
    )
    return response


def _owner(request: Request) -> tuple[str | None, str | None]:
    """(whose sessions the caller may see and end: its user's id, or None for everyone's with an admin key;
    the caller's own session id, if it is a session). The guard lets only sessions and admin keys here."""
    principal = principal_of(request)
    if principal is not None and principal.session is not None:
        return principal.session.user.id, principal.session.id
    return None, None


async def list_sessions(request: Request) -> Response:
    """Live sessions, newest first: the caller's user's (a session), or every user's (an admin key)."""
    user_id, current = _owner(request)
    rows = await daemon_of(request).sessions.list_sessions(user_id)
    return JSONResponse(
        {
            "sessions": [
                {**row, "device": device_of(row["user_agent"]), "current": row["id"] == current}  # type: ignore[arg-type]
                for row in rows
            ]
        }
    )


async def revoke_session(request: Request) -> Response:
    """End one session by its id; it is refused from its next request on (404 for another user's)."""
    session_id = request.path_params["session_id"]
    user_id, current = _owner(request)
    if not await daemon_of(request).sessions.revoke(session_id, user_id):
        raise NotFound(
            f"no session {session_id}",
            hint="list the sessions you can end with GET /api/v1/auth/sessions",
            details={"session_id": session_id},
        )
    answer = JSONResponse({"id": session_id, "revoked": True, "current": session_id == current})
    return _cleared(request, answer) if session_id == current else answer


async def revoke_all_sessions(request: Request) -> Response:
    """Log out everywhere: end every session of the caller's user (an admin key: every user's), except the
    caller's own when ?keep_current=true."""
    raw = request.query_params.get("keep_current", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError(
            "keep_current must be true or false",
            hint="send ?keep_current=true to stay logged in here, or leave it out to end this session too",
            details={"field": "keep_current"},
        )
    user_id, current = _owner(request)
    keep = current if raw in ("true", "1") else None
    count = await daemon_of(request).sessions.revoke_all(user_id, keep)
    answer = JSONResponse({"revoked": count, "kept": keep})
    return _cleared(request, answer) if current is not None and keep is None else answer


async def change_password(request: Request) -> Response:
    """Change the password; every other session of the user ends."""
    body = await read_object(request, ("current_password", "new_password"))
    await daemon_of(request).sessions.change_password(
        _session(request), body.get("current_password"), body.get("new_password")
    )
    return JSONResponse({"changed": True})


routes = [
    Route("/api/v1/auth/status", status, methods=["GET"]),
    Route("/api/v1/auth/onboard", onboard, methods=["POST"]),
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/me", me, methods=["GET"]),
    Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/change-password", change_password, methods=["POST"]),
    Route("/api/v1/auth/sessions", list_sessions, methods=["GET"]),
    Route("/api/v1/auth/sessions", revoke_all_sessions, methods=["DELETE"]),
    Route("/api/v1/auth/sessions/{session_id}", revoke_session, methods=["DELETE"]),
]
