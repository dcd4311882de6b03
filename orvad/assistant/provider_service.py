"""Provider configs of the AI assistant: which provider (kind), its label, base_url and API key (issue 22).

The API key is sealed with AES-256-GCM under orvad's master key (the one function secrets use,
orvad/services/secrets.py) with associated data of its own, ``orva-ai-provider\\0<provider id>``: a sealed
provider key does not open as a function secret, nor as another provider's key, and the reverse. It is opened
only to build an SDK client (``model_for``); it is never returned (answers carry ``has_key`` and ``key_hint``,
its last 4 characters, for keys of 8 characters or more), never logged, never put in an error.

base_url is the operator's choice (an admin's): orvad connects to it from its own host, outside every sandbox.
It may point at a local endpoint on purpose, a local Ollama at http://127.0.0.1:11434/v1 say.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from orvad import sealing
from orvad.assistant.providers import (
    DEFAULT_MAX_RETRIES,
    KINDS,
    ChatMessage,
    ChatModel,
    Stop,
    TextDelta,
    chat_model,
    sdks_imported,
)
from orvad.clock import now_iso
from orvad.errors import Conflict, NotFound, ProviderError, ValidationError
from orvad.ids import uuid7
from orvad.sealing import Unsealable
from orvad.store.ai_providers import AiProviderRow, AiProviderStore, LabelTaken

MAX_LABEL = 64
MAX_BASE_URL = 2048
MAX_KEY = 4096
HINT_MIN_KEY = 8  # shorter keys get no key_hint: 4 characters would be half of one
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AAD_PREFIX: Final = b"orva-ai-provider\0"
_T = TypeVar("_T")
TEST_PROMPT = "Reply with the single word OK."
TEST_TIMEOUT_S = 30.0  # test connection: each of its two requests (the model list, the short reply)


async def _short_reply(chat: ChatModel, model: str) -> tuple[str, str | None]:
    reply: list[str] = []
    stop = None
    async for event in chat.stream(
        model=model, system="", messages=[ChatMessage("user", TEST_PROMPT)], tools=(), thinking="off"
    ):
        if isinstance(event, TextDelta):
            reply.append(event.text)
        elif isinstance(event, Stop):
            stop = event.reason
    return "".join(reply), stop


class _Keep:
    """Leave the field as it is (an upsert that does not mention it)."""


KEEP: Final = _Keep()


def _aad(provider_id: str) -> bytes:
    return _AAD_PREFIX + provider_id.encode()


def seal_key(master: bytes, provider_id: str, key: str) -> tuple[bytes, bytes]:
    return sealing.seal(master, key, _aad(provider_id))


def open_key(master: bytes, provider_id: str, nonce: bytes, sealed: bytes) -> str:
    return sealing.unseal(master, nonce, sealed, _aad(provider_id))


def key_hint(key: str) -> str | None:
    return key[-4:] if len(key) >= HINT_MIN_KEY else None


def provider_json(row: AiProviderRow) -> dict[str, Any]:
    """A provider config as every answer shows it: never the key, only whether there is one and its hint."""
    return {
        "id": row.id,
        "kind": row.kind,
        "label": row.label,
        "base_url": row.base_url,
        "has_key": row.key_sealed is not None,
        "key_hint": row.key_hint,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _kind(value: Any) -> str:
    if value not in KINDS:
        raise ValidationError(
            "kind must be anthropic (the Messages API) or openai (any OpenAI-compatible endpoint: OpenAI, "
            "Ollama, vLLM, LM Studio, OpenRouter)",
            details={"field": "kind", "allowed": list(KINDS)},
        )
    return str(value)


def _label(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_LABEL
        or _CONTROL.search(value)
        or "/" in value
    ):
        raise ValidationError(
            f"label must be 1 to {MAX_LABEL} characters, without / (it names the provider in paths) or "
            "control characters",
            details={"field": "label"},
        )
    return value.strip()


def _base_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    bad = ValidationError(
        "base_url must be an http:// or https:// URL with a host and no user or password in it, e.g. "
        "https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (a local Ollama); leave it out for the "
        "provider's own",
        details={"field": "base_url"},
    )
    if not isinstance(value, str) or len(value) > MAX_BASE_URL or _CONTROL.search(value) or " " in value:
        raise bad
    try:
        split = urlsplit(value)
        split.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise bad from None
    if split.scheme not in ("http", "https") or not split.hostname or split.username or split.password:
        raise bad
    if split.query or split.fragment:
        raise bad
    return value.rstrip("/")


def _api_key(value: Any) -> str | None:
    """None (or ""): no key. Surrounding whitespace (a paste) is dropped; whitespace inside is refused."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_KEY:
        raise ValidationError(
            f"api_key must be a string of at most {MAX_KEY} characters (or null for none)",
            details={"field": "api_key"},
        )
    key = value.strip()
    if any(c.isspace() for c in key) or _CONTROL.search(key):
        raise ValidationError(
            "api_key must not contain spaces, line breaks or control characters",
            details={"field": "api_key"},
        )
    return key or None


@dataclass
class _Cached:
    updated_at: str
    model: ChatModel


class ProviderService:
    def __init__(self, store: AiProviderStore, *, max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        self._store = store
        self._master: bytes | None = None  # given at start (the master key is read then)
        self._max_retries = max_retries
        self._models: dict[str, _Cached] = {}
        self._retired: list[ChatModel] = []  # replaced clients: a running turn may still stream on one

    def unlock(self, master: bytes) -> None:
        self._master = master

    def _key(self) -> bytes:
        if self._master is None:
            raise RuntimeError("ProviderService used before unlock(master key)")
        return self._master

    async def all(self) -> list[AiProviderRow]:
        return await self._store.all()

    async def get(self, id_or_label: str) -> AiProviderRow:
        row = await self._store.get(id_or_label)
        if row is None:
            raise NotFound(
                f"no AI provider {id_or_label!r}",
                hint="list them with GET /api/v1/ai/providers; add one with POST /api/v1/ai/providers",
                details={"provider": id_or_label},
            )
        return row

    async def upsert(
        self,
        *,
        id: str | None = None,
        kind: Any = KEEP,
        label: Any = KEEP,
        base_url: Any = KEEP,
        api_key: Any = KEEP,
    ) -> tuple[AiProviderRow, bool]:
        """Create, or change the config named by ``id`` (or, without an id, the one with this ``label``).
        A field left as KEEP is kept; ``api_key`` None removes the key. Returns (row, created)."""
        current: AiProviderRow | None
        if id is not None:
            current = await self.get(id)
        elif isinstance(label, str):
            current = await self._store.get(label.strip())
            if current is not None and current.label != label.strip():
                current = None  # a label that happens to equal another config's id: a new config
        else:
            current = None
        if current is None and (kind is KEEP or label is KEEP):
            raise ValidationError(
                "a new provider needs kind and label",
                details={"field": "kind" if kind is KEEP else "label"},
            )
        now = now_iso()
        provider_id = current.id if current else uuid7()
        row = AiProviderRow(
            id=provider_id,
            kind=_kind(kind) if kind is not KEEP else current.kind,  # type: ignore[union-attr]
            label=_label(label) if label is not KEEP else current.label,  # type: ignore[union-attr]
            base_url=_base_url(base_url) if base_url is not KEEP else (current.base_url if current else None),
            key_nonce=current.key_nonce if current else None,
            key_sealed=current.key_sealed if current else None,
            key_hint=current.key_hint if current else None,
            created_at=current.created_at if current else now,
            updated_at=now,
        )
        if api_key is not KEEP:
            key = _api_key(api_key)
            if key is None:
                row = replace(row, key_nonce=None, key_sealed=None, key_hint=None)
            else:
                nonce, sealed = seal_key(self._key(), provider_id, key)
                row = replace(row, key_nonce=nonce, key_sealed=sealed, key_hint=key_hint(key))
        try:
            await self._store.save(row)
        except LabelTaken:
            raise Conflict(
                f"another AI provider is labelled {row.label!r}",
                hint="choose another label, or send that provider's id to change it (GET /api/v1/ai/providers)",
                details={"field": "label"},
            ) from None
        self._forget(provider_id)
        return row, current is None

    async def delete(self, id_or_label: str) -> str:
        row = await self.get(id_or_label)
        await self._store.delete(row.id)
        self._forget(row.id)
        return row.id

    def _forget(self, provider_id: str) -> None:
        cached = self._models.pop(provider_id, None)
        if cached is not None:
            self._retired.append(cached.model)

    async def model_for(self, provider_id: str) -> ChatModel:
        """The SDK client of a provider config (its key opened here, and kept only inside the client)."""
        row = await self.get(provider_id)
        cached = self._models.get(row.id)
        if cached is not None and cached.updated_at == row.updated_at:
            return cached.model
        key: str | None = None
        if row.key_nonce is not None and row.key_sealed is not None:
            try:
                key = open_key(self._key(), row.id, row.key_nonce, row.key_sealed)
            except Unsealable:
                raise ProviderError(
                    f"the API key of provider {row.label!r} does not open with this orvad's master key",
                    hint=(
                        "the master key changed since the key was saved: send the key again with "
                        "POST /api/v1/ai/providers"
                    ),
                    details={"provider": row.label, "provider_id": row.id},
                ) from None
        await sdks_imported()
        model = chat_model(
            row.kind,
            provider_id=row.id,
            label=row.label,
            api_key=key,
            base_url=row.base_url,
            max_retries=self._max_retries,
        )
        self._forget(row.id)
        self._models[row.id] = _Cached(row.updated_at, model)
        return model

    async def models(self, provider_id: str) -> list[str]:
        """The endpoint's model list, or PROVIDER_ERROR (within TEST_TIMEOUT_S: the dashboard waits on it)."""
        row = await self.get(provider_id)
        return await self._in_time(row, (await self.model_for(row.id)).models(), "list its models")

    async def test(self, provider_id: str, model: str | None = None) -> dict[str, Any]:
        """Test connection: list the models; with ``model``, also a short request to it. Raises ProviderError."""
        row = await self.get(provider_id)
        chat = await self.model_for(row.id)
        started = time.monotonic()
        names = await self._in_time(row, chat.models(), "list its models")
        answer: dict[str, Any] = {
            "ok": True,
            "latency_ms": round((time.monotonic() - started) * 1000, 1),
            "models": names,
        }
        if model:
            started = time.monotonic()
            reply, stop = await self._in_time(row, _short_reply(chat, model), f"answer as model {model!r}")
            answer["model"] = {
                "name": model,
                "reply": reply[:200],
                "stop_reason": stop,
                "latency_ms": round((time.monotonic() - started) * 1000, 1),
            }
        return answer

    @staticmethod
    async def _in_time(row: AiProviderRow, work: Awaitable[_T], what: str) -> _T:
        try:
            return await asyncio.wait_for(work, TEST_TIMEOUT_S)
        except TimeoutError:
            raise ProviderError(
                f"provider {row.label!r} did not {what} within {TEST_TIMEOUT_S:.0f} s",
                hint=(
                    f"check that provider {row.label!r} is up at its base_url "
                    f"({row.base_url or 'its default'}) and answers; test it again with "
                    f"POST /api/v1/ai/providers/{row.id}/test"
                ),
                details={"provider": row.label, "provider_id": row.id},
            ) from None

    async def rotate(self, new_master: bytes) -> int:
        """Re-seal every provider key under ``new_master`` in one transaction; returns how many."""
        rows = []
        for row in await self._store.all():
            if row.key_nonce is None or row.key_sealed is None:
                continue
            try:
                key = open_key(self._key(), row.id, row.key_nonce, row.key_sealed)
            except Unsealable:
                raise RuntimeError(
                    f"the API key of AI provider {row.label} does not open with the current master key; "
                    "nothing was changed"
                ) from None
            nonce, sealed = seal_key(new_master, row.id, key)
            rows.append((nonce, sealed, row.id))
        await self._store.replace_keys(rows)
        self._master = new_master
        for provider_id in list(self._models):
            self._forget(provider_id)
        return len(rows)

    async def aclose(self) -> None:
        """Close every SDK client (orvad's stop)."""
        for provider_id in list(self._models):
            self._forget(provider_id)
        retired, self._retired = self._retired, []
        for model in retired:
            await model.aclose()
