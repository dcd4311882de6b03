"""The seccomp policy file and its catalog (GET /api/v1/syscalls)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from orvad.resources import data_dir


@dataclass(frozen=True)
class Rule:
    """One syscall rule of a Kafel ERRNO block: the errno it returns, and when (None: always)."""

    errno: int
    condition: str | None = None


def policy_path() -> Path:
    return data_dir("seccomp") / "default.kafel"


@cache
def load_catalog() -> dict[str, Any]:
    return yaml.safe_load((data_dir("seccomp") / "catalog.yaml").read_text())  # type: ignore[no-any-return]


def policy_rules(text: str) -> dict[str, Rule]:
    """Every syscall named in the ERRNO(n) { ... } blocks of a Kafel policy, with its argument condition.

    ``#define`` constants are expanded in conditions, so a condition reads as the numbers the kernel sees.
    """
    body = re.sub(r"//[^\n]*", "", text)
    defines = dict(re.findall(r"^\s*#define\s+(\w+)\s+(\S+)", body, flags=re.M))
    rules: dict[str, Rule] = {}
    numbers: dict[int, Rule] = {}  # SYSCALL[n] entries, by number
    for match in re.finditer(r"ERRNO\((\d+)\)\s*\{", body):
        block = _balanced(body, match.end())
        for item in _split_top(block):
            name, _, condition = item.partition("{")
            name = re.sub(r"\(.*\)", "", name).strip()
            cond = condition.rsplit("}", 1)[0].strip() if condition else None
            if cond:
                cond = re.sub(r"\b\w+\b", lambda m: defines.get(m.group(0), m.group(0)), cond)
            rule = Rule(int(match.group(1)), cond or None)
            if (number := re.fullmatch(r"SYSCALL\[(\w+)\]", name)) is not None:
                numbers.setdefault(int(number.group(1), 0), rule)
            else:
                rules.setdefault(name, rule)
    return {**rules, **_ranges(numbers)}


def _ranges(numbers: dict[int, Rule]) -> dict[str, Rule]:
    """Runs of consecutive SYSCALL[n] numbers with one rule, as "SYSCALL[0xfirst..0xlast]" (the catalog's form)."""
    out: dict[str, Rule] = {}
    run: list[int] = []
    for n in sorted(numbers):
        if run and (n != run[-1] + 1 or numbers[n] != numbers[run[0]]):
            out[f"SYSCALL[{run[0]:#x}..{run[-1]:#x}]"] = numbers[run[0]]
            run = []
        run.append(n)
    if run:
        out[f"SYSCALL[{run[0]:#x}..{run[-1]:#x}]"] = numbers[run[0]]
    return out


def _balanced(text: str, start: int) -> str:
    """The text from ``start`` up to the brace that closes the one just before it."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    raise ValueError("unbalanced braces in the seccomp policy")


def _split_top(block: str) -> list[str]:
    """Split a rule list at the commas outside braces and parentheses."""
    items, depth, current = [], 0, ""
    for ch in block:
        depth += {"{": 1, "(": 1, "}": -1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [" ".join(item.split()) for item in items if item.strip()]
