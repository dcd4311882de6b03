"""docs/MCP.md's operator-mode table names every tool of the catalog, each once, with the permission it
needs and whether it is destructive, and no tool the catalog lacks; the protocol revisions it lists are
the ones the SDK negotiates."""

from __future__ import annotations

import re
from pathlib import Path

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from orvad.mcp.tools import TOOLS

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `([a-z_]+)` \| (read|invoke|write|admin) \| (yes|no) \| (.+) \|$")


def _section(title: str) -> str:
    text = (ROOT / "docs" / "MCP.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_operator_table_matches_the_catalog() -> None:
    rows = [m.groups() for line in _section("Operator mode").splitlines() if (m := ROW.match(line))]
    documented = [name for name, *_ in rows]
    assert len(documented) == len(set(documented)), "a tool is listed twice in docs/MCP.md"
    assert set(documented) == {t.name for t in TOOLS}, (
        "docs/MCP.md's operator table and orvad/mcp/catalog differ: "
        f"missing {sorted({t.name for t in TOOLS} - set(documented))}, "
        f"extra {sorted(set(documented) - {t.name for t in TOOLS})}"
    )
    by_name = {t.name: t for t in TOOLS}
    for name, permission, destructive, _what in rows:
        assert by_name[name].permission == permission, f"{name}: the catalog says {by_name[name].permission}"
        assert by_name[name].destructive == (destructive == "yes"), f"{name}: destructive differs"


def test_the_protocol_revisions_served_are_documented() -> None:
    endpoint = _section("The endpoint")
    for revision in HANDSHAKE_PROTOCOL_VERSIONS:
        assert f"`{revision}`" in endpoint, f"protocol revision {revision} is missing from docs/MCP.md"
    assert f"`{LATEST_HANDSHAKE_VERSION}` (current)" in endpoint
