"""/api/v1/webhooks: outbound webhooks, receivers orvad tells what happened (issue 24; docs/WEBHOOKS.md).

Admin only (auth/guard.py). The signing secret is in the answers of create and rotate only.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param, read_object

_FIELDS = ("url", "events", "function", "enabled", "description")


async def list_webhooks(request: Request) -> Response:
    """Newest first; no secrets."""
    service = daemon_of(request).webhooks
    return JSONResponse({"webhooks": [service.to_json(r) for r in service.receivers()]})


async def create_webhook(request: Request) -> Response:
    """201 with the webhook and its ``secret`` (shown this once)."""
    body = await read_object(request, _FIELDS)
    service = daemon_of(request).webhooks
    receiver, secret = await service.create(body)
    return JSONResponse(service.to_json(receiver) | {"secret": secret}, status_code=201)


async def get_webhook(request: Request) -> Response:
    """One webhook with its deliveries' counts by status."""
    service = daemon_of(request).webhooks
    receiver = service.receiver(request.path_params["id"])
    counts = await service.deliveries(receiver.id, status=None, cursor=None, limit=1)
    return JSONResponse(service.to_json(receiver) | {"deliveries": counts["counts"]})


async def update_webhook(request: Request) -> Response:
    """Change the fields sent (url, events, function, enabled, description); the secret stays."""
    body = await read_object(request, _FIELDS)
    service = daemon_of(request).webhooks
    return JSONResponse(service.to_json(await service.update(request.path_params["id"], body)))


async def delete_webhook(request: Request) -> Response:
    """The webhook and its deliveries (pending ones are never sent)."""
    await daemon_of(request).webhooks.delete(request.path_params["id"])
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    """A new secret, shown this once; every attempt from now on (retries included) is signed with it."""
    service = daemon_of(request).webhooks
    receiver, secret = await service.rotate(request.path_params["id"])
    return JSONResponse(service.to_json(receiver) | {"secret": secret})


async def test_webhook(request: Request) -> Response:
    """202 with a ``ping`` delivery to this webhook, sent by the outbox's sender (follow it in
    GET /api/v1/webhooks/{id}/deliveries)."""
    delivery = await daemon_of(request).webhooks.test(request.path_params["id"])
    return JSONResponse(delivery, status_code=202)


async def list_deliveries(request: Request) -> Response:
    """Newest first, each with its attempts; ?status=pending|delivered|failed, ?limit=, ?cursor=."""
    return JSONResponse(
        await daemon_of(request).webhooks.deliveries(
            request.path_params["id"],
            status=request.query_params.get("status") or None,
            cursor=request.query_params.get("cursor") or None,
            limit=int_param(request, "limit", 50, 1, 500),
        )
    )


async def retry_delivery(request: Request) -> Response:
    """The delivery due now again, with a fresh retry window (the same webhook-id: receivers dedupe)."""
    return JSONResponse(await daemon_of(request).webhooks.retry(request.path_params["id"]))


routes = [
    Route("/api/v1/webhooks", list_webhooks, methods=["GET"]),
    Route("/api/v1/webhooks", create_webhook, methods=["POST"]),
    Route("/api/v1/webhooks/deliveries/{id}/retry", retry_delivery, methods=["POST"]),
    Route("/api/v1/webhooks/{id}", get_webhook, methods=["GET"]),
    Route("/api/v1/webhooks/{id}", update_webhook, methods=["PUT"]),
    Route("/api/v1/webhooks/{id}", delete_webhook, methods=["DELETE"]),
    Route("/api/v1/webhooks/{id}/rotate", rotate_secret, methods=["POST"]),
    Route("/api/v1/webhooks/{id}/test", test_webhook, methods=["POST"]),
    Route("/api/v1/webhooks/{id}/deliveries", list_deliveries, methods=["GET"]),
]
