"""How each sender signs an inbound webhook, as a table of verifiers (pure: no I/O, no clock of its own).

Each verifier takes the request's headers (lower-case names, every value), the raw body, the secret and
the webhook's settings, and either returns a ``Verified`` (the delivery's replay keys and how long to
remember them) or raises ``SignatureRefused`` with the reason. Signatures are compared with
``hmac.compare_digest`` over the whole expected text; parsing is strict (lower-case hex of exactly 64
digits, base64 of exactly 32 bytes, ASCII-digit timestamps), so a truncated, padded, upper-cased or
re-prefixed signature never matches.

| format | header(s) | signed bytes | replay key |
|---|---|---|---|
| github | X-Hub-Signature-256: sha256=<hex> | body | the MAC, and X-GitHub-Delivery |
| stripe | Stripe-Signature: t=<ts>,v1=<hex>[,v1=..] | "<ts>." + body | the matching v1's MAC |
| slack | X-Slack-Signature: v0=<hex>, X-Slack-Request-Timestamp | "v0:<ts>:" + body | the MAC |
| hmac_sha256_hex | <header>: <prefix><hex> | body | the MAC |
| hmac_sha256_base64 | <header>: <prefix><base64> | body | the MAC |

Every format's replay key is the MAC's bytes (``mac:<hex>``), whatever its spelling: a captured signature sent
again in another format's spelling after the webhook's format changed (hex as base64, or Stripe's MAC over
"<ts>.<body>" as a raw-body MAC of that text) is the delivery seen already.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64_32 = re.compile(r"[A-Za-z0-9+/]{43}=")
_DIGITS = re.compile(r"[0-9]{1,12}")
DEFAULT_TOLERANCE_S = 300
MIN_TOLERANCE_S, MAX_TOLERANCE_S = 10, 86_400
DEFAULT_HEADER = "X-Signature"
_MAC_KEY = "mac:"  # a replay key: the MAC in lower-case hex, whatever the format's spelling of it

Headers = Mapping[str, Sequence[str]]  # lower-case name -> every value sent


class SignatureRefused(Exception):
    """The delivery is not signed as its format says (the message says why; the hint what to send)."""

    def __init__(self, message: str, hint: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.hint = hint
        self.stale = stale


@dataclass(frozen=True)
class Settings:
    """A webhook's settings the verifiers read."""

    header: str | None = None  # hmac_*: the header's name
    prefix: str = ""  # hmac_*: what comes before the signature
    tolerance_s: int = DEFAULT_TOLERANCE_S


@dataclass(frozen=True)
class Verified:
    keys: tuple[str, ...]  # what identifies this delivery: each is refused once seen
    expires_at: float  # Unix seconds: the memory may forget the keys then
    timestamp: int | None = None  # the signed timestamp (stripe, slack)


@dataclass(frozen=True)
class Format:
    name: str
    headers: Callable[[Settings], tuple[str, ...]]  # the headers it needs (for hints and docs)
    timestamped: bool
    verify: Callable[[Headers, bytes, bytes, Settings, float], Verified]


def _one(headers: Headers, name: str) -> str:
    values = headers.get(name.lower(), ())
    if not values:
        raise SignatureRefused(f"the {name} header is missing", hint=f"send the signature in {name}")
    if len(values) > 1:
        raise SignatureRefused(f"the {name} header was sent {len(values)} times", hint=f"send {name} once")
    return values[0]


def _mac(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, data, hashlib.sha256).digest()


def _equal(expected: str, sent: str, header: str, form: str) -> None:
    if not hmac.compare_digest(expected.encode(), sent.encode("latin-1")):
        raise SignatureRefused(
            f"the signature in {header} does not match",
            hint=f"sign {form} with HMAC-SHA256 and the webhook's secret",
        )


def _timestamp(text: str, header: str, settings: Settings, now: float) -> int:
    if not _DIGITS.fullmatch(text):
        raise SignatureRefused(
            f"the timestamp in {header} must be Unix seconds in ASCII digits",
            hint="send the current Unix time",
        )
    stamp = int(text)
    if abs(now - stamp) > settings.tolerance_s:
        raise SignatureRefused(
            f"the timestamp in {header} is more than {settings.tolerance_s} s from orvad's clock",
            hint="send a fresh delivery; check the sender's clock (or the webhook's tolerance_s)",
            stale=True,
        )
    return stamp


def _github(headers: Headers, body: bytes, secret: bytes, settings: Settings, now: float) -> Verified:
    name = "X-Hub-Signature-256"
    sent = _one(headers, name)
    if not (sent.startswith("sha256=") and _HEX64.fullmatch(sent[7:])):
        raise SignatureRefused(
            f"{name} must be sha256= followed by 64 lower-case hex digits",
            hint="send GitHub's header as it is",
        )
    _equal("sha256=" + _mac(secret, body).hex(), sent, name, "the raw body")
    keys = [_MAC_KEY + sent[7:]]
    delivery = headers.get("x-github-delivery", ())
    if len(delivery) == 1 and 0 < len(delivery[0]) <= 200:
        keys.append("delivery:" + delivery[0])
    return Verified(tuple(keys), now + settings.tolerance_s)


def _stripe(headers: Headers, body: bytes, secret: bytes, settings: Settings, now: float) -> Verified:
    name = "Stripe-Signature"
    sent = _one(headers, name)
    stamps: list[str] = []
    v1: list[str] = []
    for part in sent.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq:
            raise SignatureRefused(f"{name} must be a comma list of key=value", hint="send t=<ts>,v1=<hex>")
        if key == "t":
            stamps.append(value)
        elif key == "v1":
            if not _HEX64.fullmatch(value):
                raise SignatureRefused(
                    f"each v1 in {name} must be 64 lower-case hex digits",
                    hint="send Stripe's header as it is",
                )
            v1.append(value)
    if len(stamps) != 1 or not v1:
        raise SignatureRefused(f"{name} needs one t= and at least one v1=", hint="send t=<ts>,v1=<hex>")
    stamp = _timestamp(stamps[0], name, settings, now)
    expected = _mac(secret, stamps[0].encode() + b"." + body).hex()
    matched = next((s for s in v1 if hmac.compare_digest(expected.encode(), s.encode())), None)
    if matched is None:
        raise SignatureRefused(
            f"no v1 signature in {name} matches", hint='sign "<t>.<raw body>" with HMAC-SHA256 and the secret'
        )
    return Verified((_MAC_KEY + matched,), stamp + settings.tolerance_s, stamp)


def _slack(headers: Headers, body: bytes, secret: bytes, settings: Settings, now: float) -> Verified:
    name, ts_name = "X-Slack-Signature", "X-Slack-Request-Timestamp"
    sent = _one(headers, name)
    ts = _one(headers, ts_name)
    if not (sent.startswith("v0=") and _HEX64.fullmatch(sent[3:])):
        raise SignatureRefused(
            f"{name} must be v0= followed by 64 lower-case hex digits", hint="send Slack's header as it is"
        )
    stamp = _timestamp(ts, ts_name, settings, now)
    _equal("v0=" + _mac(secret, b"v0:" + ts.encode() + b":" + body).hex(), sent, name, '"v0:<ts>:<raw body>"')
    return Verified((_MAC_KEY + sent[3:],), stamp + settings.tolerance_s, stamp)


def _header(settings: Settings) -> str:
    return settings.header or DEFAULT_HEADER


def _prefixed(headers: Headers, settings: Settings) -> tuple[str, str]:
    name = _header(settings)
    sent = _one(headers, name)
    if not sent.startswith(settings.prefix):
        raise SignatureRefused(
            f"{name} must start with {settings.prefix!r}", hint=f"send {name}: {settings.prefix}<signature>"
        )
    return name, sent[len(settings.prefix) :]


def _hmac_hex(headers: Headers, body: bytes, secret: bytes, settings: Settings, now: float) -> Verified:
    name, sig = _prefixed(headers, settings)
    if not _HEX64.fullmatch(sig):
        raise SignatureRefused(
            f"the signature in {name} must be 64 lower-case hex digits",
            hint=f"send {name}: {settings.prefix}<hex of HMAC-SHA256(secret, raw body)>",
        )
    _equal(_mac(secret, body).hex(), sig, name, "the raw body")
    return Verified((_MAC_KEY + sig,), now + settings.tolerance_s)


def _hmac_base64(headers: Headers, body: bytes, secret: bytes, settings: Settings, now: float) -> Verified:
    name, sig = _prefixed(headers, settings)
    try:
        valid = bool(_B64_32.fullmatch(sig)) and len(base64.b64decode(sig, validate=True)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise SignatureRefused(
            f"the signature in {name} must be the standard base64 of 32 bytes (44 characters)",
            hint=f"send {name}: {settings.prefix}<base64 of HMAC-SHA256(secret, raw body)>",
        )
    _equal(base64.b64encode(_mac(secret, body)).decode(), sig, name, "the raw body")
    return Verified((_MAC_KEY + base64.b64decode(sig).hex(),), now + settings.tolerance_s)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("github", lambda s: ("X-Hub-Signature-256", "X-GitHub-Delivery"), False, _github),
        Format("stripe", lambda s: ("Stripe-Signature",), True, _stripe),
        Format("slack", lambda s: ("X-Slack-Signature", "X-Slack-Request-Timestamp"), True, _slack),
        Format("hmac_sha256_hex", lambda s: (_header(s),), False, _hmac_hex),
        Format("hmac_sha256_base64", lambda s: (_header(s),), False, _hmac_base64),
    )
}
HMAC_FORMATS = ("hmac_sha256_hex", "hmac_sha256_base64")


def verify(
    format_name: str, headers: Headers, body: bytes, secret: bytes, settings: Settings, now: float
) -> Verified:
    return FORMATS[format_name].verify(headers, body, secret, settings, now)


def sign(format_name: str, body: bytes, secret: bytes, settings: Settings, now: int) -> dict[str, str]:
    """The headers a sender of this format would send (for tests and the docs' examples)."""
    mac = _mac(secret, body)
    if format_name == "github":
        return {"X-Hub-Signature-256": "sha256=" + mac.hex()}
    if format_name == "stripe":
        return {"Stripe-Signature": f"t={now},v1=" + _mac(secret, f"{now}.".encode() + body).hex()}
    if format_name == "slack":
        return {
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": "v0=" + _mac(secret, f"v0:{now}:".encode() + body).hex(),
        }
    value = mac.hex() if format_name == "hmac_sha256_hex" else base64.b64encode(mac).decode()
    return {_header(settings): settings.prefix + value}
