"""/api/v1/ai/providers: the AI assistant's provider configs (issue 22). Admin key or session.

An API key goes in (``api_key`` of POST) and never comes out: answers carry ``has_key`` and ``key_hint``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, read_object
from orvad.assistant.provider_service import KEEP, provider_json
from orvad.errors import ValidationError

_FIELDS = ("id", "kind", "label", "base_url", "api_key")


async def list_providers(request: Request) -> Response:
    """Every provider config, by label; never a key."""
    rows = await daemon_of(request).ai_providers.all()
    return JSONResponse({"providers": [provider_json(r) for r in rows]})


async def upsert(request: Request) -> Response:
    """Create a provider config (201), or change the one named by `id` (else by `label`) (200). Fields left out
    are kept; `api_key` null (or "") removes the key."""
    body = await read_object(request, _FIELDS)
    provider_id = body.get("id")
    if "id" in body and (not isinstance(provider_id, str) or not 1 <= len(provider_id) <= 128):
        raise ValidationError("id must be a provider id (GET /api/v1/ai/providers)", details={"field": "id"})
    row, created = await daemon_of(request).ai_providers.upsert(
        id=provider_id,
        kind=body.get("kind", KEEP),
        label=body.get("label", KEEP),
        base_url=body.get("base_url", KEEP),
        api_key=body.get("api_key", KEEP),
    )
    return JSONResponse(provider_json(row), status_code=201 if created else 200)


async def get(request: Request) -> Response:
    """One provider config (by id or label); never its key."""
    return JSONResponse(provider_json(await daemon_of(request).ai_providers.get(request.path_params["id"])))


async def delete(request: Request) -> Response:
    """Remove a provider config and its key. Conversations that used it stay (their provider becomes null)."""
    provider_id = await daemon_of(request).ai_providers.delete(request.path_params["id"])
    return JSONResponse({"id": provider_id, "deleted": True})


async def models(request: Request) -> Response:
    """The models the provider's endpoint reports (its GET /v1/models); 502 PROVIDER_ERROR when it fails."""
    service = daemon_of(request).ai_providers
    row = await service.get(request.path_params["id"])
    return JSONResponse({"provider_id": row.id, "models": await service.models(row.id)})


async def _optional_object(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not (await request.body()).strip():
        return {}
    return await read_object(request, allowed)


async def test(request: Request) -> Response:
    """Test connection: lists the models (ok, latency_ms, models); with {"model": name}, also a short request to
    that model (model: {name, reply, stop_reason, latency_ms}). A failure is 502 PROVIDER_ERROR."""
    body = await _optional_object(request, ("model",))
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not 1 <= len(model) <= 256):
        raise ValidationError(
            "model must be a model name of 1..256 characters",
            hint=f"list them with GET /api/v1/ai/providers/{request.path_params['id']}/models",
            details={"field": "model"},
        )
    service = daemon_of(request).ai_providers
    row = await service.get(request.path_params["id"])
    return JSONResponse({"provider_id": row.id, **await service.test(row.id, model)})


routes = [
    Route("/api/v1/ai/providers", list_providers, methods=["GET"]),
    Route("/api/v1/ai/providers", upsert, methods=["POST"]),
    Route("/api/v1/ai/providers/{id}", get, methods=["GET"]),
    Route("/api/v1/ai/providers/{id}", delete, methods=["DELETE"]),
    Route("/api/v1/ai/providers/{id}/models", models, methods=["GET"]),
    Route("/api/v1/ai/providers/{id}/test", test, methods=["POST"]),
]
