"""docs/TEMPLATES.md lists every template of the catalog (orvad/templates) with its runtime and what it
needs, and nothing the catalog does not have."""

from __future__ import annotations

import re
from pathlib import Path

from orvad.templates import catalog

PAGE = Path(__file__).resolve().parents[2] / "docs" / "TEMPLATES.md"


def _rows() -> dict[str, list[str]]:
    rows = {}
    section = PAGE.read_text().split("## The catalog", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z][a-z0-9_-]*)`", cells[0]) if line.startswith("| `") else None
        if match:
            rows[match.group(1)] = cells
    return rows


def test_every_template_has_a_line_with_its_runtime_and_needs() -> None:
    rows = _rows()
    assert set(rows) == set(catalog()), (
        f"docs/TEMPLATES.md and the catalog differ: {set(rows) ^ set(catalog())}"
    )
    for name, template in catalog().items():
        cells = rows[name]
        assert cells[1] == template.runtime, (name, cells[1])
        needs = cells[-1]
        for env in template.env:
            assert env.name in needs, f"docs/TEMPLATES.md: {name} needs {env.name}"
        for setting in template.settings:
            assert setting in needs, f"docs/TEMPLATES.md: {name} sets {setting}"


def test_the_other_pages_point_to_the_catalog() -> None:
    docs = PAGE.parent
    assert "/api/v1/templates" in (docs / "API.md").read_text()
    assert "orva init" in (docs / "CLI.md").read_text() and "--template" in (docs / "CLI.md").read_text()
    assert "TEMPLATES.md" in (docs / "DASHBOARD.md").read_text()
