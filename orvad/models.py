"""Domain nouns: a function and its deployments (no SQL, no web: the store and the services share them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Function:
    id: str
    name: str
    runtime: str
    entrypoint: str
    description: str
    memory_mb: int
    cpus: float
    timeout_ms: int
    env_vars: dict[str, str]
    network_mode: str
    auth_mode: str
    max_concurrency: int
    concurrency_policy: str
    rate_limit_per_min: int
    status: str
    active_deployment_id: str | None
    created_at: str
    updated_at: str
    signature_version: int = 2  # auth_mode signed: 1 signs "<ts>.<body>", 2 "<ts>.<METHOD>.<path?query>.<body>"
    csp_sandbox: bool = True  # replies on the dashboard's origin get Content-Security-Policy: sandbox
    cors_origins: list[str] | None = None  # None: ORVA_CORS_ORIGINS applies; []: no CORS by orvad (orvad/cors.py)


@dataclass(frozen=True)
class Deployment:
    id: str
    function_id: str
    version: int
    code_hash: str | None
    status: str
    phase: str
    phases: list[dict[str, str]]
    source: str
    parent_deployment_id: str | None
    error_message: str | None
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None
