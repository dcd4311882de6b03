"""Settings: one frozen dataclass, loaded once at the edge.

Precedence: command-line flags > ORVA_* environment variables > YAML file (--config) > defaults.
Every field is declared once in ``FIELDS``: its default, environment variable, parser and help;
``docs/CONFIGURATION.md`` lists the same table (checked by tests/docs/test_docs.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from orvad.corsorigins import parse_setting as parse_cors_origins
from orvad.urls import redact_url

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A bad setting; the message is one line naming the setting, the value and what is allowed."""


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        value = int(str(raw).strip())
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer in {lo}..{hi}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        value = float(str(raw).strip())
        if not lo <= value <= hi:
            raise ValueError(f"expected a number in {lo}..{hi}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _text(raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("expected a non-empty value")
    return value


def _networks(raw: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in str(raw).split(",") if part.strip()
    )


def _egress_range(raw: Any) -> str:
    text = str(raw).strip()
    if text == "derived":
        return text
    net = ipaddress.ip_network(text)
    if net.version != 4 or net.prefixlen > 29:
        raise ValueError("expected derived or an IPv4 range of /29 or wider")
    return str(net)


def _ipv4_networks(raw: Any) -> str:
    if any(net.version != 4 for net in _networks(raw)):
        raise ValueError("IPv4 only: egress workers get no IPv6 route")
    return ",".join(str(net) for net in _networks(raw))


def _proxies(raw: Any) -> str:
    _networks(raw)  # raises ValueError on a bad address
    return str(raw).strip()


def _optional(raw: Any) -> str:
    return str(raw).strip()


def _origin(raw: Any) -> str:
    """An absolute http(s) URL without a path (or empty): ``https://fn.example.com``, ``http://127.0.0.1:8444``."""
    value = str(raw).strip().rstrip("/")
    if value and not re.fullmatch(r"https?://[^/?#\s]+", value):
        raise ValueError("expected an http(s)://host[:port] URL with no path")
    return value


def _path(raw: Any) -> Path:
    # absolute from the start: nsjail changes directory before it bind-mounts, so a relative path breaks every jail
    return Path(_text(raw)).expanduser().absolute()


@dataclass(frozen=True)
class Field:
    name: str
    default: Any
    env: str
    parse: Callable[[Any], Any]
    help: str


def _otlp_url(value: Any) -> str:
    """An OTLP/HTTP URL (http or https, a host), or empty: no export (orvad/traces/otlp.py)."""
    text = str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:4318/v1/traces")
    return text


def _database_url(value: Any) -> str:
    """Empty (SQLite in the data dir, the default) or postgresql://user:password@host:port/database."""
    text = str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(
            "must be empty (SQLite in the data dir) or postgresql://user:password@host:5432/database"
        )
    return text


BLOB_URL_FORM = "s3://<bucket>[/<prefix>][?endpoint=http(s)://host[:port]&region=<region>]"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rule for a bucket's name
_BLOB_PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_BLOB_PARAMS = ("endpoint", "region")


@dataclass(frozen=True)
class BlobUrl:
    """ORVA_BLOB_URL taken apart (orvad/builder/blob_bucket.py): where shared versions' bytes are kept."""

    bucket: str
    prefix: str  # no leading or trailing slash; empty: the bucket's top
    endpoint: str | None  # http(s)://host[:port]; None: AWS S3 itself
    region: str

    def key(self, blob_hash: str) -> str:
        return f"{self.prefix}/{blob_hash}" if self.prefix else blob_hash

    def __str__(self) -> str:
        where = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        return where + (f" at {self.endpoint}" if self.endpoint else "")


def parse_blob_url(text: str) -> BlobUrl:
    """``s3://<bucket>[/<prefix>]?endpoint=http://host:port&region=<region>``; ValueError says what is wrong
    (never repeating a value that could be a secret). Credentials come from AWS's own chain, never the URL."""
    parts = urlsplit(text.strip())
    if parts.scheme != "s3":
        raise ValueError(f"expected {BLOB_URL_FORM}")
    if "@" in parts.netloc:
        raise ValueError(
            "credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in orvad's "
            f"environment (or another AWS credential source) and write {BLOB_URL_FORM}"
        )
    if not parts.netloc:
        raise ValueError(f"no bucket: expected {BLOB_URL_FORM}")
    if not _BUCKET_NAME.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise ValueError(
            "a bucket's name is 3..63 of a-z 0-9 . - starting and ending with a letter or digit, with no port; "
            f"expected {BLOB_URL_FORM}"
        )
    prefix = parts.path.strip("/")
    if prefix and (not _BLOB_PREFIX.fullmatch(prefix) or any(p in (".", "..") for p in prefix.split("/"))):
        raise ValueError(
            f"the prefix is folders of A-Z a-z 0-9 . _ - joined by /, with no empty, . or .. part; expected {BLOB_URL_FORM}"
        )
    if parts.fragment:
        raise ValueError(f"no #fragment; expected {BLOB_URL_FORM}")
    params: dict[str, str] = {}
    for pair in parts.query.split("&") if parts.query else ():
        name, sep, value = pair.partition("=")
        if name not in _BLOB_PARAMS or not sep:
            raise ValueError(f"the query takes only endpoint=... and region=...; expected {BLOB_URL_FORM}")
        if name in params:
            raise ValueError(f"{name} is given twice")
        params[name] = unquote(value)
    endpoint = params.get("endpoint")
    if endpoint is not None:
        where = urlsplit(endpoint)
        try:
            port_ok = where.port is None or where.port > 0
        except ValueError:
            port_ok = False
        if (
            where.scheme not in ("http", "https")
            or not where.hostname
            or "@" in where.netloc
            or not port_ok
            or where.path.strip("/")
            or where.query
            or where.fragment
        ):
            raise ValueError(
                f"the endpoint is http(s)://host[:port] with no path or credentials; expected {BLOB_URL_FORM}"
            )
        endpoint = f"{where.scheme}://{where.netloc}"
    region = params.get("region", "us-east-1")
    if not _REGION.fullmatch(region):
        raise ValueError("the region is 1..64 of A-Z a-z 0-9 _ - (us-east-1 when left out)")
    return BlobUrl(parts.netloc, prefix, endpoint, region)


def _blob_url(value: Any) -> str:
    """Empty (versions shared through the database only) or a valid ORVA_BLOB_URL."""
    text = str(value).strip()
    if text:
        parse_blob_url(text)
    return text


def _shown_blob_url(text: str) -> str:
    """ORVA_BLOB_URL as a refusal says it: no userinfo, no value of a query parameter orvad does not know and
    no endpoint holding credentials (a misplaced secret key stays out of the message)."""
    parts = urlsplit(text)

    def shown(pair: str) -> str:
        name, _, value = pair.partition("=")
        return pair if name in _BLOB_PARAMS and "@" not in unquote(value) else f"{name}=***"

    pairs = [pair for pair in parts.query.split("&") if pair]
    if "@" not in parts.netloc and all(shown(pair) == pair for pair in pairs):
        return text
    netloc = parts.netloc.rsplit("@", 1)[-1] + (" (credentials removed)" if "@" in parts.netloc else "")
    return parts._replace(netloc=netloc, query="&".join(shown(pair) for pair in pairs)).geturl()


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(raw: Any) -> float:
    """Seconds from ``90``, ``30s``, ``15m``, ``6h`` or ``1d`` (at least 1 s, at most 365 d)."""
    text = str(raw).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
    if not match:
        raise ValueError("expected a duration such as 30m, 6h or 1d (a plain number: seconds)")
    value = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if not 1 <= value <= 365 * 86400:
        raise ValueError("expected a duration from 1s to 365d")
    return value


def _node_id(raw: Any) -> str:
    """Empty (derived at start: orvad/cluster/nodes.py default_node_id) or a node id."""
    value = str(raw).strip()
    if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
        raise ValueError("expected 1..63 of A-Z a-z 0-9 . _ - (starting with a letter or digit)")
    return value


FIELDS: tuple[Field, ...] = (
    Field("host", "127.0.0.1", "ORVA_HOST", _text, "address to listen on"),
    Field("port", 8443, "ORVA_PORT", _int_range(1, 65535), "TCP port to listen on"),
    Field("data_dir", Path("./data"), "ORVA_DATA_DIR", _path, "where the database, keys and code live"),
    Field(
        "database_url",
        "",
        "ORVA_DATABASE_URL",
        _database_url,
        "PostgreSQL database shared by every node (postgresql://user:password@host:5432/db); empty: SQLite in the data dir",
    ),
    Field(
        "blob_url",
        "",
        "ORVA_BLOB_URL",
        _blob_url,
        "an S3-compatible bucket for the cluster's shared versions (s3://<bucket>[/<prefix>]?endpoint=http://host:port"
        "&region=<region>; credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); empty: kept in the database",
    ),
    Field("session_days", 7, "ORVA_SESSION_DAYS", _int_range(1, 365), "dashboard session lifetime in days"),
    Field(
        "secure_cookies", False, "ORVA_SECURE_COOKIES", _bool, "mark the session cookie Secure (behind HTTPS)"
    ),
    Field(
        "max_body_bytes",
        6 * 1024 * 1024,
        "ORVA_MAX_BODY_BYTES",
        _int_range(1024, 1 << 30),
        "largest request body accepted, in bytes",
    ),
    Field("log_level", "info", "ORVA_LOG_LEVEL", _choice(*LOG_LEVELS), "log level"),
    Field(
        "server",
        "hypercorn",
        "ORVA_SERVER",
        _choice("hypercorn", "uvicorn", "granian"),
        "HTTP server: hypercorn, uvicorn (httptools), or granian (Rust, embedded in orvad's event loop); "
        "uvicorn and granian come with the `fast` extra",
    ),
    Field(
        "event_loop",
        "uvloop",
        "ORVA_EVENT_LOOP",
        _choice("uvloop", "asyncio"),
        "event loop under any server: uvloop (faster invoke path), or the standard library's asyncio",
    ),
    Field(
        "shutdown_grace_s",
        10.0,
        "ORVA_SHUTDOWN_GRACE_S",
        _float_range(0, 600),
        "seconds in-flight requests get to finish on SIGTERM/SIGINT",
    ),
    Field(
        "login_max_failures",
        5,
        "ORVA_LOGIN_MAX_FAILURES",
        _int_range(1, 1000),
        "failed logins per client and username before throttling",
    ),
    Field(
        "login_window_s",
        900,
        "ORVA_LOGIN_WINDOW_S",
        _int_range(1, 86400),
        "window in seconds over which failed logins are counted",
    ),
    Field(
        "max_archive_bytes",
        50 * 1024 * 1024,
        "ORVA_MAX_ARCHIVE_BYTES",
        _int_range(1024, 1 << 32),
        "largest archive accepted by POST /functions/{id}/deploy, in bytes",
    ),
    Field(
        "build_concurrency",
        os.cpu_count() or 1,
        "ORVA_BUILD_CONCURRENCY",
        _int_range(1, 64),
        "builds that run at once (default: the number of cores)",
    ),
    Field(
        "build_backlog",
        64,
        "ORVA_BUILD_BACKLOG",
        _int_range(1, 10_000),
        "builds that may wait in the queue before 503 BUILD_QUEUE_FULL",
    ),
    Field(
        "build_timeout_s",
        600,
        "ORVA_BUILD_TIMEOUT_S",
        _int_range(10, 7200),
        "longest a dependency install may run",
    ),
    Field(
        "versions_kept",
        5,
        "ORVA_VERSIONS_KEPT",
        _int_range(1, 1000),
        "built versions kept per function besides the active one",
    ),
    Field(
        "memory_share",
        0.8,
        "ORVA_MEMORY_SHARE",
        _float_range(0.05, 1.0),
        "share of host RAM that worker memory limits may add up to",
    ),
    Field(
        "worker_max_requests",
        10_000,
        "ORVA_WORKER_MAX_REQUESTS",
        _int_range(1, 10_000_000),
        "requests a worker serves before it is recycled",
    ),
    Field(
        "trusted_proxies",
        "",
        "ORVA_TRUSTED_PROXIES",
        _proxies,
        "comma list of proxy addresses/CIDRs whose X-Forwarded-For is believed",
    ),
    Field(
        "egress_cidr",
        "derived",
        "ORVA_EGRESS_CIDR",
        _egress_range,
        "IPv4 range from which egress workers and builds get addresses (a /30 each), or derived: a free /20 "
        "of 10.231.0.0/16 chosen from a hash of the data dir",
    ),
    Field(
        "log_retention_days",
        7,
        "ORVA_LOG_RETENTION_DAYS",
        _int_range(1, 3650),
        "days executions and their logs are kept",
    ),
    Field(
        "audit_retention_days",
        90,
        "ORVA_AUDIT_RETENTION_DAYS",
        _int_range(1, 36500),
        "days audit log rows are kept",
    ),
    Field(
        "public_url",
        "",
        "ORVA_PUBLIC_URL",
        _origin,
        "URL operators reach orvad at (its host is one of the allowed hosts); required for OAuth at /mcp (https, "
        "or http on loopback): the issuer and the tokens' audience",
    ),
    Field(
        "allowed_hosts",
        "",
        "ORVA_ALLOWED_HOSTS",
        _optional,
        "comma list of Host names /api and /web answer, or * (default: the bind address, localhost, "
        "127.0.0.1, [::1] and public_url's host; bound to 0.0.0.0 or ::, any IP literal too)",
    ),
    Field(
        "functions_origin",
        "",
        "ORVA_FUNCTIONS_ORIGIN",
        _origin,
        "separate origin (http(s)://host[:port]) serving /fn and custom routes only; an explicit port "
        "other than port is listened on too",
    ),
    Field(
        "cors_origins",
        "",
        "ORVA_CORS_ORIGINS",
        parse_cors_origins,
        "comma list of exact origins (https://app.example.com) whose pages may call /api/v1, /fn and custom "
        "routes cross-origin, or * for any; empty: no CORS headers (a function's cors_origins overrides it)",
    ),
    Field(
        "build_allow_hosts",
        "",
        "ORVA_BUILD_ALLOW_HOSTS",
        _optional,
        "comma list of hosts (host or host:port) builds may reach through orvad's proxy "
        "(default: the pip index and npm registry configured on the host)",
    ),
    Field(
        "build_env",
        "",
        "ORVA_BUILD_ENV",
        _optional,
        "comma list of extra host environment variables passed into builds (never passed unless listed)",
    ),
    Field(
        "build_disk_mb",
        2048,
        "ORVA_BUILD_DISK_MB",
        _int_range(64, 1 << 20),
        "largest size in MiB a build's tree and its cache may reach",
    ),
    Field(
        "egress_deny_private",
        True,
        "ORVA_EGRESS_DENY_PRIVATE",
        _bool,
        "drop egress workers' traffic to private, CGNAT, ULA and link-local ranges",
    ),
    Field(
        "egress_allow_cidrs",
        "",
        "ORVA_EGRESS_ALLOW_CIDRS",
        _ipv4_networks,
        "comma list of IPv4 addresses/CIDRs egress workers may reach even where egress_deny_private "
        "(or the link-local rule) would drop them",
    ),
    Field(
        "worker_log_bytes_per_s",
        1024 * 1024,
        "ORVA_WORKER_LOG_BYTES_PER_S",
        _int_range(1024, 1 << 30),
        "stderr/log bytes per second one worker may write; the excess is dropped and counted",
    ),
    Field(
        "disk_free_floor_percent",
        5.0,
        "ORVA_DISK_FREE_FLOOR_PERCENT",
        _float_range(0, 99),
        "health's disk check fails (503) when less than this share of the data dir's filesystem is free",
    ),
    Field(
        "metrics_sample_s",
        5.0,
        "ORVA_METRICS_SAMPLE_S",
        _float_range(0.1, 60),
        "seconds between the metrics snapshots kept in memory for GET /api/v1/system/metrics/history",
    ),
    Field(
        "metrics_public",
        False,
        "ORVA_METRICS_PUBLIC",
        _bool,
        "serve GET /metrics (the Prometheus text) without a key, for a scraper on a private network",
    ),
    Field(
        "cgroup_favor_dynmods",
        True,
        "ORVA_CGROUP_FAVOR_DYNMODS",
        _bool,
        "turn on the kernel's cgroup favordynmods at start (host-wide): worker starts skip an RCU grace period",
    ),
    Field(
        "spare_jails",
        True,
        "ORVA_SPARE_JAILS",
        _bool,
        "keep a jail per runtime started ahead, handed a function at its next cold start (functions without "
        "egress, cgroup v1 hosts)",
    ),
    Field(
        "ai_ping_s",
        10.0,
        "ORVA_AI_PING_S",
        _float_range(0.1, 60),
        "seconds of silence after which an AI assistant stream (POST /api/v1/ai/chat, ...) sends a `: ping` comment",
    ),
    Field(
        "runtime_fallback",
        False,
        "ORVA_RUNTIME_FALLBACK",
        _bool,
        "map the Go Orva's runtime ids (node22, node24, python313, python314) in function create/update "
        "requests to the nearest installed runtime of the language when they are not installed",
    ),
    Field(
        "kv_max_keys",
        100_000,
        "ORVA_KV_MAX_KEYS",
        _int_range(1, 100_000_000),
        "KV keys one function may hold (docs/SDK.md, KV); a write past it fails with KV_QUOTA_EXCEEDED",
    ),
    Field(
        "kv_max_bytes",
        256 * 1024 * 1024,
        "ORVA_KV_MAX_BYTES",
        _int_range(1024 * 1024, 1 << 40),
        "KV bytes (keys and values) one function may hold; a write past it fails with KV_QUOTA_EXCEEDED",
    ),
    Field(
        "kv_sweep_s",
        60.0,
        "ORVA_KV_SWEEP_S",
        _float_range(0.05, 86400),
        "seconds between sweeps that delete expired KV keys (reads never return one whatever this is)",
    ),
    Field(
        "jobs_concurrency",
        64,
        "ORVA_JOBS_CONCURRENCY",
        _int_range(1, 10_000),
        "job attempts running at once in all (each function also at most its max_concurrency, else what its "
        "pool serves at once: max_warm x target_concurrency)",
    ),
    Field(
        "jobs_lease_s",
        30.0,
        "ORVA_JOBS_LEASE_S",
        _float_range(0.3, 3600),
        "seconds a running job's lease lasts (renewed every third of it); an attempt whose lease expires is "
        "counted lost and the job is due again",
    ),
    Field(
        "jobs_backoff_base_s",
        1.0,
        "ORVA_JOBS_BACKOFF_BASE_S",
        _float_range(0.001, 3600),
        "a failed job's wait before its next attempt: this x 2^(attempts-1), capped, with jitter (x 0.5..1)",
    ),
    Field(
        "jobs_backoff_max_s",
        600.0,
        "ORVA_JOBS_BACKOFF_MAX_S",
        _float_range(0.001, 86400),
        "the longest wait between a job's attempts",
    ),
    Field(
        "jobs_retention_s",
        7 * 86400.0,
        "ORVA_JOBS_RETENTION_S",
        _float_range(1, 10 * 365 * 86400),
        "seconds a succeeded or cancelled job is kept after it ended (dead jobs stay until retried)",
    ),
    Field(
        "cron_max_per_function",
        100,
        "ORVA_CRON_MAX_PER_FUNCTION",
        _int_range(1, 100_000),
        "cron schedules one function may hold; creating one more fails with CRON_LIMIT_REACHED",
    ),
    Field(
        "test_clock_file",
        "",
        "ORVA_TEST_CLOCK_FILE",
        str,
        "tests only: cron reads the time from this file (an RFC 3339 timestamp, owned by orvad's user, writable "
        "by no one else) instead of the system clock; unset (the default): the system clock",
    ),
    Field(
        "webhook_retry_base_s",
        5.0,
        "ORVA_WEBHOOK_RETRY_BASE_S",
        _float_range(0.001, 3600),
        "an outbound webhook delivery's wait after a failed attempt: this x 2^(attempts-1), capped, with jitter "
        "(x 0.5..1)",
    ),
    Field(
        "webhook_retry_max_s",
        3600.0,
        "ORVA_WEBHOOK_RETRY_MAX_S",
        _float_range(0.001, 86400),
        "the longest wait between an outbound webhook delivery's attempts",
    ),
    Field(
        "webhook_retry_window_s",
        86400.0,
        "ORVA_WEBHOOK_RETRY_WINDOW_S",
        _float_range(0.001, 30 * 86400),
        "how long an outbound webhook delivery is tried (from its event, or from a retry by hand) before it is "
        "marked failed",
    ),
    Field(
        "webhook_timeout_s",
        10.0,
        "ORVA_WEBHOOK_TIMEOUT_S",
        _float_range(0.1, 300),
        "an outbound webhook attempt's whole time (connect, send, the answer's status and first 1 KiB); past it "
        "the attempt failed and is tried again",
    ),
    Field(
        "webhook_concurrency",
        4,
        "ORVA_WEBHOOK_CONCURRENCY",
        _int_range(1, 256),
        "outbound webhook attempts running at once per receiver (a slow receiver holds only its own)",
    ),
    Field(
        "webhook_queue_max",
        10_000,
        "ORVA_WEBHOOK_QUEUE_MAX",
        _int_range(1, 10_000_000),
        "outbound webhook events held in memory until the sender writes them to the outbox; past it events are "
        "dropped and counted (orva_webhook_events_dropped_total)",
    ),
    Field(
        "otlp_endpoint",
        "",
        "ORVA_OTLP_ENDPOINT",
        _otlp_url,
        "an OpenTelemetry collector's OTLP/HTTP traces URL (http(s)://host:4318/v1/traces): executions and user "
        "spans are exported there too; unset (the default): no export",
    ),
    Field(
        "trace_sdk_spans",
        64,
        "ORVA_TRACE_SDK_SPANS",
        _int_range(0, 100_000),
        "SDK calls (kv.*, jobs.*, cron.*, invoke) recorded as spans per execution: the first this many of each "
        "invocation; 0: none",
    ),
    Field(
        "backup_dir",
        "",
        "ORVA_BACKUP_DIR",
        _optional,
        "a folder for scheduled backups (orva-backup-<time>-<id>.tar.gz, docs/OPERATIONS.md); unset (the "
        "default): no scheduled backups",
    ),
    Field(
        "backup_every",
        86400.0,
        "ORVA_BACKUP_EVERY",
        _duration,
        "how often a scheduled backup is written when ORVA_BACKUP_DIR is set: 30m, 6h, 1d (a plain number: "
        "seconds)",
    ),
    Field(
        "backup_keep",
        7,
        "ORVA_BACKUP_KEEP",
        _int_range(1, 10_000),
        "scheduled backups kept in ORVA_BACKUP_DIR: the newest N; older ones are removed after each new one",
    ),
    Field(
        "restore_max_bytes",
        4 * 1024**3,
        "ORVA_RESTORE_MAX_BYTES",
        _int_range(1024, 1 << 42),
        "the largest restore archive accepted (POST /api/v1/restore), and the most its files may unpack to",
    ),
    # issue 25: the node registry (orvad/cluster/nodes.py, docs/CLUSTER.md "Nodes and heartbeats")
    Field(
        "node_id",
        "",
        "ORVA_NODE_ID",
        _node_id,
        "this node's id in the cluster (1..63 of A-Z a-z 0-9 . _ -); empty: the host name and a hash of the data dir",
    ),
    Field(
        "node_address",
        "",
        "ORVA_NODE_ADDRESS",
        _origin,
        "the URL other nodes reach this one at (http(s)://host[:port]); empty: http://<host>:<port>",
    ),
    Field(
        "heartbeat_s",
        2.0,
        "ORVA_HEARTBEAT_S",
        _float_range(0.05, 60),
        "seconds between this node's heartbeats; a node silent for 3 of them (and a slack) is gone",
    ),
    Field(
        "forward_cold",
        True,
        "ORVA_FORWARD_COLD",
        _bool,
        "on PostgreSQL: send a call this node has no warm worker for to a node that has an idle one",
    ),
)
_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    data_dir: Path
    database_url: str
    blob_url: str
    session_days: int
    secure_cookies: bool
    max_body_bytes: int
    log_level: str
    server: str
    event_loop: str
    shutdown_grace_s: float
    login_max_failures: int
    login_window_s: int
    max_archive_bytes: int
    build_concurrency: int
    build_backlog: int
    build_timeout_s: int
    versions_kept: int
    memory_share: float
    worker_max_requests: int
    log_retention_days: int
    audit_retention_days: int
    cgroup_favor_dynmods: bool
    spare_jails: bool
    trusted_proxies: str
    egress_cidr: str
    public_url: str
    allowed_hosts: str
    functions_origin: str
    cors_origins: str
    build_allow_hosts: str
    build_env: str
    build_disk_mb: int
    egress_deny_private: bool
    egress_allow_cidrs: str
    worker_log_bytes_per_s: int
    disk_free_floor_percent: float
    metrics_sample_s: float
    metrics_public: bool
    ai_ping_s: float
    runtime_fallback: bool
    kv_max_keys: int
    kv_max_bytes: int
    kv_sweep_s: float
    jobs_concurrency: int
    jobs_lease_s: float
    jobs_backoff_base_s: float
    jobs_backoff_max_s: float
    jobs_retention_s: float
    cron_max_per_function: int
    test_clock_file: str
    webhook_retry_base_s: float
    webhook_retry_max_s: float
    webhook_retry_window_s: float
    webhook_timeout_s: float
    webhook_concurrency: int
    webhook_queue_max: int
    otlp_endpoint: str
    trace_sdk_spans: int
    backup_dir: str
    backup_every: float
    backup_keep: int
    restore_max_bytes: int
    node_id: str
    node_address: str
    heartbeat_s: float
    forward_cold: bool

    @cached_property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _networks(self.trusted_proxies)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "orva.db"


def _parse(field: Field, raw: Any, source: str) -> Any:
    try:
        return field.parse(raw)
    except (ValueError, TypeError) as exc:
        shown = (
            redact_url(str(raw))
            if field.name == "database_url"
            else _shown_blob_url(str(raw))
            if field.name == "blob_url"
            else raw
        )
        raise ConfigError(f"invalid {field.name} from {source}: {shown!r} ({exc})") from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults < file < environment < flags, validating each value where it came from."""
    environ = os.environ if environ is None else environ
    values = {f.name: f.default for f in FIELDS}

    if config_file is not None:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_file} is not valid YAML: {exc}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping of setting: value")
        for key, raw in loaded.items():
            field = _BY_NAME.get(str(key).replace("-", "_"))
            if field is None:
                raise ConfigError(f"unknown setting {key!r} in {config_file}; known: {', '.join(_BY_NAME)}")
            values[field.name] = _parse(field, raw, str(config_file))

    for field in FIELDS:
        if field.env in environ:
            values[field.name] = _parse(field, environ[field.env], field.env)

    for name, raw in (flags or {}).items():
        if raw is not None:
            values[name] = _parse(_BY_NAME[name], raw, f"--{name.replace('_', '-')}")

    assert {f.name for f in fields(Settings)} == set(values)
    if values["blob_url"] and not values["database_url"]:
        raise ConfigError(
            "blob_url (ORVA_BLOB_URL) is set but database_url (ORVA_DATABASE_URL) is not: a bucket holds the "
            "versions a cluster's nodes share, and one SQLite node never fetches its own; set ORVA_DATABASE_URL "
            "to the cluster's PostgreSQL database, or leave ORVA_BLOB_URL unset"
        )
    return Settings(**values)
