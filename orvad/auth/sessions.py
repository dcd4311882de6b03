"""Users and dashboard sessions: onboarding, login, refresh (rotating), logout, password change.

The cookie carries a random token; the database keeps only its SHA-256, so a copy of the
database cannot be turned into a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from orvad.auth.cookienames import name_for
from orvad.auth.passwords import MAX_LENGTH, MIN_LENGTH, hash_password, verify_password
from orvad.clock import iso, now_iso, utcnow
from orvad.errors import AlreadySetup, InvalidCredentials, ValidationError
from orvad.ids import uuid7
from orvad.store.audit import printable
from orvad.store.auth import AuthStore, UserRow

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# scrypt takes 16 MiB and a core's worth of time: at most this many run at once, server-wide,
# so a burst of logins (or of password changes) queues instead of taking every core.
PASSWORD_CHECKS = 2
# Verified against when the username is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = hash_password("orva-timing-equaliser")


# A session's last_seen_at is written at most once a minute (through the batched writer), per session.
LAST_SEEN_EVERY_S = 60.0
_SEEN_MAX = 10_000  # sessions remembered for that; past it the memory starts again (a write each, once)
USER_AGENT_MAX = 512  # characters of User-Agent kept with a session
IP_MAX = 64  # characters of the client address kept (an X-Forwarded-For hop from a trusted proxy is text)


@dataclass(frozen=True)
class Session:
    token: str
    user: UserRow
    expires_at: str
    id: str = ""  # the public id (GET /api/v1/auth/sessions); never the token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_password(password: object, field: str = "password") -> str:
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationError(
            f"{field} must be a string of {MIN_LENGTH}..{MAX_LENGTH} characters",
            hint=f"choose a password of at least {MIN_LENGTH} characters",
            details={"field": field},
        )
    return password


def validate_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise ValidationError(
            "username must be 1..64 characters of letters, digits and _ . @ -",
            hint="pick a username such as 'admin'",
            details={"field": "username"},
        )
    return username


class SessionService:
    def __init__(self, store: AuthStore, session_days: int, *, secure_cookies: bool = False) -> None:
        self._store = store
        self.lifetime = timedelta(days=session_days)
        self.secure_cookies = secure_cookies
        self.cookie_name = name_for(secure_cookies)  # the one name set and read (auth/cookienames.py)
        self._scrypt = asyncio.Semaphore(PASSWORD_CHECKS)
        self._seen: dict[str, float] = {}  # session id -> monotonic time of its last last_seen_at write

    async def _hash(self, password: str) -> str:
        async with self._scrypt:
            return await asyncio.to_thread(hash_password, password)

    async def _verify(self, password: str, stored: str) -> bool:
        async with self._scrypt:
            return await asyncio.to_thread(verify_password, password, stored)

    async def has_user(self) -> bool:
        return await self._store.count_users() > 0

    async def onboard(
        self, username: object, password: object, *, user_agent: str | None = None, ip: str | None = None
    ) -> Session:
        name, secret = validate_username(username), validate_password(password)
        if await self.has_user():
            raise AlreadySetup("an admin user already exists")
        now = now_iso()
        user = UserRow(id=uuid7(), username=name, password_hash=await self._hash(secret), created_at=now)
        if not await self._store.create_first_user(user):
            raise AlreadySetup("an admin user already exists")
        return await self._open(user, user_agent, ip)

    async def login(
        self, username: object, password: object, *, user_agent: str | None = None, ip: str | None = None
    ) -> Session:
        if not isinstance(username, str) or not isinstance(password, str) or len(password) > MAX_LENGTH:
            raise ValidationError("username and password must be strings", details={"field": "username"})
        user = await self._store.user_by_name(username)
        ok = await self._verify(password, user.password_hash if user else _DUMMY_HASH)
        if user is None or not ok:
            raise InvalidCredentials("wrong username or password")
        return await self._open(user, user_agent, ip)

    async def resolve(self, token: str) -> Session | None:
        """The live session of a cookie's token, read from the database on every call (so a session ended
        by any means stops working on its next request); its last_seen_at is queued at most once a minute."""
        found = await self._store.session_user(token_hash(token), now_iso())
        if found is None:
            return None
        user, expires_at, session_id = found
        self._seen_now(session_id)
        return Session(token, user, expires_at, session_id)

    def _seen_now(self, session_id: str) -> None:
        now = time.monotonic()
        last = self._seen.get(session_id)
        if last is not None and now - last < LAST_SEEN_EVERY_S:
            return
        if len(self._seen) >= _SEEN_MAX:
            self._seen.clear()
        self._seen[session_id] = now
        self._store.touch_session(session_id, now_iso())

    async def list_sessions(self, user_id: str | None) -> list[dict[str, object]]:
        """Live sessions of ``user_id`` (None: everyone's), newest first."""
        return await self._store.list_sessions(user_id, now_iso())

    async def revoke(self, session_id: str, user_id: str | None) -> bool:
        """End one session by its public id, if it is ``user_id``'s (None: anyone's); it is refused from
        its next request on (resolve reads the database each time: there is no cache to forget)."""
        ended = await self._store.delete_session_by_id(session_id, user_id)
        self._seen.pop(session_id, None)
        return ended

    async def revoke_all(self, user_id: str | None, keep_id: str | None) -> int:
        """End every session of ``user_id`` (None: everyone's) except ``keep_id``; answers how many."""
        return await self._store.delete_sessions(user_id, keep_id)

    async def refresh(self, session: Session) -> Session:
        """Issue a new token with a fresh lifetime; the old token stops working at once."""
        token, now = secrets.token_urlsafe(32), utcnow()
        expires = iso(now + self.lifetime)
        if not await self._store.rotate_session(
            token_hash(session.token), token_hash(token), iso(now), expires
        ):
            raise InvalidCredentials("session expired", hint="log in again")
        return Session(token, session.user, expires, session.id)

    async def logout(self, session: Session) -> None:
        await self._store.delete_session(token_hash(session.token))

    async def change_password(self, session: Session, current: object, new: object) -> None:
        secret = validate_password(new, "new_password")
        if not isinstance(current, str) or not await self._verify(current, session.user.password_hash):
            raise InvalidCredentials(
                "current password is wrong", hint="send the current password as current_password"
            )
        hashed = await self._hash(secret)
        await self._store.set_password(session.user.id, hashed, now_iso(), token_hash(session.token))

    async def _open(self, user: UserRow, user_agent: str | None, ip: str | None) -> Session:
        token, now, session_id = secrets.token_urlsafe(32), utcnow(), uuid7()
        expires = iso(now + self.lifetime)
        await self._store.create_session(
            token_hash(token),
            user.id,
            iso(now),
            expires,
            session_id=session_id,
            user_agent=printable(user_agent)[:USER_AGENT_MAX] if user_agent else None,
            ip=printable(ip)[:IP_MAX] if ip else None,
        )
        self._seen[session_id] = time.monotonic()
        return Session(token, user, expires, session_id)
