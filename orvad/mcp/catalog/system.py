"""This Orva as a whole: health, a metrics summary (GET /api/v1/system/metrics.json's snapshot) and
the documentation shipped with the package (``get_orva_docs``: docs/*.md, in a wheel under
orvad/_data/docs)."""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orvad import __version__
from orvad.errors import NotFound
from orvad.mcp.catalog.base import obj, text, tool
from orvad.mcp.results import Caller, string_arg
from orvad.resources import data_dir

if TYPE_CHECKING:
    from orvad.daemon import Daemon


async def health(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    checks = await daemon.health_checks()
    ok = all(c["ok"] for c in checks.values() if c.get("required", True))
    return {
        "status": "ok" if ok else "unhealthy",
        "version": __version__,
        "uptime_s": daemon.uptime_s(),
        "checks": checks,
    }


async def get_metrics(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return daemon.metrics.snapshot()


async def list_runtimes(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    catalog = daemon.runtimes
    for runtime in await asyncio.to_thread(catalog.newly_installed):  # `orvad runtimes install` meanwhile
        catalog.add(runtime)
    return {
        "runtimes": catalog.list(),
        "installable": catalog.installable(),
        "hint": "create_function takes a runtime id, or one of its aliases (e.g. python)",
    }


@cache
def doc_files() -> dict[str, Path]:
    """topic -> file: every docs/*.md shipped with orvad, the topic its name in lower case (api, cli, mcp...)."""
    return {p.stem.lower(): p for p in sorted(data_dir("docs").glob("*.md"))}


def _sections(body: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^## (.+)$", body, flags=re.MULTILINE)]


def _section(body: str, wanted: str) -> str | None:
    parts = re.split(r"^(?=## )", body, flags=re.MULTILINE)
    for part in parts[1:]:
        if part.splitlines()[0][3:].strip().lower() == wanted.strip().lower():
            return part
    return None


async def get_orva_docs(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    files = doc_files()
    topic = string_arg(args, "topic")
    if topic is None:
        topics = []
        for name, path in files.items():
            body = path.read_text(encoding="utf-8")
            title = body.splitlines()[0].lstrip("# ").strip() if body else name
            topics.append({"topic": name, "title": title, "sections": _sections(body), "chars": len(body)})
        return {
            "topics": topics,
            "hint": "call get_orva_docs with a topic (and optionally one of its sections) to read it",
        }
    found = files.get(topic.lower().removesuffix(".md"))
    if found is None:
        raise NotFound(
            f"no documentation topic {topic!r}",
            hint=f"topics: {', '.join(files)}",
            details={"topics": list(files)},
        )
    path = found
    body = path.read_text(encoding="utf-8")
    wanted = string_arg(args, "section")
    if wanted is not None:
        part = _section(body, wanted)
        if part is None:
            raise NotFound(
                f"no section {wanted!r} in {path.name}",
                hint=f"sections: {', '.join(_sections(body))}",
                details={"sections": _sections(body)},
            )
        body = part
    return {"topic": path.stem.lower(), "file": path.name, "text": body}


TOOLS = (
    tool(
        "health",
        "This Orva's health: every check (database, sandbox, disk, ...), its version and uptime.",
        obj({}),
        "read",
        health,
    ),
    tool(
        "list_runtimes",
        "The runtimes functions can use on this host (id, language, version, default entry file), and the "
        "pinned ones a first build would install.",
        obj({}),
        "read",
        list_runtimes,
    ),
    tool(
        "get_metrics",
        "A metrics summary: invocations by status, rate, error rate, cold-start share, latency "
        "percentiles, warm pools, reserved memory, builds running and queued.",
        obj({}),
        "read",
        get_metrics,
    ),
    tool(
        "get_orva_docs",
        "Orva's documentation (handlers, API, CLI, configuration, errors, security, MCP, ...). Without "
        "a topic: the list of topics and their sections; with one: its text (or one section of it).",
        obj(
            {
                "topic": text("a topic from the list, e.g. handlers, api, errors"),
                "section": text("a section title of that topic (its ## heading)"),
            }
        ),
        "read",
        get_orva_docs,
        target="topic",
    ),
)
