"""CHANGELOG.md keeps the Keep a Changelog 1.1.0 form (CONTRIBUTING.md, "Changelog").

Level-2 headings are `[Unreleased]` or `[label] - YYYY-MM-DD`; level-3 headings are the format's six kinds
plus "Upgrade notes" (a documented extension, first in its section); no subsection is empty; the intro
names the format.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
ALLOWED_H3 = ("Upgrade notes", *KINDS)
RELEASE = re.compile(r"\[[^\]\s][^\]]*\] - \d{4}-\d{2}-\d{2}")


def _lines() -> list[str]:
    return (ROOT / "CHANGELOG.md").read_text().splitlines()


def _sections() -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """[(h2 title, [(h3 title, body lines)])]; lines before the first h3 of a section are not kept."""
    sections: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for line in _lines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif line.startswith("### "):
            assert sections, f"{line!r} comes before any level-2 heading"
            sections[-1][1].append((line[4:].strip(), []))
        elif sections and sections[-1][1]:
            sections[-1][1][-1][1].append(line)
    return sections


def test_intro_names_keep_a_changelog() -> None:
    lines = _lines()
    assert lines[0] == "# Changelog"
    intro = "\n".join(lines[1 : next(i for i, line in enumerate(lines) if line.startswith("## "))])
    assert "Keep a Changelog" in intro and "keepachangelog.com/en/1.1.0" in intro, intro
    assert "Upgrade notes" in intro, "the intro says why 'Upgrade notes' sits beside the six kinds"


def test_level_two_headings_are_unreleased_or_dated_releases() -> None:
    titles = [title for title, _ in _sections()]
    assert titles, "CHANGELOG.md has no level-2 heading"
    assert titles[0] == "[Unreleased]", titles
    for title in titles[1:]:
        assert RELEASE.fullmatch(title), f"## {title}: expected '[<version>] - YYYY-MM-DD'"
    assert len(set(titles)) == len(titles), "a release heading is repeated"
    dates = [title.rsplit(" - ", 1)[1] for title in titles[1:]]
    assert dates == sorted(dates, reverse=True), "releases are not newest first"


def test_level_three_headings_are_the_allowed_kinds_in_order() -> None:
    for title, subsections in _sections():
        names = [name for name, _ in subsections]
        for name in names:
            assert name in ALLOWED_H3, f"## {title}: ### {name} is not one of {ALLOWED_H3}"
        assert len(set(names)) == len(names), f"## {title}: a subsection is repeated: {names}"
        assert names == sorted(names, key=ALLOWED_H3.index), f"## {title}: out of order: {names}"


def test_no_subsection_is_empty_and_each_holds_only_bullets() -> None:
    for title, subsections in _sections():
        for name, body in subsections:
            bullets = [line for line in body if line.startswith("- ")]
            assert bullets, f"## {title} / ### {name} is empty"
            for line in body:
                assert not line.strip() or line.startswith(("- ", "  ")), (
                    f"## {title} / ### {name}: {line!r} is neither a bullet nor its indented continuation"
                )
