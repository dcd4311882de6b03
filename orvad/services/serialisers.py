"""The JSON shapes of the domain records: API answers, SSE events and bus events all come from here.

Each record's keys are listed explicitly, in the order clients have always seen them (the order of the
dataclass fields, which ``dataclasses.asdict`` used to give), so a new field in ``orvad/models.py``
reaches no client until it is added here (and to ``orvad/api/schemas.py``). Enum values go out as
plain strings; lists and objects are copies, so a caller that adds keys to an answer never changes a
cached record. Imports only the records. Keys, channels and routes are shaped here too, once, for the
API and the MCP tools alike.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from orvad.models import PERMISSIONS, Deployment, Function
from orvad.pool.tunables import PoolConfig

if TYPE_CHECKING:  # records only, for the annotations
    from orvad.services.channels import Channel
    from orvad.services.routing import RouteEntry
    from orvad.store.auth import KeyRow
    from orvad.store.channels import ChannelRow


def function_json(fn: Function) -> dict[str, Any]:
    """GET /api/v1/functions/{id} and every answer that carries a function."""
    return {
        "id": fn.id,
        "name": fn.name,
        "runtime": fn.runtime,
        "entrypoint": fn.entrypoint,
        "description": fn.description,
        "memory_mb": fn.memory_mb,
        "cpus": fn.cpus,
        "timeout_ms": fn.timeout_ms,
        "env_vars": dict(fn.env_vars),
        "network_mode": str(fn.network_mode),
        "auth_mode": str(fn.auth_mode),
        "max_concurrency": fn.max_concurrency,
        "concurrency_policy": str(fn.concurrency_policy),
        "rate_limit_per_min": fn.rate_limit_per_min,
        "status": str(fn.status),
        "active_deployment_id": fn.active_deployment_id,
        "created_at": fn.created_at,
        "updated_at": fn.updated_at,
        "signature_version": fn.signature_version,
        "csp_sandbox": fn.csp_sandbox,
        "cors_origins": None if fn.cors_origins is None else list(fn.cors_origins),
        "input_schema": None if fn.input_schema is None else copy.deepcopy(fn.input_schema),
        "may_invoke": list(fn.may_invoke),
        "capture_requests": fn.capture_requests,
        "egress_allow": list(fn.egress_allow),
    }


def deployment_json(dep: Deployment) -> dict[str, Any]:
    """GET /api/v1/deployments/{id}, the deployments list, the build stream's final event and the bus's
    ``deployment`` event."""
    return {
        "id": dep.id,
        "function_id": dep.function_id,
        "version": dep.version,
        "code_hash": dep.code_hash,
        "status": str(dep.status),
        "phase": str(dep.phase),
        "phases": [{"phase": str(mark["phase"]), "ts": mark["ts"]} for mark in dep.phases],
        "source": str(dep.source),
        "parent_deployment_id": dep.parent_deployment_id,
        "error_message": dep.error_message,
        "submitted_at": dep.submitted_at,
        "started_at": dep.started_at,
        "finished_at": dep.finished_at,
        "duration_ms": dep.duration_ms,
    }


def last_deployment_json(dep: Deployment | None) -> dict[str, Any] | None:
    """A function list item's ``last_deployment``: the newest deployment in brief, null when it has none."""
    if dep is None:
        return None
    return {
        "id": dep.id,
        "version": dep.version,
        "status": str(dep.status),
        "code_hash": dep.code_hash,
        "submitted_at": dep.submitted_at,
        "finished_at": dep.finished_at,
        "duration_ms": dep.duration_ms,
    }


def pool_config_json(config: PoolConfig) -> dict[str, Any]:
    """A function's pool settings (GET/PUT /api/v1/pool/config, the ``pool`` of a function update)."""
    return {
        "min_warm": config.min_warm,
        "max_warm": config.max_warm,
        "idle_ttl_seconds": config.idle_ttl_seconds,
        "target_concurrency": config.target_concurrency,
        "scale_to_zero": config.scale_to_zero,
    }


def key_json(key: KeyRow) -> dict[str, Any]:
    """An API key as /api/v1/keys and the MCP key tools show it (never its secret)."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "permissions": [p for p in PERMISSIONS if p in key.permissions],
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    }


def channel_json(row: ChannelRow, function_count: int | None = None) -> dict[str, Any]:
    """A channel in a list (never its token)."""
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "prefix": row.prefix,
        "function_count": row.function_count if function_count is None else function_count,
        "last_used_at": row.last_used_at,
        "expires_at": row.expires_at,
        "created_at": row.created_at,
    }


def channel_detail_json(channel: Channel) -> dict[str, Any]:
    """One channel with its functions and their tool names."""
    return {
        **channel_json(channel.row, len(channel.functions)),
        "functions": [
            {
                "function_id": f.function_id,
                "name": f.name,
                "tool_name": f.tool,
                "description": f.description,
                "function_description": f.function_description,
            }
            for f in channel.functions
        ],
    }


def route_json(entry: RouteEntry, function_name: str | None) -> dict[str, Any]:
    """A custom route, with the name of the function it serves (None once that is gone)."""
    return {
        "id": entry.id,
        "path": entry.path,
        "function_id": entry.function_id,
        "function_name": function_name,
        "methods": entry.methods_text(),
        "created_at": entry.created_at,
    }
