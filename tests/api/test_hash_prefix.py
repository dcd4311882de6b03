"""Short forms of versions (issue 18.16): rollback's code_hash takes a unique prefix of at least 6 hex
characters, rollback's deployment_id and diff's from/to a unique prefix of a deployment id; a prefix
that names several versions answers 409 AMBIGUOUS with the candidates, never a guess."""

from __future__ import annotations

import hashlib
import re
from itertools import count
from typing import Any

import httpx

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

PY = "def handler(event, context):\n    return {'v': %d}\n"
PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


def inline_hash(code: str) -> str:
    """The code hash orvad gives an inline deploy of ``code`` alone (orvad/builder/safetree.tree_hash:
    SHA-256 over one line per entry; here one file, handler.py, not executable)."""
    line = f"F handler.py - {hashlib.sha256(code.encode()).hexdigest()}\n"
    return hashlib.sha256(line.encode()).hexdigest()


def two_codes_sharing_six_hex() -> tuple[str, str]:
    """Two handlers whose code hashes share their first 6 hex characters (a birthday search: ~5,000 tries)."""
    seen: dict[str, str] = {}
    for n in count():
        code = PY % n
        prefix = inline_hash(code)[:6]
        if prefix in seen:
            return seen[prefix], code
        seen[prefix] = code
    raise AssertionError("unreachable")


def _deployed(c: httpx.Client, fn: dict[str, Any], code: str) -> dict[str, Any]:
    dep = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
    assert dep["status"] == "succeeded", dep
    return dep


def _rollback(c: httpx.Client, fn: dict[str, Any], **body: str) -> httpx.Response:
    return c.post(f"/api/v1/functions/{fn['id']}/rollback", json=body)


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code and not PLACEHOLDER.search(error.get("hint", "")), error
    return error


def test_rollback_by_a_unique_code_hash_prefix(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "prefix-hash")
        v1, v2 = _deployed(c, fn, PY % 1), _deployed(c, fn, PY % 2)
        assert v1["code_hash"][:6] != v2["code_hash"][:6]
        r = _rollback(c, fn, code_hash=v1["code_hash"][:6])
        assert r.status_code == 200, r.text
        assert r.json()["parent_deployment_id"] == v1["id"] and r.json()["code_hash"] == v1["code_hash"]
        r = _rollback(c, fn, code_hash=v2["code_hash"][:9].upper())  # any case
        assert r.status_code == 200 and r.json()["code_hash"] == v2["code_hash"], r.text
        assert _rollback(c, fn, code_hash=v1["code_hash"]).status_code == 200  # the whole hash still works
        for bad in ("abcde", "xyz123", v1["code_hash"] + "0"):
            assert (
                _error(_rollback(c, fn, code_hash=bad), 400, "VALIDATION")["details"]["field"] == "code_hash"
            )
        unused = next(
            p
            for p in (f"{n:06x}" for n in count())
            if not any(d["code_hash"].startswith(p) for d in (v1, v2))
        )
        error = _error(_rollback(c, fn, code_hash=unused), 404, "VERSION_NOT_FOUND")
        assert "/api/v1/functions/prefix-hash/deployments" in error["hint"]


def test_a_code_hash_prefix_of_two_versions_is_ambiguous(orvad: Orvad) -> None:
    first, second = two_codes_sharing_six_hex()
    with orvad.admin() as c:
        fn = create_function(c, "prefix-ambiguous")
        a, b = _deployed(c, fn, first), _deployed(c, fn, second)
        assert (a["code_hash"], b["code_hash"]) == (inline_hash(first), inline_hash(second)), (
            "inline deploys hash differently now: update inline_hash()"
        )
        shared = a["code_hash"][:6]
        error = _error(_rollback(c, fn, code_hash=shared), 409, "AMBIGUOUS")
        assert error["details"] == {
            "field": "code_hash",
            "candidates": sorted([a["code_hash"], b["code_hash"]]),
        }
        assert "prefix-ambiguous" in error["message"]
        common = len(shared)
        while a["code_hash"][common] == b["code_hash"][common]:
            common += 1
        r = _rollback(c, fn, code_hash=a["code_hash"][: common + 1])  # one character more tells them apart
        assert r.status_code == 200 and r.json()["parent_deployment_id"] == a["id"], r.text


def _common_prefix(x: str, y: str) -> str:
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return x[:n]


def test_deployment_id_prefixes_for_diff_and_rollback(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "prefix-ids")
        v1, v2 = _deployed(c, fn, PY % 11), _deployed(c, fn, PY % 12)
        other = create_function(c, "prefix-ids-other")
        foreign = _deployed(c, other, PY % 13)
        shared = _common_prefix(v1["id"], v2["id"])
        assert len(shared) >= 6, (
            f"UUIDv7 ids made seconds apart share their first characters: {v1['id']} {v2['id']}"
        )
        short1, short2 = v1["id"][: len(shared) + 1], v2["id"][: len(shared) + 1]  # each unique among the two

        r = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": short1, "to": short2})
        assert r.status_code == 200, r.text
        assert (r.json()["from"], r.json()["to"]) == (v1["id"], v2["id"])  # the answer names the whole ids

        error = _error(
            c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": shared[:6], "to": short2}),
            409,
            "AMBIGUOUS",
        )
        assert error["details"]["field"] == "from" and {v1["id"], v2["id"]} <= set(
            error["details"]["candidates"]
        )
        assert foreign["id"] not in error["details"]["candidates"]  # only this function's deployments count

        r = _rollback(c, fn, deployment_id=short1)
        assert r.status_code == 200 and r.json()["parent_deployment_id"] == v1["id"], r.text
        # a prefix of another function's deployment names nothing here
        ours = [d["id"] for d in c.get(f"/api/v1/functions/{fn['id']}/deployments").json()["deployments"]]
        foreign_prefix = foreign["id"][: max(len(_common_prefix(foreign["id"], d)) for d in ours) + 1]
        error = _error(_rollback(c, fn, deployment_id=foreign_prefix), 404, "VERSION_NOT_FOUND")
        assert "/api/v1/functions/prefix-ids/deployments" in error["hint"]
        assert _rollback(c, fn, deployment_id=v2["id"]).status_code == 200  # whole ids as before
