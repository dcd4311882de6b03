"""JSON Schemas of the API's request bodies, query parameters and records, declared once.

The OpenAPI document (api/openapi.py) is built from this table. The handlers validate by hand
(orvad/services/functions.py, poolconfigs.py, routing.py, secrets.py, api/keys.py), so the bounds below
are written from the same constants they use, and tests/api/test_openapi.py checks both ways that a
body this page calls valid is accepted and one it calls invalid is refused with 400.

A request schema is never looser than its handler: every body valid here is accepted (unless
another record is in the way: an unknown function is 404, a taken name 409). Where a rule spans
fields or depends on stored state (min_warm <= max_warm, the entrypoint's extension against the
function's stored runtime), the schema states what it can and the description says the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orvad.api.executions import STATUSES as EXECUTION_STATUSES
from orvad.auth.passwords import MAX_LENGTH as PASSWORD_MAX
from orvad.auth.passwords import MIN_LENGTH as PASSWORD_MIN
from orvad.auth.sessions import USERNAME_RE
from orvad.corsorigins import MAX_ORIGIN_CHARS as CORS_MAX_CHARS
from orvad.corsorigins import MAX_ORIGINS as CORS_MAX
from orvad.corsorigins import ORIGIN_PATTERN as CORS_ORIGIN
from orvad.kv.service import LIST_MAX as KV_LIST_MAX
from orvad.kv.service import MAX_TTL_S as KV_MAX_TTL_S
from orvad.kv.service import MAX_VALUE_BYTES as KV_MAX_VALUE
from orvad.kv.service import MAX_VERSION as KV_MAX_VERSION
from orvad.models import (
    PERMISSIONS,
    SETTABLE_STATUSES,
    AuthMode,
    ConcurrencyPolicy,
    DeploymentSource,
    DeploymentStatus,
    FunctionStatus,
    NetworkMode,
    Phase,
)
from orvad.netrules import MAX_ALLOW
from orvad.services.functions import (
    CHOICE_ALIASES,
    CHOICES,
    ENV_NAME_RE,
    EXTENSIONS,
    MAX_ENV_TOTAL,
    MAX_ENV_VALUE,
    MAX_MAY_INVOKE,
    NAME_RE,
    NAME_RULE,
    RESERVED_ENV_PREFIX,
    RuntimeLookup,
)
from orvad.services.poolconfigs import LIMITS as POOL_LIMITS
from orvad.services.routing import METHODS, RESERVED
from orvad.services.secrets import KEY_RE, MAX_VALUE_BYTES, SIGNING_SECRET

Schema = dict[str, Any]

# UTF-8 takes at most 4 bytes a character, so this many characters always fit the byte caps; env values
# are held shorter still so that ENV_MAX_VARS of the longest names and values fit the total cap.
SECRET_VALUE_CHARS = MAX_VALUE_BYTES // 4
ENV_VALUE_CHARS = 2048
ENV_MAX_VARS = MAX_ENV_TOTAL // (128 + 4 * ENV_VALUE_CHARS)
_NO_NUL = "^[^\u0000]*$"
_RESERVED_ENV = "^[" + "][".join(f"{c.upper()}{c.lower()}" for c in RESERVED_ENV_PREFIX.rstrip("_")) + "]_"
# a relative path of segments that never start with '.', so no '..' and no hidden parent steps
_SEGMENT = r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"
_ROUTE_CHARS = r"[A-Za-z0-9._~!$&'()+,;=:@_-]"
_METHOD_LIST = "|".join(METHODS)
ROUTE_PATH = {"type": "string", "maxLength": 512, "pattern": rf"^(/{_ROUTE_CHARS}+)+/?(\*)?$"}
CORS_ORIGINS = {
    "type": ["array", "null"],
    "maxItems": CORS_MAX,
    "items": {
        "type": "string",
        "maxLength": CORS_MAX_CHARS,
        "pattern": "^(\\*|" + CORS_ORIGIN.strip("^$") + ")$",
    },
    "description": "exact origins as browsers send them (https://app.example.com: lower case, no default "
    'port, no path), or ["*"] alone; null inherits ORVA_CORS_ORIGINS, [] turns orvad\'s '
    "CORS off for the function (docs/API.md, CORS)",
}
INPUT_SCHEMA = {
    "type": ["object", "null"],
    "required": ["type"],
    "properties": {"type": {"const": "object"}},
    "description": 'the JSON Schema of the function\'s MCP tool arguments (top-level "type": "object", valid '
    "against its $schema, draft 2020-12 by default; at most 64 KiB as JSON); null: the tool takes body, query, "
    "headers, method and path (docs/MCP.md, Channel mode)",
}


MAY_INVOKE = {
    "type": "array",
    "maxItems": MAX_MAY_INVOKE,
    "items": {"type": "string"},
    "anyOf": [
        {"items": {"type": "string", "maxLength": 63, "pattern": NAME_RE.pattern}},
        {"const": ["*"]},
    ],
    "description": "the functions this one may call with orva.invoke: names (resolved at each call, so a "
    'function that does not exist yet may be named), or ["*"] alone for any function; default [] (none). '
    "Setting anything but [] needs the invoke permission too (docs/SDK.md, Function-to-function calls)",
}
EGRESS_ALLOW = {
    "type": "array",
    "maxItems": MAX_ALLOW,
    "items": {"type": "string", "maxLength": 255},
    "description": "network_mode egress only to these IPv4/IPv6 addresses, CIDRs or hostnames (no wildcards); "
    "[] (default): every destination the egress rules leave open (docs/NETWORK.md, Egress rules)",
}


def _entrypoint(extensions: tuple[str, ...]) -> Schema:
    ends = "|".join(e.lstrip(".") for e in extensions)
    first = "[A-Za-z0-9_][A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)*"  # as ENTRYPOINT_RE: not '-' or '.' first
    return {
        "type": "string",
        "maxLength": 255,
        "pattern": rf"^{first}(/{_SEGMENT})*\.({ends})$",
        "description": f"a relative path inside the code ending in {' or '.join(extensions)}",
    }


def _string(max_len: int, min_len: int = 1, **extra: Any) -> Schema:
    return {"type": "string", "minLength": min_len, "maxLength": max_len, **extra}


def _int(lo: int, hi: int) -> Schema:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
OBJ: Schema = {"type": "object"}
TIME: Schema = {"type": "string", "description": "RFC 3339 UTC"}
NTIME: Schema = {"type": ["string", "null"], "description": "RFC 3339 UTC"}
NSTR: Schema = {"type": ["string", "null"]}
NONEMPTY: Schema = {"type": "string", "minLength": 1}


def record(props: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """A response record: every listed property is present (unless optional); more may be added later."""
    return {"type": "object", "required": [p for p in props if p not in optional], "properties": props}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def page(items: str, item: str) -> Schema:
    return record({items: {"type": "array", "items": ref(item)}, "next_cursor": NSTR})


def counted_page(items: str, item: str) -> Schema:
    """A page that also carries ``total``: how many items match the filters, whatever the page."""
    return record(
        {
            items: {"type": "array", "items": ref(item)},
            "next_cursor": NSTR,
            "total": {"type": "integer", "minimum": 0},
        }
    )


# ---- records (responses) -------------------------------------------------------------------------------


def _enum(values: type[StrEnum]) -> Schema:
    """A string field that takes one of an orvad/models.py enum's values."""
    return {"type": "string", "enum": [v.value for v in values]}


RECORDS: dict[str, Schema] = {
    "Function": record(
        {
            "id": STR,
            "name": STR,
            "runtime": STR,
            "entrypoint": STR,
            "description": STR,
            "memory_mb": INT,
            "cpus": NUM,
            "timeout_ms": INT,
            "env_vars": {"type": "object", "additionalProperties": STR},
            "network_mode": _enum(NetworkMode),
            "auth_mode": _enum(AuthMode),
            "max_concurrency": INT,
            "concurrency_policy": _enum(ConcurrencyPolicy),
            "rate_limit_per_min": INT,
            "status": _enum(FunctionStatus),
            "active_deployment_id": NSTR,
            "created_at": TIME,
            "updated_at": TIME,
            "signature_version": INT,
            "csp_sandbox": BOOL,
            "cors_origins": {
                "type": ["array", "null"],
                "items": STR,
                "description": "origins whose pages may call /fn/{id} and its routes; null: ORVA_CORS_ORIGINS",
            },
            "input_schema": {
                "type": ["object", "null"],
                "description": "the JSON Schema of its MCP tool's arguments; null: body, query, headers, method, path",
            },
            "may_invoke": {
                "type": "array",
                "items": STR,
                "description": 'function names it may call with orva.invoke; ["*"]: any function',
            },
            "egress_allow": {"type": "array", "items": STR, "description": EGRESS_ALLOW["description"]},
            "capture_requests": {
                **BOOL,
                "description": "each execution keeps its request (credentials redacted) for GET .../request and replay",
            },
            "pool": {
                **record({**{f: INT for f in POOL_LIMITS}, "scale_to_zero": BOOL}),
                "description": "only in the answer of PUT /api/v1/functions/{id} that sent pool: the pool settings "
                "after the update",
            },
        },
        optional=("pool",),
    ),
    "Deployment": record(
        {
            "id": STR,
            "function_id": STR,
            "version": INT,
            "code_hash": NSTR,
            "status": _enum(DeploymentStatus),
            "phase": _enum(Phase),
            "phases": {"type": "array", "items": record({"phase": _enum(Phase), "ts": TIME})},
            "source": _enum(DeploymentSource),
            "parent_deployment_id": NSTR,
            "error_message": NSTR,
            "submitted_at": TIME,
            "started_at": NTIME,
            "finished_at": NTIME,
            "duration_ms": {"type": ["integer", "null"]},
            "deployment_id": {
                **STR,
                "description": "only in deploy and rollback answers: the id again, as the Go "
                "original named it",
            },
        },
        optional=("deployment_id",),
    ),
    "Execution": record(
        {
            "id": STR,
            "function_id": STR,
            "function_name": STR,
            "code_hash": NSTR,
            "trigger": STR,
            "method": STR,
            "path": STR,
            "status": STR,
            "status_code": INT,
            "cold_start": BOOL,
            "duration_ms": NUM,
            "queue_ms": NUM,
            "request_bytes": INT,
            "response_bytes": INT,
            "error_code": NSTR,
            "error_message": NSTR,
            "started_at": TIME,
            "finished_at": TIME,
            "channel_id": {
                **NSTR,
                "description": "trigger mcp in channel mode: the channel that called; else null",
            },
            "trace_id": {**NSTR, "description": "W3C trace id (32 hex); null on rows older than traces"},
            "span_id": {**NSTR, "description": "the execution's own span (16 hex)"},
            "parent_span_id": {**NSTR, "description": "the span that called it; null: it began its trace"},
            "trace_root": {**BOOL, "description": "it entered its trace from outside orvad (not F2F/jobs)"},
            "outlier": {**BOOL, "description": "slower than twice the function's rolling p95 (docs/API.md)"},
        }
    ),
    "Key": record(
        {
            "id": STR,
            "name": STR,
            "prefix": STR,
            "permissions": {"type": "array", "items": {"type": "string", "enum": list(PERMISSIONS)}},
            "created_at": TIME,
            "expires_at": NTIME,
            "last_used_at": NTIME,
        }
    ),
    "Route": record(
        {
            "id": STR,
            "path": STR,
            "function_id": STR,
            "function_name": NSTR,
            "methods": STR,
            "created_at": TIME,
        }
    ),
    "PoolConfig": record({"function_id": STR, **{f: INT for f in POOL_LIMITS}, "scale_to_zero": BOOL}),
    "SecretName": record({"key": STR, "created_at": TIME, "updated_at": TIME}),
    "User": record({"id": STR, "username": STR, "created_at": TIME}),
    "Health": record(
        {
            "status": {"type": "string", "enum": ["ok", "unhealthy"]},
            "version": STR,
            "uptime_s": NUM,
            "checks": {
                "type": "object",
                "additionalProperties": record(
                    {"ok": BOOL, "required": BOOL, "detail": {}}, optional=("required", "detail")
                ),
            },
            "details_hidden": STR,
        },
        optional=("details_hidden",),
    ),
    "Deleted": record({"id": STR, "deleted": {"const": True}}),
    "Session": record({"user": ref("User"), "expires_at": TIME}),
}
RECORDS["LastDeployment"] = record(
    {
        "id": STR,
        "version": INT,
        "status": _enum(DeploymentStatus),
        "code_hash": NSTR,
        "submitted_at": TIME,
        "finished_at": NTIME,
        "duration_ms": {"type": ["integer", "null"]},
    }
)
RECORDS["FunctionListItem"] = {
    "allOf": [
        ref("Function"),
        record(
            {
                "last_deployment": {
                    "oneOf": [ref("LastDeployment"), {"type": "null"}],
                    "description": "the function's newest deployment, null when it has none",
                }
            }
        ),
    ]
}
RECORDS["KeyCreated"] = {"allOf": [ref("Key"), record({"key": {"type": "string", "pattern": "^orva_"}})]}
_BASE64 = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# KV (issue 23): a key's record without its value, and with it (bytes as {"$bytes": base64})
_KV_META = {
    "function_id": STR,
    "key": STR,
    "type": {"type": "string", "enum": ["json", "bytes"]},
    "size": INT,
    "version": INT,
    "expires_at": NTIME,
    "created_at": TIME,
    "updated_at": TIME,
}
RECORDS["KvKey"] = record({k: v for k, v in _KV_META.items() if k != "function_id"})
RECORDS["KvEntry"] = record({**_KV_META, "value": {"description": 'JSON, or {"$bytes": "<base64>"}'}})
RECORDS["TraceListItem"] = record(
    {
        "id": {**STR, "description": "the execution that entered the trace (the page's cursor)"},
        "trace_id": STR,
        "root": record(
            {"execution_id": STR, "function_id": STR, "function_name": STR, "trigger": STR, "status": STR}
        ),
        "function_id": STR,
        "function_name": STR,
        "started_at": TIME,
        "duration_ms": NUM,
        "executions": INT,
        "span_count": INT,
        "errors": INT,
        "status": {"type": "string", "enum": ["ok", "error"]},
    }
)
RECORDS["TraceSpan"] = record(
    {
        "kind": {"type": "string", "enum": ["execution", "span"]},
        "span_id": STR,
        "parent_span_id": NSTR,
        "name": STR,
        "execution_id": STR,
        "function_id": STR,
        "status": STR,
        "offset_ms": NUM,
        "duration_ms": NUM,
        "depth": INT,
        "function_name": STR,
        "trigger": STR,
        "method": STR,
        "path": STR,
        "status_code": INT,
        "error_code": NSTR,
        "cold_start": BOOL,
        "outlier": BOOL,
        "started_at": TIME,
        "attributes": {"type": "object"},
    },
    optional=(
        "function_name",
        "trigger",
        "method",
        "path",
        "status_code",
        "error_code",
        "cold_start",
        "outlier",
        "started_at",
        "attributes",
    ),
)
RECORDS["Trace"] = record(
    {
        "trace_id": STR,
        "started_at": NTIME,
        "duration_ms": NUM,
        "span_count": INT,
        "executions": INT,
        "errors": INT,
        "status": {"type": "string", "enum": ["ok", "error"]},
        "truncated": BOOL,
        "spans": {"type": "array", "items": ref("TraceSpan")},
    }
)
RECORDS["KvWritten"] = record(_KV_META, optional=("created_at", "updated_at"))
# jobs (issue 23): a durable background invocation, and its attempts (each an execution)
JOB_STATUSES = ["pending", "running", "failed", "succeeded", "dead", "cancelled"]
_JOB_ERROR = {"type": ["object", "null"], "properties": {"code": STR, "message": STR}}
RECORDS["Job"] = record(
    {
        "id": {**STR, "pattern": "^job_"},
        "function_id": STR,
        "function_name": STR,
        "status": {"type": "string", "enum": JOB_STATUSES},
        "trigger": {"type": "string", "enum": ["job", "event", "cron"]},
        "source": {"type": "string", "enum": ["api", "sdk", "event", "cron"]},
        "attempts": INT,
        "tries": INT,
        "max_attempts": INT,
        "run_at": TIME,
        "lease_until": NTIME,
        "idempotency_key": NSTR,
        "idempotency_expires_at": NTIME,
        "trace_id": NSTR,
        "last_error": _JOB_ERROR,
        "created_at": TIME,
        "updated_at": TIME,
        "finished_at": NTIME,
    }
)
RECORDS["JobAttempt"] = record(
    {
        "attempt": INT,
        "execution_id": NSTR,
        "outcome": {"type": "string", "enum": ["running", "succeeded", "failed", "lost"]},
        "status_code": {"type": ["integer", "null"]},
        "error": _JOB_ERROR,
        "started_at": TIME,
        "finished_at": NTIME,
    }
)
RECORDS["JobDetail"] = {
    "allOf": [ref("Job"), record({"attempts_list": {"type": "array", "items": ref("JobAttempt")}})]
}
# cron (issue 23): a function's schedule; each run is a job (last_status: its job's status)
RECORDS["CronSchedule"] = record(
    {
        "id": STR,
        "function_id": STR,
        "function_name": STR,
        "name": STR,
        "expression": STR,
        "timezone": STR,
        "payload": {"description": "any JSON value: each run's event body"},
        "enabled": BOOL,
        "catch_up": {"type": "string", "enum": ["once", "skip"]},
        "source": {"type": "string", "enum": ["api", "sdk"], "description": "who wrote it last"},
        "next_run_at": {**NTIME, "description": "RFC 3339 UTC; null while disabled"},
        "last_run_at": NTIME,
        "last_tick_at": {**NTIME, "description": "the tick the last run was for (null: a run by hand)"},
        "last_status": {
            "type": ["string", "null"],
            "description": "the last run's job status: pending, running, failed, succeeded, dead, cancelled",
        },
        "last_job_id": NSTR,
        "created_at": TIME,
        "updated_at": TIME,
    }
)
# channels (issue 21)
RECORDS["Channel"] = record(
    {
        "id": STR,
        "name": STR,
        "description": STR,
        "prefix": STR,
        "function_count": INT,
        "last_used_at": NTIME,
        "expires_at": NTIME,
        "created_at": TIME,
    }
)
RECORDS["ChannelDetail"] = {
    "allOf": [
        ref("Channel"),
        record(
            {
                "functions": {
                    "type": "array",
                    "items": record(
                        {
                            "function_id": STR,
                            "name": STR,
                            "tool_name": STR,
                            "description": NSTR,
                            "function_description": STR,
                        }
                    ),
                }
            }
        ),
    ]
}
RECORDS["ChannelCreated"] = {
    "allOf": [
        ref("ChannelDetail"),
        record({"token": {"type": "string", "pattern": "^orva_chn_[0-9a-f]{32}$"}}),
    ]
}
RECORDS["ChannelClientConfig"] = record(
    {
        "url": {
            "type": "string",
            "description": "this orvad's /mcp (ORVA_PUBLIC_URL, else the request's host)",
        },
        "token_placeholder": {
            "type": "string",
            "description": "the environment variable the snippets read the channel token from",
        },
        "server_name": {"type": "string", "description": "the key under mcpServers: orva-<channel name>"},
        "claude_desktop": {
            "type": "object",
            "description": "claude_desktop_config.json's mcpServers entry (npx mcp-remote; token in env)",
        },
        "cursor": {"type": "object", "description": "Cursor's mcp.json entry (url + headers)"},
        "mcp_remote": {"type": "string", "description": "a shell line running mcp-remote (stdio clients)"},
    }
)

# OAuth connected apps (issue 21: remote MCP connectors; orvad/api/oauth.py)
RECORDS["ConnectedApp"] = record(
    {
        "client_id": {
            "type": "string",
            "description": "the client's id from dynamic registration (RFC 7591)",
        },
        "client_name": {"type": "string"},
        "redirect_uris": {"type": "array", "items": {"type": "string"}},
        "scopes": {
            "type": "array",
            "items": {"type": "string", "enum": ["read", "invoke", "write", "admin"]},
            "description": "what its live grants allow at /mcp",
        },
        "created_at": {"type": "string", "format": "date-time", "description": "when it registered"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
    }
)

# the AI assistant's conversations (issue 22; orvad/api/ai.py, docs/ASSISTANT.md)
_AI_USAGE = record({"input_tokens": INT, "output_tokens": INT})
RECORDS["AiToolCall"] = record(
    {
        "id": STR,
        "conversation_id": STR,
        "message_id": STR,
        "name": {"type": "string", "description": "an operator tool (docs/MCP.md, Operator mode)"},
        "arguments": OBJ,
        "status": {
            "type": "string",
            "enum": ["awaiting_approval", "approved", "running", "done", "error", "rejected"],
        },
        "result": {"type": ["string", "null"], "description": "as sent to the model (at most 16 KiB)"},
        "is_error": BOOL,
        "created_at": TIME,
        "resolved_at": NTIME,
    }
)
RECORDS["AiMessage"] = record(
    {
        "id": STR,
        "conversation_id": STR,
        "seq": INT,
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": STR,
        "thinking": STR,
        "status": {
            "type": "string",
            "enum": ["streaming", "awaiting_approval", "complete", "error", "cancelled"],
        },
        "error": {
            "type": ["object", "null"],
            "description": "the error (code, message, hint) when status is error",
        },
        "provider_id": NSTR,
        "model": NSTR,
        "usage": _AI_USAGE,
        "created_at": TIME,
        "tool_calls": {"type": "array", "items": ref("AiToolCall")},
    }
)
RECORDS["AiConversation"] = record(
    {
        "id": STR,
        "title": STR,
        "archived": BOOL,
        "provider_id": NSTR,
        "model": NSTR,
        "usage": _AI_USAGE,
        "running": {"type": "boolean", "description": "a turn is running now"},
        "created_at": TIME,
        "updated_at": TIME,
    }
)
RECORDS["AiConversationDetail"] = {
    "allOf": [ref("AiConversation"), record({"messages": {"type": "array", "items": ref("AiMessage")}})]
}
RECORDS["AiSettings"] = record(
    {
        "provider_id": NSTR,
        "model": NSTR,
        "thinking": {"type": "string", "enum": ["off", "low", "medium", "high"]},
        "approval_policy": {"type": "string", "enum": ["all_writes", "destructive_only", "auto"]},
        "max_tool_steps": {"type": "integer", "minimum": 1, "maximum": 100},
        "updated_at": NTIME,
    }
)


# the AI assistant's provider configs (issue 22; orvad/api/ai_providers.py): never the key
AI_PROVIDER_KINDS = ["anthropic", "openai"]
RECORDS["AiProvider"] = record(
    {
        "id": STR,
        "kind": {
            "type": "string",
            "enum": AI_PROVIDER_KINDS,
            "description": "anthropic: the Messages API; openai: any OpenAI-compatible endpoint",
        },
        "label": STR,
        "base_url": {**NSTR, "description": "null: the provider's own"},
        "has_key": BOOL,
        "key_hint": {**NSTR, "description": "the key's last 4 characters (keys of 8 or more); never the key"},
        "created_at": TIME,
        "updated_at": TIME,
    }
)
RECORDS["AiProviderTest"] = record(
    {
        "provider_id": STR,
        "ok": {"const": True},
        "latency_ms": NUM,
        "models": {"type": "array", "items": STR},
        "model": record(
            {
                "name": STR,
                "reply": STR,
                "stop_reason": {
                    "type": ["string", "null"],
                    "enum": ["end", "tool_use", "max_tokens", "other", None],
                },
                "latency_ms": NUM,
            }
        ),
    },
    optional=("model",),
)

# ---- request bodies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the request schemas depend on at this host: runtime ids per language, and its cores."""

    runtimes: dict[str, list[str]]  # language -> ids and aliases
    cores: int

    @classmethod
    def of(cls, runtimes: RuntimeLookup) -> Facts:
        by_language: dict[str, list[str]] = {}
        for runtime_id in runtimes.ids():
            language = runtimes.language_of(runtime_id)
            if language is not None:
                by_language.setdefault(language, []).append(runtime_id)
        return cls(by_language, os.cpu_count() or 1)


def _env_vars() -> Schema:
    return {
        "type": "object",
        "maxProperties": ENV_MAX_VARS,
        "propertyNames": {"pattern": ENV_NAME_RE.pattern, "not": {"pattern": _RESERVED_ENV}},
        "additionalProperties": _string(ENV_VALUE_CHARS, 0, pattern=_NO_NUL),
        "description": f"NAME: value; names not ORVA_*, values without NUL, at most {MAX_ENV_VALUE} bytes each "
        f"and {MAX_ENV_TOTAL} in all",
    }


def function_fields(facts: Facts) -> dict[str, Schema]:
    every_runtime = sorted(r for ids in facts.runtimes.values() for r in ids)
    all_ext = tuple(e for lang in facts.runtimes for e in EXTENSIONS[lang])
    return {
        "name": {"type": "string", "pattern": NAME_RE.pattern, "maxLength": 63, "description": NAME_RULE},
        "runtime": {"type": "string", "enum": every_runtime or ["python"]},
        "entrypoint": _entrypoint(all_ext or EXTENSIONS["python"]),
        "description": _string(1024, 0),
        "memory_mb": _int(16, 4096),
        "cpus": {"type": "number", "minimum": 0.1, "maximum": facts.cores},
        "timeout_ms": _int(100, 900_000),
        "env_vars": _env_vars(),
        "network_mode": {"type": "string", "enum": list(CHOICES["network_mode"])},
        "auth_mode": {
            "type": "string",
            "enum": [*CHOICES["auth_mode"], *CHOICE_ALIASES["auth_mode"]],
            "description": "platform_key: the Go original's name of api_key (stored and answered as api_key)",
        },
        "max_concurrency": _int(0, 10_000),
        "concurrency_policy": {"type": "string", "enum": list(CHOICES["concurrency_policy"])},
        "rate_limit_per_min": _int(0, 1_000_000),
        "signature_version": _int(1, 2),
        "csp_sandbox": BOOL,
        "cors_origins": CORS_ORIGINS,
        "input_schema": INPUT_SCHEMA,
        "may_invoke": MAY_INVOKE,
        "capture_requests": BOOL,
        "egress_allow": EGRESS_ALLOW,
    }


def _entrypoint_matches_runtime(facts: Facts) -> list[Schema]:
    """An entrypoint sent with a runtime must end in that runtime's extension."""
    rules = []
    for language, ids in sorted(facts.runtimes.items()):
        rules.append(
            {
                "if": {"required": ["runtime", "entrypoint"], "properties": {"runtime": {"enum": ids}}},
                "then": {"properties": {"entrypoint": _entrypoint(EXTENSIONS[language])}},
            }
        )
    return rules


_AI_OVERRIDES: dict[str, Schema] = {
    "provider_id": {
        **_string(256),
        "description": "this message only (else the conversation's, else the settings')",
    },
    "model": _string(256),
    "thinking": {"type": "string", "enum": ["off", "low", "medium", "high"]},
}


_CRON_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "pattern": NAME_RE.pattern, "maxLength": 63, "description": NAME_RULE},
    "expression": {
        "type": "string",
        "maxLength": 200,
        "pattern": r"^\s*(@[A-Za-z]+|\S+(\s+\S+){4})\s*$",
        "description": "five fields (minute hour day-of-month month day-of-week) or @yearly, @annually, @monthly, "
        "@weekly, @daily, @midnight, @hourly; checked with croniter (6/7 fields are refused)",
    },
    "timezone": {
        "type": "string",
        "maxLength": 64,
        "pattern": r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,3}$",
        "description": "an IANA name (default UTC); unknown names are refused",
    },
    "payload": {"description": "any JSON value up to 64 KiB: each run's event body (default null)"},
    "enabled": {**BOOL, "description": "default true"},
    "catch_up": {
        "type": "string",
        "enum": ["once", "skip"],
        "description": "a tick missed while orvad was down: once (default) runs once at start, skip does not",
    },
}


_WEBHOOK_EVENTS = [
    "*",
    "deployment.succeeded",
    "deployment.failed",
    "function.created",
    "function.updated",
    "function.deleted",
    "execution.error",
    "job.succeeded",
    "job.failed",
    "cron.failed",
]  # orvad/webhooks/outbound.py EVENT_TYPES and "*"
_WEBHOOK_FIELDS: dict[str, Schema] = {
    "url": {
        "type": "string",
        "minLength": 1,
        "maxLength": 2048,
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
        "description": "http:// or https://, no user@",
    },
    "events": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": _WEBHOOK_EVENTS}},
    "function": {"type": ["string", "null"], "description": "only events of this function (id or name)"},
    "enabled": BOOL,
    "description": {"type": "string", "maxLength": 500},
}
_FIXTURE_FIELDS: dict[str, Schema] = {}  # FixtureSave's properties, filled at the end of this module


# inbound webhooks (issue 24; orvad/api/inbound_webhooks.py): null means "absent" for the optional fields
_INBOUND_FORMATS = ["github", "stripe", "slack", "hmac_sha256_hex", "hmac_sha256_base64"]
_INBOUND_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "format": {"type": "string", "enum": _INBOUND_FORMATS},
    "header": {
        "type": ["string", "null"],
        "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$",
        "description": "hmac_* formats: the header carrying the signature (default X-Signature)",
    },
    "prefix": {
        "type": ["string", "null"],
        "maxLength": 50,
        "description": "hmac_* formats: text before the signature, e.g. sha256=",
    },
    "tolerance_s": {
        "type": ["integer", "null"],
        "minimum": 10,
        "maximum": 86400,
        "description": "timestamps (stripe, slack) this far from orvad's clock are refused; deliveries are "
        "remembered this long (replays refused); default 300",
    },
    "mode": {
        "type": ["string", "null"],
        "enum": ["sync", "async", None],
        "description": "sync: the function's reply goes back; async: a job, 202 at once",
    },
    "enabled": {"type": ["boolean", "null"]},
    "secret": {
        "type": ["string", "null"],
        "minLength": 16,
        "maxLength": 256,
        "description": "the sender's secret (Stripe's whsec_..., Slack's signing secret); left out: orvad "
        "generates one. Shown only in the create and rotate answers",
    },
}


def bodies(facts: Facts) -> dict[str, Schema]:
    fields_ = function_fields(facts)
    closed = {"type": "object", "additionalProperties": False}
    return {
        "FunctionCreate": {
            **closed,
            "required": ["name", "runtime"],
            "properties": fields_,
            "allOf": _entrypoint_matches_runtime(facts),
        },
        "FunctionUpdate": {
            **closed,
            "properties": {
                **fields_,
                "status": {
                    "type": "string",
                    "enum": [s.value for s in SETTABLE_STATUSES],
                    "description": "active needs a succeeded deployment (409 otherwise)",
                },
                "pool": {
                    **closed,
                    "properties": {
                        **{f: _int(lo, hi) for f, (lo, hi) in POOL_LIMITS.items()},
                        "scale_to_zero": BOOL,
                    },
                    "description": "partial pool settings (as PUT /api/v1/pool/config); min_warm may not exceed "
                    "max_warm once merged; an error names details.field pool.<name>",
                },
            },
            "allOf": _entrypoint_matches_runtime(facts),
            "description": "partial; an entrypoint sent alone must suit the function's stored runtime. Every field "
            "is validated before anything is saved: all saved, or nothing. Answers once the next "
            "invocation runs with the new settings",
        },
        "DeployInline": {
            **closed,
            "required": ["code"],
            "properties": {
                "code": {"type": "string", "pattern": r"\S", "description": "the handler's source"},
                "filename": _entrypoint(
                    tuple(e for lang in facts.runtimes for e in EXTENSIONS[lang]) or EXTENSIONS["python"]
                ),
                "dependencies": {
                    **STR,
                    "description": "requirements.txt text (Python) or name@range specs / "
                    "a package.json (Node)",
                },
            },
        },
        "Rollback": {
            **closed,
            "properties": {
                "deployment_id": {
                    **STR,
                    "description": "a deployment id of this function, or a unique prefix of one "
                    "(at least 6 characters)",
                },
                "code_hash": {
                    "type": "string",
                    "pattern": "^[0-9a-fA-F]{6,64}$",
                    "description": "a code hash of a succeeded deployment, or a unique prefix of one",
                },
            },
            "minProperties": 1,
            "maxProperties": 1,
            "description": "exactly one of deployment_id or code_hash; a prefix that matches several "
            "versions answers 409 AMBIGUOUS",
        },
        "KeyCreate": {
            **closed,
            "required": ["name"],
            "properties": {
                "name": _string(64),
                "permissions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "enum": list(PERMISSIONS)},
                },
                "expires_in_days": _int(1, 3650),
                "expires_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "RFC 3339, in the future",
                },
            },
            "not": {"required": ["expires_in_days", "expires_at"]},
        },
        "ChannelCreate": {
            **closed,
            "required": ["name"],
            "properties": {
                "name": _string(64),
                "description": {"type": "string", "maxLength": 1024},
                "function_ids": {"type": "array", "maxItems": 256, "items": _string(128)},
                "expires_in_days": _int(1, 3650),
                "expires_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "RFC 3339, in the future",
                },
            },
            "not": {"required": ["expires_in_days", "expires_at"]},
            "description": "function_ids are function ids (or names); two whose names snake_case to the same "
            "MCP tool name answer 400 TOOL_NAME_COLLISION; an unknown one 404",
        },
        "ChannelUpdate": {
            **closed,
            "properties": {
                "name": _string(64),
                "description": {"type": "string", "maxLength": 1024},
                "expires_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "RFC 3339, in the future; null: never expires",
                },
            },
        },
        "ChannelFunctions": {
            **closed,
            "required": ["function_ids"],
            "properties": {
                "function_ids": {"type": "array", "maxItems": 256, "items": _string(128)},
                "descriptions": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 1024},
                    "description": "function id -> tool description override; each key must be in function_ids",
                },
            },
        },
        # the AI assistant (issue 22)
        "AiChat": {
            **closed,
            "required": ["content"],
            "properties": {
                "conversation_id": {**NONEMPTY, "description": "absent: a new conversation"},
                "content": _string(100_000),
                **_AI_OVERRIDES,
            },
        },
        "AiRegenerate": {**closed, "properties": _AI_OVERRIDES},
        "AiEdit": {**closed, "required": ["content"], "properties": {"content": _string(100_000)}},
        "AiConversationCreate": {
            **closed,
            "properties": {
                "title": {"type": "string", "maxLength": 200},
                "provider_id": _string(256),
                "model": _string(256),
            },
        },
        "AiConversationUpdate": {
            **closed,
            "properties": {"title": {"type": "string", "maxLength": 200}, "archived": BOOL},
        },
        "AiSettingsUpdate": {
            **closed,
            "properties": {
                "provider_id": {**_nullable(_string(256)), "description": "a provider's id; null: none"},
                "model": _nullable(_string(256)),
                "thinking": {"type": "string", "enum": ["off", "low", "medium", "high"]},
                "approval_policy": {"type": "string", "enum": ["all_writes", "destructive_only", "auto"]},
                "max_tool_steps": _int(1, 100),
            },
        },
        # the AI assistant's provider configs (issue 22): upsert by id, else by label
        "AiProviderUpsert": {
            **closed,
            "properties": {
                "id": {
                    **_string(128),
                    "description": "change this provider (absent: the one with this label)",
                },
                "kind": {"type": "string", "enum": AI_PROVIDER_KINDS},
                "label": {
                    **_string(64),
                    "pattern": "^[^/\\u0000-\\u001f\\u007f]*[^/\\s\\u0000-\\u001f\\u007f][^/\\u0000-\\u001f\\u007f]*$",
                },
                "base_url": {
                    "type": ["string", "null"],
                    "maxLength": 2048,
                    "pattern": "^https?://[^\\s/?#@]+(/[^\\s?#]*)?$",
                    "description": "http(s) only, no user:password@; null or absent: the provider's own",
                },
                "api_key": {
                    "type": ["string", "null"],
                    "maxLength": 4096,
                    "pattern": "^\\s*[^\\s\\u0000-\\u001f\\u007f]*\\s*$",
                    "description": 'stored encrypted, never returned; null or "": remove the key; absent: keep it',
                },
            },
        },
        "AiProviderTest": {
            **closed,
            "properties": {
                "model": {**_nullable(_string(256)), "description": "also send a short request to it"}
            },
        },
        "RouteSave": {
            **closed,
            "required": ["path", "function_id"],
            "properties": {
                "path": {
                    **ROUTE_PATH,
                    "not": {
                        "pattern": "^/(" + "|".join(sorted({r.strip("/") for r in RESERVED})) + ")(/.*)?$"
                    },
                    "description": "'/exact' or '/prefix/*', decoded (no %-escapes); not under "
                    + ", ".join(RESERVED),
                },
                "function_id": {**STR, "description": "a function id or name"},
                "methods": {
                    "type": ["string", "null"],
                    "pattern": rf"^(\*|({_METHOD_LIST})(,({_METHOD_LIST}))*)$",
                    "description": "'*' (also null or absent) or a comma list",
                },
            },
        },
        "PoolConfigUpdate": {
            **closed,
            "required": ["function_id"],
            "properties": {
                "function_id": {**STR, "description": "a function id or name"},
                **{f: _int(lo, hi) for f, (lo, hi) in POOL_LIMITS.items()},
                "scale_to_zero": BOOL,
            },
            "description": "partial; min_warm may not exceed max_warm once merged",
        },
        "KvPut": {
            **closed,
            "required": ["value"],
            "properties": {
                "value": {
                    "if": {"type": "object", "required": ["$bytes"], "maxProperties": 1},
                    "then": {"properties": {"$bytes": {"type": "string", "pattern": _BASE64}}},
                    "description": 'any JSON value, or bytes as {"$bytes": "<base64>"}; at most '
                    f"{KV_MAX_VALUE} bytes as compact UTF-8 JSON (bytes: decoded); more is 413 PAYLOAD_TOO_LARGE",
                },
                "ttl_s": {
                    "type": ["number", "null"],
                    "minimum": 0.001,
                    "maximum": KV_MAX_TTL_S,
                    "description": "seconds until the key expires; absent or null: never",
                },
                "if_version": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": KV_MAX_VERSION,
                    "description": "write only if the key's version is this (0: only if the key does not exist); "
                    "otherwise 409 KV_VERSION_CONFLICT",
                },
            },
            "description": "or the raw bytes of a bytes value with any other Content-Type (?ttl_s= and "
            "?if_version= then)",
        },
        "JobEnqueue": {
            **closed,
            "required": ["function"],
            "properties": {
                "function": {**NONEMPTY, "maxLength": 200, "description": "a function id or name"},
                "payload": {"description": "any JSON value (default null): the handler's JSON body"},
                "scheduled_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "RFC 3339; absent or past: now; at most 10 years ahead",
                },
                "max_attempts": {"type": ["integer", "null"], "minimum": 1, "maximum": 25},
                "idempotency_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
                "idempotency_window_s": {"type": ["number", "null"], "minimum": 1, "maximum": 30 * 86400},
            },
            "description": "202 with the new job; 200 with the existing one when idempotency_key was used for the "
            "function within its window",
        },
        "CronUpsert": {
            **closed,
            "properties": _CRON_FIELDS,
            "description": "creates a schedule (201), or changes the function's schedule of this name (200; "
            "fields left out keep their value); expression is required for a new one",
        },
        "CronUpdate": {
            **closed,
            "minProperties": 1,
            "properties": _CRON_FIELDS,
            "description": "the fields to change; a new expression, timezone or enabled recomputes next_run_at",
        },
        "SecretUpsert": {
            **closed,
            "required": ["key", "value"],
            "properties": {
                "key": {
                    "type": "string",
                    "pattern": KEY_RE.pattern,
                    "not": {"allOf": [{"pattern": _RESERVED_ENV}, {"not": {"const": SIGNING_SECRET}}]},
                    "description": f"an environment variable name; not ORVA_* except {SIGNING_SECRET}",
                },
                "value": _string(
                    SECRET_VALUE_CHARS,
                    0,
                    pattern=_NO_NUL,
                    description=f"at most {MAX_VALUE_BYTES} bytes, no NUL",
                ),
            },
        },
        "Onboard": {
            **closed,
            "required": ["username", "password"],
            "properties": {
                "username": {"type": "string", "pattern": USERNAME_RE.pattern},
                "password": _string(PASSWORD_MAX, PASSWORD_MIN),
                "setup_token": {
                    **NSTR,
                    "description": "the bootstrap admin key (<data-dir>/admin.key); null or absent: "
                    "X-Orva-API-Key is the proof",
                },
            },
        },
        "Login": {
            **closed,
            "required": ["username", "password"],
            "properties": {"username": STR, "password": {"type": "string", "maxLength": PASSWORD_MAX}},
        },
        "ChangePassword": {
            **closed,
            "required": ["current_password", "new_password"],
            "properties": {"current_password": STR, "new_password": _string(PASSWORD_MAX, PASSWORD_MIN)},
        },
        # issue 23, replay (orvad/api/replay.py): open schemas, the handler refuses unknown fields
        "FixtureSave": {
            "type": "object",
            "required": ["name"],
            "properties": _FIXTURE_FIELDS,
            "description": "a saved test request; PUT replaces every field (one left out takes its default); "
            "unknown fields are refused (400 VALIDATION)",
        },
        "ReplayRequest": {"type": "object", "description": "no fields: send {} or no body"},
        # issue 24, outbound webhooks (orvad/api/webhooks.py)
        "WebhookCreate": {
            **closed,
            "required": ["url", "events"],
            "properties": _WEBHOOK_FIELDS,
            "description": "201 with the webhook and its signing secret (shown this once)",
        },
        "WebhookUpdate": {
            **closed,
            "properties": _WEBHOOK_FIELDS,
            "description": "the fields sent change; the secret stays (POST /api/v1/webhooks/{id}/rotate)",
        },
        # issue 24, inbound webhooks (orvad/api/inbound_webhooks.py)
        "InboundWebhookCreate": {
            **closed,
            "required": ["name", "format"],
            "properties": _INBOUND_FIELDS,
            "description": "201 with the webhook, its URL and its secret (shown this once); header and prefix "
            "only with the hmac_* formats",
        },
        "InboundWebhookUpdate": {
            **closed,
            "minProperties": 1,
            "properties": _INBOUND_FIELDS,
            "description": "the fields sent change; a secret sent replaces the current one",
        },
        **_firewall_bodies(),
    }


# one example body each, shown in the document (and sent by schemathesis's examples phase)
EXAMPLES: dict[str, Schema] = {
    "FunctionCreate": {"name": "hello-world", "runtime": "python", "memory_mb": 128, "timeout_ms": 10000},
    "FunctionUpdate": {"description": "greets", "env_vars": {"GREETING": "hello"}},
    "DeployInline": {
        "code": "def handler(event, context):\n    return {'hello': 'world'}\n",
        "dependencies": "",
    },
    "Rollback": {"deployment_id": "01900000-0000-7000-8000-000000000000"},
    "KeyCreate": {"name": "ci", "permissions": ["read", "write"], "expires_in_days": 30},
    "ChannelCreate": {
        "name": "support-bot",
        "description": "Support workflow toolkit",
        "expires_in_days": 30,
    },
    "ChannelUpdate": {"description": "Support workflow toolkit"},
    "ChannelFunctions": {"function_ids": []},
    "AiChat": {"content": "Make me a function that says hello on /hello"},
    "AiRegenerate": {"thinking": "low"},
    "AiEdit": {"content": "Make it say goodbye instead"},
    "AiConversationCreate": {"title": "Image thumbnails"},
    "AiConversationUpdate": {"archived": True},
    "AiSettingsUpdate": {"approval_policy": "destructive_only", "max_tool_steps": 20},
    "AiProviderUpsert": {"kind": "openai", "label": "local-ollama", "base_url": "http://127.0.0.1:11434/v1"},
    "AiProviderTest": {"model": "llama3.2"},
    "RouteSave": {"path": "/hooks/stripe", "function_id": "hello-world", "methods": "POST"},
    "PoolConfigUpdate": {"function_id": "hello-world", "min_warm": 1, "max_warm": 4},
    "SecretUpsert": {"key": "API_TOKEN", "value": "s3cret"},
    "KvPut": {"value": {"visits": 1}, "ttl_s": 3600},
    "JobEnqueue": {
        "function": "send-welcome-email",
        "payload": {"user": 42},
        "idempotency_key": "welcome-42",
    },
    "CronUpsert": {
        "name": "nightly",
        "expression": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "payload": {"report": "daily"},
    },
    "CronUpdate": {"enabled": False},
    "Onboard": {"username": "admin", "password": "a-long-passphrase", "setup_token": "orva_" + "0" * 64},
    "Login": {"username": "admin", "password": "a-long-passphrase"},
    "ChangePassword": {"current_password": "a-long-passphrase", "new_password": "another-long-passphrase"},
}


# ---- query parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    description: str = ""
    required: bool = False

    def openapi(self) -> Schema:
        out: Schema = {"name": self.name, "in": "query", "required": self.required, "schema": self.schema}
        if self.description:
            out["description"] = self.description
        return out


LIMIT = Param("limit", _int(1, 500), "page size (default 50)")
CURSOR = Param("cursor", STR, "next_cursor of the previous page")
PAGE = (LIMIT, CURSOR)
# the function and execution lists: a page of up to 1000 (the Go original's ceiling), and ?offset= beside ?cursor=
OFFSET = Param("offset", _int(0, 1_000_000), "rows to skip (the Go original's paging); not with cursor")
COUNTED_PAGE = (Param("limit", _int(1, 1000), "page size (default 50)"), CURSOR, OFFSET)
FUNCTION_FILTER = Param("function_id", STR, "a function id or name")
SINCE = Param("since", {"type": "string", "format": "date-time"}, "RFC 3339")
HIDE_READS = Param(  # the activity feed and the audit log (issue 24: reads are rows)
    "hide_reads",
    {"type": "string", "enum": ["true", "false", "1", "0"]},
    "leave out the API reads (GET, HEAD)",
)


@dataclass(frozen=True)
class Op:
    """What the document says of one operation beyond its path, summary and security."""

    body: str | None = None  # name of a JSON body schema in bodies()
    raw_body: dict[str, Schema] | None = None  # other request content types
    query: tuple[Param, ...] = ()
    ok: dict[str, dict[str, Schema]] = field(default_factory=dict)  # status -> content type -> schema
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # status -> links
    headers: dict[str, dict[str, Schema]] = field(default_factory=dict)  # status -> header -> schema


def json_ok(schema: Schema, status: str = "200") -> dict[str, dict[str, Schema]]:
    return {status: {"application/json": schema}}


def _link(operation_id: str, **params: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": params}


_FN_LINKS = {
    f"{name}": _link(op, id="$response.body#/id")
    for name, op in (
        ("GetFunction", "functions_get_function"),
        ("UpdateFunction", "functions_update_function"),
        ("DeleteFunction", "functions_delete_function"),
        ("DeployInline", "functions_deploy_inline"),
        ("ListDeployments", "functions_list_deployments"),
        ("ListSecrets", "secrets_list_secrets"),
        ("UpsertSecret", "secrets_upsert_secret"),
        ("Kill", "functions_kill"),
    )
}
_DEP_LINKS = {
    "GetDeployment": _link("deployments_get_deployment", id="$response.body#/id"),
    "GetDeploymentLogs": _link("deployments_get_logs", id="$response.body#/id"),
}
_ROUTE_LINKS = {
    "DeleteRoute": _link("routes_delete_route", path="$response.body#/path"),
    "ListRoutes": _link("routes_list_routes", function_id="$response.body#/function_id"),
}
_POOL_LINKS = {"GetPoolConfig": _link("pools_get_config", function_id="$response.body#/function_id")}
_SECRET_LINKS = {
    "DeleteSecret": _link(
        "secrets_delete_secret", id="$response.body#/function_id", key="$response.body#/key"
    ),
    "ListSecrets": _link("secrets_list_secrets", id="$response.body#/function_id"),
}
_EXECUTION_LINKS = {"GetExecutionLogs": _link("executions_get_logs", id="$response.body#/id")}

# a 503 some operations answer on purpose, with the envelope (BUILD_QUEUE_FULL, DASHBOARD_NOT_BUILT)
UNAVAILABLE: dict[str, dict[str, Schema]] = {"503": {"application/json": ref("Error")}}
# a deploy: 202 at once; with ?wait=true 200 once the version serves, 422 BUILD_FAILED, 202 past timeout_s
DEPLOY_QUERY = (
    Param(
        "wait",
        {"type": "string", "enum": ["true", "false", "1", "0"]},
        "true: answer when the build has ended (200 and the version serves, or 422 BUILD_FAILED)",
    ),
    Param("timeout_s", _int(1, 600), "with wait=true: answer 202 after this many seconds (default 300)"),
)
DEPLOYED: dict[str, dict[str, Schema]] = {
    **json_ok(ref("Deployment"), "202"),
    **json_ok(ref("Deployment")),
    "422": {"application/json": ref("Error")},
    **UNAVAILABLE,
}
TEXT: dict[str, Schema] = {"text/plain": {"type": "string"}}
LOCATION: dict[str, Schema] = {"Location": {"type": "string", "pattern": "^/api/v1/"}}
SSE: dict[str, Schema] = {"text/event-stream": {"type": "string"}}
HEALTH_BODY = {"application/json": ref("Health")}
ARCHIVE = {"type": "string", "format": "binary"}
DELETED_SECRET = record({"function_id": STR, "key": STR, "deleted": {"const": True}})
AUTH = "/api/v1/auth"
AI = "/api/v1/ai"

# issue 24: sessions, the vacuum's run, the activity feed's rows
_SESSION_ROW = record(
    {
        "id": STR,
        "user_id": STR,
        "username": STR,
        "device": STR,
        "user_agent": NSTR,
        "ip": NSTR,
        "created_at": TIME,
        "last_seen_at": NTIME,
        "expires_at": TIME,
        "current": BOOL,
    }
)
_VACUUM_RUN = record(
    {
        "mode": {"type": "string", "enum": ["incremental", "full"]},
        "running": BOOL,
        "started_at": TIME,
        "ended_at": NTIME,
        "duration_ms": {"type": ["number", "null"]},
        "bytes_before": INT,
        "bytes_after": {"type": ["integer", "null"]},
        "reclaimed_bytes": {"type": ["integer", "null"]},
        "free_pages_before": INT,
        "steps": INT,
        "longest_lock_ms": NUM,
        "error": NSTR,
    }
)
_ACTIVITY_ROW = record(
    {
        "id": STR,
        "ts": TIME,
        "source": {"type": "string", "enum": ["api", "mcp", "assistant", "cli", "webhook"]},
        "actor_kind": STR,
        "actor_id": NSTR,
        "actor_name": NSTR,
        "method": STR,
        "path": STR,
        "target_id": NSTR,
        "status": INT,
        "request_id": STR,
        "client_ip": NSTR,
    }
)

OPS: dict[tuple[str, str], Op] = {
    # functions
    ("GET", "/api/v1/functions"): Op(
        query=(
            Param("status", STR, "only functions in this status"),
            Param("runtime", STR, "only this runtime id, or a language: python matches python3.12 too"),
            Param("q", STR, "only functions whose name or description contains this (any case)"),
            *COUNTED_PAGE,
        ),
        ok=json_ok(counted_page("functions", "FunctionListItem")),
    ),
    ("POST", "/api/v1/functions"): Op(
        body="FunctionCreate",
        ok=json_ok(ref("Function"), "201"),
        links={"201": _FN_LINKS},
        headers={"201": LOCATION},
    ),
    ("GET", "/api/v1/functions/{id}"): Op(ok=json_ok(ref("Function"))),
    ("PUT", "/api/v1/functions/{id}"): Op(
        body="FunctionUpdate", ok=json_ok(ref("Function")), links={"200": _FN_LINKS}
    ),
    ("DELETE", "/api/v1/functions/{id}"): Op(ok=json_ok(ref("Deleted"))),
    ("POST", "/api/v1/functions/{id}/deploy-inline"): Op(
        body="DeployInline",
        query=DEPLOY_QUERY,
        ok=DEPLOYED,
        links={"202": _DEP_LINKS, "200": _DEP_LINKS},
        headers={"202": LOCATION, "200": LOCATION},
    ),
    ("POST", "/api/v1/functions/{id}/deploy"): Op(
        raw_body={
            "multipart/form-data": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": ARCHIVE,
                    "code": {
                        **ARCHIVE,
                        "description": "the Go original's name of `file`, read when `file` is absent",
                    },
                },
            },
            **{
                t: ARCHIVE
                for t in (
                    "application/gzip",
                    "application/zip",
                    "application/x-tar",
                    "application/octet-stream",
                )
            },
        },
        query=DEPLOY_QUERY,
        ok=DEPLOYED,
        links={"202": _DEP_LINKS, "200": _DEP_LINKS},
        headers={"202": LOCATION, "200": LOCATION},
    ),
    ("GET", "/api/v1/functions/{id}/deployments"): Op(
        query=(*PAGE, OFFSET), ok=json_ok(counted_page("deployments", "Deployment"))
    ),
    ("POST", "/api/v1/functions/{id}/rollback"): Op(body="Rollback", ok=json_ok(ref("Deployment"))),
    ("GET", "/api/v1/functions/{id}/source"): Op(
        ok=json_ok(
            record(
                {
                    "function_id": STR,
                    "deployment_id": STR,
                    "code_hash": STR,
                    "filename": STR,
                    "code": STR,
                    "dependencies": STR,
                    "manifest": NSTR,
                }
            )
        )
    ),
    ("GET", "/api/v1/functions/{id}/diff"): Op(
        query=(
            Param(
                "from",
                NONEMPTY,
                "a succeeded deployment id of this function, or a unique prefix of one",
                required=True,
            ),
            Param("to", NONEMPTY, "another one (a whole id or a unique prefix)", required=True),
            Param("format", {"type": "string", "enum": ["json", "unified"]}, "default json"),
        ),
        ok={
            "200": {
                "application/json": record(
                    {"from": STR, "to": STR, "files": {"type": "array", "items": OBJ}}
                ),
                "text/x-diff": {"type": "string"},
            }
        },
    ),
    ("POST", "/api/v1/functions/{id}/kill"): Op(
        ok=json_ok(record({"id": STR, "status": STR, "killed": INT}))
    ),
    # secrets
    ("GET", "/api/v1/functions/{id}/secrets"): Op(
        ok=json_ok(record({"function_id": STR, "secrets": {"type": "array", "items": ref("SecretName")}}))
    ),
    ("POST", "/api/v1/functions/{id}/secrets"): Op(
        body="SecretUpsert",
        ok=json_ok(record({"function_id": STR, "key": STR, "stored": {"const": True}})),
        links={"200": _SECRET_LINKS},
    ),
    ("DELETE", "/api/v1/functions/{id}/secrets/{key}"): Op(ok=json_ok(DELETED_SECRET)),
    # KV (issue 23)
    ("GET", "/api/v1/functions/{id}/kv"): Op(
        query=(
            Param("prefix", STR, "only keys starting with this"),
            Param("limit", _int(1, KV_LIST_MAX), "page size (default 100)"),
            Param("cursor", STR, "next_cursor of the previous page (the last key it held)"),
        ),
        ok=json_ok(
            record(
                {
                    "function_id": STR,
                    "keys": {"type": "array", "items": ref("KvKey")},
                    "next_cursor": NSTR,
                    "usage": record({"keys": INT, "bytes": INT, "max_keys": INT, "max_bytes": INT}),
                }
            )
        ),
    ),
    ("GET", "/api/v1/functions/{id}/kv/{key}"): Op(
        ok={"200": {"application/json": ref("KvEntry"), "application/octet-stream": {"type": "string"}}}
    ),
    ("PUT", "/api/v1/functions/{id}/kv/{key}"): Op(
        body="KvPut",
        raw_body={"application/octet-stream": {"type": "string", "format": "binary"}},
        query=(
            Param("ttl_s", {"type": "number", "minimum": 0.001, "maximum": KV_MAX_TTL_S}, "raw bodies only"),
            Param("if_version", _int(0, KV_MAX_VERSION), "raw bodies only"),
        ),
        ok=json_ok(ref("KvWritten")),
    ),
    ("DELETE", "/api/v1/functions/{id}/kv/{key}"): Op(
        ok=json_ok(record({"function_id": STR, "key": STR, "deleted": {"const": True}}))
    ),
    # jobs (issue 23)
    ("POST", "/api/v1/jobs"): Op(
        body="JobEnqueue",
        ok={
            "202": {"application/json": {"allOf": [ref("Job"), record({"created": {"const": True}})]}},
            "200": {"application/json": {"allOf": [ref("Job"), record({"created": {"const": False}})]}},
        },
    ),
    ("GET", "/api/v1/jobs"): Op(
        query=(
            FUNCTION_FILTER,
            Param("status", {"type": "string", "enum": JOB_STATUSES}, "dead: the dead-letter list"),
            *PAGE,
        ),
        ok=json_ok(
            record(
                {
                    "jobs": {"type": "array", "items": ref("Job")},
                    "next_cursor": NSTR,
                    "counts": {"type": "object", "additionalProperties": INT},
                }
            )
        ),
    ),
    ("GET", "/api/v1/jobs/{id}"): Op(ok=json_ok(ref("JobDetail"))),
    ("DELETE", "/api/v1/jobs/{id}"): Op(ok=json_ok(ref("JobDetail"))),
    ("POST", "/api/v1/jobs/{id}/retry"): Op(ok=json_ok(ref("JobDetail"))),
    # cron (issue 23): {cid} is a schedule's id or name
    ("GET", "/api/v1/cron"): Op(
        query=(
            FUNCTION_FILTER,
            Param(
                "enabled", {"type": "string", "enum": ["true", "false"]}, "only enabled (or disabled) ones"
            ),
            Param("limit", _int(1, 1000), "page size (default 100)"),
            Param("cursor", STR, "next_cursor of the previous page"),
        ),
        ok=json_ok(
            record(
                {
                    "schedules": {"type": "array", "items": ref("CronSchedule")},
                    "next_cursor": NSTR,
                    "total": INT,
                }
            )
        ),
    ),
    ("GET", "/api/v1/functions/{id}/cron"): Op(
        ok=json_ok(record({"function_id": STR, "schedules": {"type": "array", "items": ref("CronSchedule")}}))
    ),
    ("POST", "/api/v1/functions/{id}/cron"): Op(
        body="CronUpsert",
        ok={
            "200": {"application/json": ref("CronSchedule")},
            "201": {"application/json": ref("CronSchedule")},
        },
    ),
    ("GET", "/api/v1/functions/{id}/cron/{cid}"): Op(ok=json_ok(ref("CronSchedule"))),
    ("PUT", "/api/v1/functions/{id}/cron/{cid}"): Op(body="CronUpdate", ok=json_ok(ref("CronSchedule"))),
    ("DELETE", "/api/v1/functions/{id}/cron/{cid}"): Op(
        ok=json_ok(record({"id": STR, "name": STR, "function_id": STR, "deleted": {"const": True}}))
    ),
    ("POST", "/api/v1/functions/{id}/cron/{cid}/run"): Op(
        ok=json_ok(record({"schedule": ref("CronSchedule"), "job_id": STR}), "202")
    ),
    # deployments
    ("GET", "/api/v1/deployments/{id}"): Op(ok=json_ok(ref("Deployment"))),
    ("GET", "/api/v1/deployments/{id}/logs"): Op(
        query=(
            Param(
                "after_seq", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, "lines after this seq"
            ),
            Param("limit", _int(1, 5000), "default 1000"),
        ),
        ok=json_ok(
            record(
                {
                    "deployment_id": STR,
                    "status": STR,
                    "lines": {
                        "type": "array",
                        "items": record({"seq": INT, "stream": STR, "line": STR, "ts": TIME}),
                    },
                    "next_after_seq": {"type": ["integer", "null"]},
                }
            )
        ),
    ),
    ("GET", "/api/v1/deployments/{id}/stream"): Op(ok={"200": SSE}),
    # keys
    ("GET", "/api/v1/keys"): Op(query=PAGE, ok=json_ok(page("keys", "Key"))),
    ("POST", "/api/v1/keys"): Op(
        body="KeyCreate",
        ok=json_ok(ref("KeyCreated"), "201"),
        links={"201": {"RevokeKey": _link("keys_revoke", id="$response.body#/id")}},
    ),
    ("DELETE", "/api/v1/keys/{id}"): Op(ok=json_ok(ref("Deleted"))),
    # channels (issue 21)
    ("GET", "/api/v1/channels"): Op(query=PAGE, ok=json_ok(page("channels", "Channel"))),
    ("POST", "/api/v1/channels"): Op(body="ChannelCreate", ok=json_ok(ref("ChannelCreated"), "201")),
    ("GET", "/api/v1/channels/{id}"): Op(ok=json_ok(ref("ChannelDetail"))),
    ("PATCH", "/api/v1/channels/{id}"): Op(body="ChannelUpdate", ok=json_ok(ref("ChannelDetail"))),
    ("DELETE", "/api/v1/channels/{id}"): Op(ok=json_ok(ref("Deleted"))),
    ("PUT", "/api/v1/channels/{id}/functions"): Op(body="ChannelFunctions", ok=json_ok(ref("ChannelDetail"))),
    ("POST", "/api/v1/channels/{id}/rotate"): Op(ok=json_ok(ref("ChannelCreated"))),
    ("GET", "/api/v1/channels/{id}/client-config"): Op(ok=json_ok(ref("ChannelClientConfig"))),
    # OAuth connected apps (issue 21)
    ("GET", "/api/v1/oauth/connected-apps"): Op(
        ok=json_ok(record({"apps": {"type": "array", "items": ref("ConnectedApp")}}))
    ),
    ("DELETE", "/api/v1/oauth/connected-apps/{client_id}"): Op(ok={"204": {}}),
    # the AI assistant's provider configs (issue 22; orvad/api/ai_providers.py)
    ("GET", f"{AI}/providers"): Op(
        ok=json_ok(record({"providers": {"type": "array", "items": ref("AiProvider")}}))
    ),
    ("POST", f"{AI}/providers"): Op(
        body="AiProviderUpsert", ok={**json_ok(ref("AiProvider"), "201"), **json_ok(ref("AiProvider"))}
    ),
    ("GET", f"{AI}/providers/{{id}}"): Op(ok=json_ok(ref("AiProvider"))),
    ("DELETE", f"{AI}/providers/{{id}}"): Op(ok=json_ok(ref("Deleted"))),
    ("GET", f"{AI}/providers/{{id}}/models"): Op(
        ok=json_ok(record({"provider_id": STR, "models": {"type": "array", "items": STR}}))
    ),
    ("POST", f"{AI}/providers/{{id}}/test"): Op(body="AiProviderTest", ok=json_ok(ref("AiProviderTest"))),
    # the AI assistant (issue 22): the streams answer text/event-stream (docs/ASSISTANT.md, frames)
    ("POST", f"{AI}/chat"): Op(body="AiChat", ok={"200": SSE}),
    ("GET", f"{AI}/conversations"): Op(
        query=(Param("archived", {"type": "string", "enum": ["true", "false"]}), LIMIT, CURSOR),
        ok=json_ok(page("conversations", "AiConversation")),
    ),
    ("POST", f"{AI}/conversations"): Op(
        body="AiConversationCreate", ok=json_ok(ref("AiConversationDetail"), "201")
    ),
    ("GET", f"{AI}/conversations/{{id}}"): Op(ok=json_ok(ref("AiConversationDetail"))),
    ("PATCH", f"{AI}/conversations/{{id}}"): Op(
        body="AiConversationUpdate", ok=json_ok(ref("AiConversation"))
    ),
    ("DELETE", f"{AI}/conversations/{{id}}"): Op(ok=json_ok(ref("Deleted"))),
    ("GET", f"{AI}/conversations/{{id}}/messages"): Op(
        query=(Param("since_seq", _int(0, 2**63 - 1), "only messages after this seq (default 0: all)"),),
        ok=json_ok(
            record(
                {
                    "conversation_id": STR,
                    "running": BOOL,
                    "usage": _AI_USAGE,
                    "messages": {"type": "array", "items": ref("AiMessage")},
                    "last_seq": INT,
                }
            )
        ),
    ),
    ("GET", f"{AI}/conversations/{{id}}/stream"): Op(ok={"200": SSE}),
    ("POST", f"{AI}/conversations/{{id}}/regenerate"): Op(body="AiRegenerate", ok={"200": SSE}),
    ("POST", f"{AI}/conversations/{{id}}/cancel"): Op(
        ok=json_ok(record({"conversation_id": STR, "cancelled": BOOL}))
    ),
    ("POST", f"{AI}/conversations/{{id}}/messages/{{mid}}/edit"): Op(body="AiEdit", ok={"200": SSE}),
    ("DELETE", f"{AI}/conversations/{{id}}/messages/{{mid}}"): Op(
        ok=json_ok(record({"conversation_id": STR, "deleted": {"type": "integer", "minimum": 0}}))
    ),
    ("POST", f"{AI}/tool-calls/{{id}}/approve"): Op(ok={"200": SSE}),
    ("POST", f"{AI}/tool-calls/{{id}}/reject"): Op(ok={"200": SSE}),
    ("GET", f"{AI}/settings"): Op(ok=json_ok(ref("AiSettings"))),
    ("PUT", f"{AI}/settings"): Op(body="AiSettingsUpdate", ok=json_ok(ref("AiSettings"))),
    # routes
    ("GET", "/api/v1/routes"): Op(query=(FUNCTION_FILTER,), ok=json_ok(page("routes", "Route"))),
    ("POST", "/api/v1/routes"): Op(
        body="RouteSave", ok=json_ok(ref("Route"), "201"), links={"201": _ROUTE_LINKS}
    ),
    ("PUT", "/api/v1/routes"): Op(
        body="RouteSave",
        ok={**json_ok(ref("Route")), **json_ok(ref("Route"), "201")},
        links={"200": _ROUTE_LINKS, "201": _ROUTE_LINKS},
    ),
    ("DELETE", "/api/v1/routes"): Op(
        query=(Param("path", ROUTE_PATH, "the route's path", required=True),),
        ok=json_ok(record({"path": STR, "deleted": {"const": True}})),
    ),
    # pools
    ("GET", "/api/v1/pool/config"): Op(
        query=(Param("function_id", NONEMPTY, "a function id or name", required=True),),
        ok=json_ok(ref("PoolConfig")),
    ),
    ("PUT", "/api/v1/pool/config"): Op(
        body="PoolConfigUpdate", ok=json_ok(ref("PoolConfig")), links={"200": _POOL_LINKS}
    ),
    ("POST", "/api/v1/pool/config"): Op(
        body="PoolConfigUpdate", ok=json_ok(ref("PoolConfig")), links={"200": _POOL_LINKS}
    ),
    # executions
    ("GET", "/api/v1/executions"): Op(
        query=(
            FUNCTION_FILTER,
            Param("status", {"type": "string", "enum": list(EXECUTION_STATUSES)}),
            SINCE,
            Param("until", {"type": "string", "format": "date-time"}, "RFC 3339"),
            *COUNTED_PAGE,
        ),
        ok=json_ok(counted_page("executions", "Execution")),
    ),
    ("GET", "/api/v1/executions/summary"): Op(
        query=(SINCE,),
        ok=json_ok(
            record(
                {
                    "since": TIME,
                    "functions": {
                        "type": "array",
                        "items": record(
                            {"function_id": STR, "invocations": INT, "errors": INT, "last_invoked_at": NTIME}
                        ),
                    },
                }
            )
        ),
    ),
    ("GET", "/api/v1/executions/{id}"): Op(ok=json_ok(ref("Execution")), links={"200": _EXECUTION_LINKS}),
    ("GET", "/api/v1/executions/{id}/logs"): Op(
        ok=json_ok(record({"execution_id": STR, "logs": STR, "truncated": BOOL}))
    ),
    # traces (issue 23)
    ("GET", "/api/v1/traces"): Op(
        query=(
            Param("function_id", STR, "the function the trace entered (id or name)"),
            Param("status", {"type": "string", "enum": ["ok", "error"]}, "error: something in it failed"),
            SINCE,
            Param("until", {"type": "string", "format": "date-time"}, "RFC 3339"),
            *PAGE,
        ),
        ok=json_ok(page("traces", "TraceListItem")),
    ),
    ("GET", "/api/v1/traces/{trace_id}"): Op(ok=json_ok(ref("Trace"))),
    # runtimes and system
    ("GET", "/api/v1/runtimes"): Op(
        ok=json_ok(
            record(
                {
                    "runtimes": {
                        "type": "array",
                        "items": record(
                            {
                                "id": STR,
                                "language": STR,
                                "version": STR,
                                "interpreter": STR,
                                "default_entrypoint": STR,
                                "aliases": {"type": "array", "items": STR},
                                "source": STR,
                                "path": STR,  # system | installed (node22/node24 in the data dir); the binary on the host
                                # the Go original's fields
                                "name": STR,
                                "default_handler": STR,
                                "extensions": {"type": "array", "items": STR},
                            }
                        ),
                    },
                    "installable": {
                        "type": "array",
                        "items": record({"id": STR, "language": STR, "version": STR, "install": STR}),
                        "description": "pinned runtimes not installed yet; `install` is the command (a function's "
                        "first build on one installs it too)",
                    },
                    "fallback": BOOL,
                }
            )
        )
    ),
    ("GET", "/api/v1/syscalls"): Op(
        ok=json_ok(record({"syscalls": {"type": "array", "items": OBJ}, "total": INT}))
    ),
    ("GET", "/api/v1/system/metrics"): Op(ok={"200": TEXT}),
    ("GET", "/metrics"): Op(ok={"200": TEXT}),  # the same text; no key needed with ORVA_METRICS_PUBLIC=true
    ("GET", "/api/v1/system/metrics.json"): Op(
        ok=json_ok(
            record(
                {
                    "invocations_total": INT,
                    "by_status": OBJ,
                    "rate_per_s": NUM,
                    "error_rate": NUM,
                    "cold_start_share": NUM,
                    "latency_ms": OBJ,
                    "memory_reserved_bytes": INT,
                    "builds": OBJ,
                    "pools": {
                        "type": "array",
                        "items": record(
                            {
                                "function": STR,
                                "function_id": STR,
                                **{
                                    n: INT
                                    for n in (
                                        "workers",
                                        "idle",
                                        "busy",
                                        "spawning",
                                        "queue_depth",
                                        "inflight",
                                        "spawned",
                                        "killed",
                                        "scale_ups",
                                        "scale_downs",
                                        "cold_starts",
                                        "spawn_failures",
                                    )
                                },
                                # the Go original's pool fields
                                "function_name": STR,
                                "rate_ewma": NUM,
                                "latency_ewma_ms": NUM,
                                "target": INT,
                                "dynamic_max": INT,
                            }
                        ),
                    },
                    # the Go original's blocks
                    "uptime_seconds": INT,
                    "host": record(
                        {n: INT for n in ("num_cpu", "mem_total_mb", "mem_available_mb", "mem_reserved_mb")}
                    ),
                    "totals": record(
                        {
                            n: INT
                            for n in ("invocations", "cold_starts", "warm_hits", "builds", "build_errors")
                        }
                    ),
                    "rates": record({"cold_start_pct": NUM}),
                    "active_requests": INT,
                    "sandbox": record({"active": INT, "total": INT}),
                    "build_queue": record({"pending": INT, "workers": INT}),
                    "spare_jails": record(
                        {
                            "enabled": {
                                **BOOL,
                                "description": "ORVA_SPARE_JAILS, on a host that can use them",
                            },
                            "waiting": {
                                **INT,
                                "description": "spare jails started and waiting for a function",
                            },
                            "used": {
                                "type": "object",
                                "description": "cold starts served by a spare jail, by runtime language",
                                "additionalProperties": INT,
                            },
                        }
                    ),
                }
            )
        )
    ),
    ("GET", "/api/v1/system/metrics/history"): Op(
        query=(Param("minutes", _int(1, 60), "how far back, in minutes (default 10)"),),
        ok=json_ok(
            record(
                {
                    "interval_s": NUM,
                    "points": {
                        "type": "array",
                        "items": record(
                            {
                                "t": NUM,
                                "rate_per_s": NUM,
                                "error_rate": NUM,
                                "cold_start_share": NUM,
                                "latency_ms": record(
                                    {p: {"type": ["number", "null"]} for p in ("p50", "p95", "p99")}
                                ),
                                "active_workers": INT,
                            }
                        ),
                    },
                }
            )
        ),
    ),
    ("GET", "/api/v1/system/info"): Op(
        ok=json_ok(
            record(
                {
                    "version": STR,
                    "python": STR,
                    "server": STR,
                    "uptime_s": NUM,
                    "data_dir": STR,
                    "data_dir_bytes": INT,
                    "nsjail": {},
                    "cgroups": {},
                    "runtimes": {"type": "array", "items": STR},
                    "host_warnings": {"type": "array"},
                    "functions_url": NSTR,
                }
            )
        )
    ),
    # storage (issue 24)
    ("GET", "/api/v1/system/storage"): Op(
        ok=json_ok(
            record(
                {
                    # SQLite's file figures; on PostgreSQL (driver "postgresql") path (the URL, password
                    # hidden), bytes (pg_database_size) and tables only
                    "database": record(
                        {
                            "driver": {"type": "string", "enum": ["sqlite", "postgresql"]},
                            "path": STR,
                            "bytes": INT,
                            "wal_bytes": INT,
                            "shm_bytes": INT,
                            "page_size": INT,
                            "page_count": INT,
                            "free_pages": INT,
                            "free_bytes": INT,
                            "auto_vacuum": STR,
                            "tables": {
                                "type": "array",
                                "items": record(
                                    {"name": STR, "rows": INT, "bytes": {"type": ["integer", "null"]}}
                                ),
                            },
                        },
                        optional=(
                            "wal_bytes",
                            "shm_bytes",
                            "page_size",
                            "page_count",
                            "free_pages",
                            "free_bytes",
                            "auto_vacuum",
                        ),
                    ),
                    "versions_bytes": INT,
                    "staging_bytes": INT,
                    "build_cache_bytes": INT,
                    "data_dir_bytes": INT,
                    "executions": record({"rows": INT, "bytes": {"type": ["integer", "null"]}}),
                    "logs": record({"rows": INT, "bytes": {"type": ["integer", "null"]}}),
                    "vacuum": {"anyOf": [_VACUUM_RUN, {"type": "null"}]},
                }
            )
        )
    ),
    ("POST", "/api/v1/system/vacuum"): Op(
        query=(
            Param("mode", {"type": "string", "enum": ["incremental", "full"]}, "default: orvad chooses"),
            Param(
                "wait", {"type": "string", "enum": ["true", "false", "1", "0"]}, "false: answer 202 at once"
            ),
        ),
        ok={**json_ok(_VACUUM_RUN), **json_ok(_VACUUM_RUN, "202")},
    ),
    # backup and restore (issue 24; docs/OPERATIONS.md): a .tar.gz with manifest.json, admin only
    ("GET", "/api/v1/backup"): Op(ok={"200": {"application/gzip": ARCHIVE}}),
    ("GET", "/api/v1/backup/status"): Op(
        ok=json_ok(
            record(
                {
                    "scheduled": BOOL,
                    "dir": NSTR,
                    "every_s": {"type": "number"},
                    "keep": INT,
                    "max_restore_bytes": INT,
                    "last": {"type": ["object", "null"]},
                    "next_at": NSTR,
                    "files": {"type": "array", "items": record({"name": STR, "bytes": INT})},
                    "last_restore": {"type": ["object", "null"]},
                    "restoring": BOOL,
                }
            )
        )
    ),
    ("POST", "/api/v1/restore"): Op(
        raw_body={
            "multipart/form-data": {
                "type": "object",
                "required": ["archive"],
                "properties": {"archive": ARCHIVE},
            }
        },
        query=(
            Param("confirm", {"type": "string", "enum": ["1", "true", "yes"]}, "required", required=True),
        ),
        ok=json_ok(
            record(
                {
                    "restored": BOOL,
                    "manifest": OBJ,
                    "files": INT,
                    "versions": INT,
                    "ms": INT,
                }
            )
        ),
    ),
    # the activity feed (issue 24): the audit log by source
    ("GET", "/api/v1/activity"): Op(
        query=(
            Param("source", {"type": "string", "enum": ["api", "mcp", "assistant", "cli", "webhook"]}),
            Param("actor_id", STR, "a key id, user id, channel or webhook id"),
            Param(
                "q", {"type": "string", "maxLength": 200}, "text in the path, method, actor name or target"
            ),
            SINCE,
            Param("until", {"type": "string", "format": "date-time"}, "RFC 3339"),
            Param("status_min", _int(0, 999), "only rows whose status is at least this"),
            HIDE_READS,
            *PAGE,
        ),
        ok=json_ok(record({"activity": {"type": "array", "items": _ACTIVITY_ROW}, "next_cursor": NSTR})),
    ),
    ("GET", "/api/v1/events"): Op(
        query=(
            Param("types", STR, "comma list of metrics, execution, deployment, function, activity (admin)"),
            FUNCTION_FILTER,
        ),
        ok={"200": SSE},
    ),
    ("GET", "/api/v1/audit-log"): Op(
        query=(
            Param("actor_id", STR),
            Param("method", STR),
            Param("path_prefix", STR),
            SINCE,
            HIDE_READS,
            *PAGE,
        ),
        ok=json_ok(record({"entries": {"type": "array", "items": OBJ}, "next_cursor": NSTR})),
    ),
    ("GET", "/api/v1/openapi.json"): Op(ok=json_ok(record({"openapi": STR, "info": OBJ, "paths": OBJ}))),
    # health (503 with the same body when a check fails or start-up is not done)
    ("GET", "/api/v1/system/health"): Op(ok={"200": HEALTH_BODY, "503": HEALTH_BODY}),
    ("GET", "/health/ready"): Op(ok={"200": HEALTH_BODY, "503": HEALTH_BODY}),
    ("GET", "/health/startup"): Op(
        ok={
            "200": {"application/json": record({"status": STR})},
            "503": {"application/json": record({"status": STR})},
        }
    ),
    **{
        ("GET", p): Op(ok=json_ok(record({"status": {"const": "ok"}})))
        for p in ("/health", "/healthz", "/health/live")
    },
    # auth
    ("GET", f"{AUTH}/status"): Op(ok=json_ok(record({"has_user": BOOL, "functions_url": NSTR}))),
    ("POST", f"{AUTH}/onboard"): Op(body="Onboard", ok=json_ok(ref("Session"), "201")),
    ("POST", f"{AUTH}/login"): Op(body="Login", ok=json_ok(ref("Session"))),
    ("GET", f"{AUTH}/me"): Op(
        ok=json_ok(
            record({"user": ref("User"), "expires_at": TIME, "id": STR, "username": STR, "created_at": TIME})
        )
    ),  # the user's fields again: Go Orva's shape
    ("POST", f"{AUTH}/refresh"): Op(ok=json_ok(ref("Session"))),
    ("POST", f"{AUTH}/logout"): Op(ok=json_ok(record({"logged_out": {"const": True}}))),
    ("POST", f"{AUTH}/change-password"): Op(
        body="ChangePassword", ok=json_ok(record({"changed": {"const": True}}))
    ),
    # sessions (issue 24): a session sees its own user's, an admin key everyone's
    ("GET", f"{AUTH}/sessions"): Op(
        ok=json_ok(record({"sessions": {"type": "array", "items": _SESSION_ROW}}))
    ),
    ("DELETE", f"{AUTH}/sessions"): Op(
        query=(
            Param(
                "keep_current",
                {"type": "string", "enum": ["true", "false", "1", "0"]},
                "keep the caller's own session (default false: log out everywhere, here too)",
            ),
        ),
        ok=json_ok(record({"revoked": INT, "kept": NSTR})),
    ),
    ("DELETE", f"{AUTH}/sessions/{{session_id}}"): Op(
        ok=json_ok(record({"id": STR, "revoked": {"const": True}, "current": BOOL}))
    ),
    # the dashboard
    ("GET", "/"): Op(ok={"302": {}}),
    ("GET", "/web"): Op(ok={"302": {}}),
    ("GET", "/web/"): Op(ok={"200": {"text/html": {"type": "string"}}, **UNAVAILABLE}),
    ("GET", "/web/assets/{name}"): Op(
        ok={
            "200": {
                t: {"type": "string"}
                for t in ("text/javascript", "text/css", "font/woff2", "image/svg+xml", "image/png")
            },
            **UNAVAILABLE,
        }
    ),
}


# issue 23, replay and saved requests (orvad/api/replay.py)
_FIXTURE_FIELDS.update(
    {
        "name": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
            "description": "unique per function",
        },
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]},
        "path": {"type": "string", "maxLength": 2048, "description": "starts with /, no ? (default /)"},
        "query": {"type": "string", "maxLength": 4096, "description": "without the ? (default empty)"},
        "headers": {
            "type": "object",
            "additionalProperties": STR,
            "maxProperties": 50,
            "description": "name -> value; credential headers (Authorization, Cookie, X-Orva-*, X-API-Key, ...) "
            "are refused",
        },
        "body": {"type": "string", "description": "text, or base64 with body_encoding base64; at most 1 MiB"},
        "body_encoding": {"type": "string", "enum": ["text", "base64"]},
        "description": {"type": "string", "maxLength": 1000},
    }
)
_BODY = {"body": STR, "body_encoding": {"type": "string", "enum": ["text", "base64"]}}
RECORDS["Fixture"] = record(
    {
        "id": STR,
        "function_id": STR,
        "name": STR,
        "method": STR,
        "path": STR,
        "query": STR,
        "headers": {"type": "object", "additionalProperties": STR},
        **_BODY,
        "description": STR,
        "created_at": TIME,
        "updated_at": TIME,
    }
)
RECORDS["CapturedRequest"] = record(
    {
        "execution_id": STR,
        "function_id": NSTR,
        "method": STR,
        "path": STR,
        "query": {**STR, "description": "raw; credential parameters' values are %5Bredacted%5D"},
        "headers": {
            "type": "array",
            "items": {"type": "array", "items": STR, "minItems": 2, "maxItems": 2},
            "description": "[name, value] pairs as sent; a credential's value is [redacted]",
        },
        **_BODY,
        "body_size": INT,
        "body_truncated": BOOL,
    }
)
EXAMPLES.update(
    {
        "FixtureSave": {
            "name": "happy path",
            "method": "POST",
            "path": "/orders",
            "headers": {"content-type": "application/json"},
            "body": '{"id": 1}',
        },
        "ReplayRequest": {},
    }
)
OPS.update(
    {
        ("GET", "/api/v1/executions/{id}/request"): Op(ok=json_ok(ref("CapturedRequest"))),
        ("POST", "/api/v1/executions/{id}/replay"): Op(
            body="ReplayRequest",
            ok=json_ok(
                record(
                    {
                        "execution_id": STR,
                        "replay_of": STR,
                        "function_id": STR,
                        "status": INT,
                        "headers": {"type": "object", "additionalProperties": STR},
                        **_BODY,
                        "complete": BOOL,
                    }
                )
            ),
        ),
        ("GET", "/api/v1/functions/{id}/fixtures"): Op(
            ok=json_ok(record({"fixtures": {"type": "array", "items": ref("Fixture")}, "max": INT}))
        ),
        ("POST", "/api/v1/functions/{id}/fixtures"): Op(
            body="FixtureSave", ok=json_ok(ref("Fixture"), "201")
        ),
        ("GET", "/api/v1/functions/{id}/fixtures/{fid}"): Op(ok=json_ok(ref("Fixture"))),
        ("PUT", "/api/v1/functions/{id}/fixtures/{fid}"): Op(body="FixtureSave", ok=json_ok(ref("Fixture"))),
        ("DELETE", "/api/v1/functions/{id}/fixtures/{fid}"): Op(
            ok=json_ok(record({"function_id": STR, "id": STR, "name": STR, "deleted": {"const": True}}))
        ),
    }
)


# outbound webhooks (issue 24; orvad/api/webhooks.py, docs/WEBHOOKS.md)
RECORDS["Webhook"] = record(
    {
        "id": {**STR, "pattern": "^wh_"},
        "url": STR,
        "events": {"type": "array", "items": STR},
        "function_id": NSTR,
        "function_name": NSTR,
        "enabled": BOOL,
        "description": STR,
        "secret_usable": {**BOOL, "description": "false: the secret does not open under the master key"},
        "created_at": TIME,
        "updated_at": TIME,
    }
)
RECORDS["WebhookDelivery"] = record(
    {
        "id": {**STR, "pattern": "^msg_", "description": "the webhook-id header: the same on every attempt"},
        "webhook_id": STR,
        "event_id": STR,
        "event_type": STR,
        "function_id": NSTR,
        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": INT,
        "next_attempt_at": NTIME,
        "give_up_at": TIME,
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": NSTR,
        "created_at": TIME,
        "updated_at": TIME,
        "finished_at": NTIME,
        "payload": {**OBJ, "description": "the body sent: {id, type, created_at, data}"},
        "attempts_list": {
            "type": "array",
            "items": record(
                {
                    "attempt": INT,
                    "started_at": TIME,
                    "duration_ms": NUM,
                    "status_code": {"type": ["integer", "null"]},
                    "response": {**NSTR, "description": "the first 1 KiB of the receiver's answer"},
                    "error": NSTR,
                }
            ),
        },
    }
)
_WEBHOOK_WITH_SECRET = {"allOf": [ref("Webhook"), record({"secret": {**STR, "pattern": "^whsec_"}})]}
EXAMPLES.update(
    {
        "WebhookCreate": {
            "url": "https://example.com/hooks/orva",
            "events": ["deployment.failed", "execution.error"],
            "description": "on-call alerts",
        },
        "WebhookUpdate": {"enabled": False},
    }
)
OPS.update(
    {
        ("GET", "/api/v1/webhooks"): Op(
            ok=json_ok(record({"webhooks": {"type": "array", "items": ref("Webhook")}}))
        ),
        ("POST", "/api/v1/webhooks"): Op(body="WebhookCreate", ok=json_ok(_WEBHOOK_WITH_SECRET, "201")),
        ("GET", "/api/v1/webhooks/{id}"): Op(
            ok=json_ok(
                {
                    "allOf": [
                        ref("Webhook"),
                        record({"deliveries": {"type": "object", "additionalProperties": INT}}),
                    ]
                }
            )
        ),
        ("PUT", "/api/v1/webhooks/{id}"): Op(body="WebhookUpdate", ok=json_ok(ref("Webhook"))),
        ("DELETE", "/api/v1/webhooks/{id}"): Op(ok={"204": {}}),
        ("POST", "/api/v1/webhooks/{id}/rotate"): Op(ok=json_ok(_WEBHOOK_WITH_SECRET)),
        ("POST", "/api/v1/webhooks/{id}/test"): Op(ok=json_ok(ref("WebhookDelivery"), "202")),
        ("GET", "/api/v1/webhooks/{id}/deliveries"): Op(
            query=(
                Param("status", {"type": "string", "enum": ["pending", "delivered", "failed"]}),
                *PAGE,
            ),
            ok=json_ok(
                record(
                    {
                        "deliveries": {"type": "array", "items": ref("WebhookDelivery")},
                        "next_cursor": NSTR,
                        "counts": {"type": "object", "additionalProperties": INT},
                    }
                )
            ),
        ),
        ("POST", "/api/v1/webhooks/deliveries/{id}/retry"): Op(ok=json_ok(ref("WebhookDelivery"))),
    }
)


# inbound webhooks (issue 24; orvad/api/inbound_webhooks.py, docs/WEBHOOKS.md)
RECORDS["InboundWebhook"] = record(
    {
        "id": {**STR, "pattern": "^iwh_"},
        "function_id": STR,
        "name": STR,
        "format": {"type": "string", "enum": _INBOUND_FORMATS},
        "header": {**NSTR, "description": "hmac_* formats: the signature's header (null: X-Signature)"},
        "prefix": STR,
        "tolerance_s": INT,
        "mode": {"type": "string", "enum": ["sync", "async"]},
        "enabled": BOOL,
        "url": {**STR, "description": "where the sender delivers: POST, no Orva key"},
        "signature_headers": {"type": "array", "items": STR},
        "deliveries": INT,
        "last_delivery_at": NTIME,
        "last_status": {"type": ["integer", "null"]},
        "last_execution_id": NSTR,
        "last_job_id": NSTR,
        "created_at": TIME,
        "updated_at": TIME,
        "rotated_at": NTIME,
    }
)
_INBOUND_WITH_SECRET = {"allOf": [ref("InboundWebhook"), record({"secret": STR, "secret_note": STR})]}
EXAMPLES.update(
    {
        "InboundWebhookCreate": {"name": "github-push", "format": "github"},
        "InboundWebhookUpdate": {"enabled": False},
    }
)
OPS.update(
    {
        ("GET", "/api/v1/functions/{id}/inbound-webhooks"): Op(
            ok=json_ok(
                record({"function_id": STR, "webhooks": {"type": "array", "items": ref("InboundWebhook")}})
            )
        ),
        ("POST", "/api/v1/functions/{id}/inbound-webhooks"): Op(
            body="InboundWebhookCreate", ok=json_ok(_INBOUND_WITH_SECRET, "201"), headers={"201": LOCATION}
        ),
        ("GET", "/api/v1/functions/{id}/inbound-webhooks/{wid}"): Op(ok=json_ok(ref("InboundWebhook"))),
        ("PUT", "/api/v1/functions/{id}/inbound-webhooks/{wid}"): Op(
            body="InboundWebhookUpdate", ok=json_ok(ref("InboundWebhook"))
        ),
        ("DELETE", "/api/v1/functions/{id}/inbound-webhooks/{wid}"): Op(
            ok=json_ok(record({"id": STR, "name": STR, "function_id": STR, "deleted": {"const": True}}))
        ),
        ("POST", "/api/v1/functions/{id}/inbound-webhooks/{wid}/rotate"): Op(
            ok=json_ok(_INBOUND_WITH_SECRET)
        ),
    }
)


# egress rules (issue 24; orvad/api/firewall.py, docs/NETWORK.md "Egress rules")
_FW_TARGET = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[0-9A-Za-z.:/*-]+$",
    "description": "a CIDR, hostname or *.wildcard",
}
_FW_PORTS = {"type": "array", "maxItems": 16, "items": _int(1, 65535), "description": "[]: every port"}
_FW_DESCRIPTION = {"type": ["string", "null"], "maxLength": 256}


def _firewall_bodies() -> dict[str, Schema]:
    closed = {"type": "object", "additionalProperties": False}
    return {
        "FirewallRuleCreate": {
            **closed,
            "required": ["target"],
            "properties": {"target": _FW_TARGET, "ports": _FW_PORTS, "description": _FW_DESCRIPTION},
        },
        "FirewallRuleUpdate": {
            **closed,
            "minProperties": 1,
            "properties": {"target": _FW_TARGET, "ports": _FW_PORTS, "description": _FW_DESCRIPTION},
        },
        "FirewallDns": {
            **closed,
            "required": ["servers"],
            "properties": {
                "servers": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 64}}
            },
        },
        "FirewallResolve": {**closed, "required": ["host"], "properties": {"host": _FW_TARGET}},
    }


RECORDS["FirewallRule"] = record(
    {
        "id": STR,
        "target": STR,
        "kind": {"type": "string", "enum": ["cidr", "host", "wildcard"]},
        "ports": {"type": "array", "items": INT},
        "description": STR,
        "addresses": {"type": "array", "items": STR, "description": "what the rule blocks now"},
        "created_at": TIME,
        "updated_at": TIME,
        "resolved_at": NTIME,
        "error": NSTR,
        "names": {"type": "array", "items": STR},
    },
    optional=("resolved_at", "error", "names"),
)
_FW_DNS = record(
    {
        "servers": {"type": "array", "items": STR},
        "source": STR,
        "effective": {"type": "array", "items": STR},
        "sandbox_resolv_conf": STR,
    }
)
EXAMPLES.update(
    {
        "FirewallRuleCreate": {"target": "203.0.113.0/24", "ports": [25], "description": "no mail"},
        "FirewallRuleUpdate": {"description": "no outgoing mail"},
        "FirewallDns": {"servers": ["198.51.100.53"]},
        "FirewallResolve": {"host": "api.example.com"},
    }
)
OPS.update(
    {
        ("GET", "/api/v1/firewall/rules"): Op(
            ok=json_ok(
                record(
                    {
                        "rules": {"type": "array", "items": ref("FirewallRule")},
                        "max_rules": INT,
                        "egress": record({"ok": BOOL, "detail": STR}),
                    }
                )
            )
        ),
        ("POST", "/api/v1/firewall/rules"): Op(
            body="FirewallRuleCreate", ok=json_ok(ref("FirewallRule"), "201")
        ),
        ("PUT", "/api/v1/firewall/rules/{id}"): Op(
            body="FirewallRuleUpdate", ok=json_ok(ref("FirewallRule"))
        ),
        ("DELETE", "/api/v1/firewall/rules/{id}"): Op(
            ok=json_ok(record({"id": STR, "target": STR, "deleted": {"const": True}}))
        ),
        ("GET", "/api/v1/firewall/dns"): Op(ok=json_ok(_FW_DNS)),
        ("PUT", "/api/v1/firewall/dns"): Op(body="FirewallDns", ok=json_ok(_FW_DNS)),
        ("POST", "/api/v1/firewall/resolve"): Op(
            body="FirewallResolve",
            ok=json_ok(
                record(
                    {
                        "host": STR,
                        "kind": STR,
                        "addresses": {"type": "array", "items": STR},
                        "ttl": {"type": ["integer", "null"]},
                        "servers": {"type": "array", "items": STR},
                        "error": NSTR,
                        "rules": {"type": "array", "items": ref("FirewallRule")},
                        "blocked": BOOL,
                    }
                )
            ),
        ),
    }
)


# issue 24: the starter functions (orvad/templates, orvad/api/templates.py)
_TEMPLATE_SUMMARY = record(
    {
        "name": STR,
        "title": STR,
        "description": STR,
        "runtime": {"type": "string", "enum": ["python", "node"]},
        "tags": {"type": "array", "items": STR},
    }
)
OPS.update(
    {
        ("GET", "/api/v1/templates"): Op(
            query=(Param("runtime", {"type": "string", "enum": ["python", "node"]}, "only this language's"),),
            ok=json_ok(record({"templates": {"type": "array", "items": _TEMPLATE_SUMMARY}})),
        ),
        ("GET", "/api/v1/templates/{name}"): Op(
            ok=json_ok(
                {
                    "allOf": [
                        _TEMPLATE_SUMMARY,
                        record(
                            {
                                "entrypoint": STR,
                                "settings": OBJ,
                                "env": {
                                    "type": "array",
                                    "items": record(
                                        {
                                            "name": STR,
                                            "description": STR,
                                            "secret": BOOL,
                                            "required": BOOL,
                                            "default": NSTR,
                                        }
                                    ),
                                },
                                "example": {"type": ["object", "null"]},
                                "files": {"type": "object", "additionalProperties": STR},
                                "dependencies_file": NSTR,
                            }
                        ),
                    ]
                }
            )
        ),
    }
)


# the node registry (issue 25; orvad/api/cluster.py, docs/CLUSTER.md "Nodes and heartbeats")
_NODE_STATUSES = ["alive", "gone", "left"]
RECORDS["ClusterNode"] = record(
    {
        "id": STR,
        "run_id": {**STR, "description": "this process start's id: the owner its leases name"},
        "address": {**STR, "description": "the URL other nodes reach it at (ORVA_NODE_ADDRESS)"},
        "version": STR,
        "status": {"type": "string", "enum": _NODE_STATUSES},
        "started_at": TIME,
        "last_seen_at": TIME,
        "seen_s_ago": NUM,
        "left_at": NTIME,
        "pools": {
            "type": "object",
            "description": "per function id with live workers: name, workers, idle",
            "additionalProperties": OBJ,
        },
        "load": {**OBJ, "description": "invocations, requests, workers, loadavg_1m, cpus"},
        "this_node": BOOL,
    }
)
OPS.update(
    {
        ("GET", "/api/v1/cluster/nodes"): Op(
            query=(
                Param("status", {"type": "string", "enum": _NODE_STATUSES}, "only nodes in this status"),
                *PAGE,
            ),
            ok=json_ok(
                record(
                    {
                        "nodes": {"type": "array", "items": ref("ClusterNode")},
                        "next_cursor": NSTR,
                        "counts": record({s: INT for s in _NODE_STATUSES}),
                        "this_node": STR,
                        "heartbeat_s": NUM,
                        "gone_after_s": NUM,
                    }
                )
            ),
        ),
    }
)
