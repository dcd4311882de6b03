"""How orvad serves the dashboard (headers, caching, refusals) and the API figures the dashboard reads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
PY = "def handler(event, context):\n    return {'ok': True}\n"


def _assets() -> list[str]:
    return re.findall(r'(?:src|href)="(/web/assets/[^"]+)"', (DIST / "index.html").read_text())


def test_root_redirects_and_the_page_forbids_inline_script(orvad: Orvad) -> None:
    r = httpx.get(orvad.url + "/", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/web/"
    assert httpx.get(orvad.url + "/web", follow_redirects=False).headers["location"] == "/web/"

    page = httpx.get(orvad.url + "/web/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    # every script is an external file (the CSP would block an inline one) and nothing secret is in the page
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="/web/assets/' in attrs and body.strip() == "" for attrs, body in scripts)
    assert orvad.admin_key not in page.text and "orva_" not in page.text
    assert "cdn" not in page.text.lower() and "http" not in page.text.replace("http-equiv", "")


def test_hashed_assets_are_cached_for_good_with_their_types(orvad: Orvad) -> None:
    assets = _assets()
    assert {a.rsplit(".", 1)[1] for a in assets} == {"js", "css"}
    for path in assets:
        r = httpx.get(orvad.url + path)  # httpx asks for gzip and decodes it
        assert r.status_code == 200 and len(r.content) > 0
        assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
        plain = httpx.get(orvad.url + path, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == r.content
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        kind = "text/javascript" if path.endswith(".js") else "text/css"
        assert r.headers["content-type"] == f"{kind}; charset=utf-8"
    # the bundle loads nothing from elsewhere: the dashboard works offline
    bundle = httpx.get(orvad.url + next(a for a in assets if a.endswith(".js"))).text
    assert not re.search(r"""(import|from)\s*["']https?://""", bundle)


def test_unknown_or_crafted_asset_names_get_the_envelope(orvad: Orvad) -> None:
    for path in (
        "/web/assets/nope-ABCDEFGH.js",
        "/web/assets/..%2F..%2Fpyproject.toml",
        "/web/assets/index.html",
        "/web/assets/app.js",
    ):
        r = httpx.get(orvad.url + path)
        assert r.status_code == 404, path
        error = r.json()["error"]
        assert error["code"] == "NOT_FOUND" and error["hint"]


@pytest.mark.sandbox
def test_a_missing_build_is_a_clear_503_and_the_api_still_works(
    make_orvad,
    jail_tmp: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    # a copy of the package without web/dist: the layout of a checkout nobody ran `make web` in
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "orvad", checkout / "orvad", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("runtimes", "seccomp", "sandbox"):
        shutil.copytree(ROOT / folder, checkout / folder)
    server = make_orvad(env={"PYTHONPATH": str(checkout)}, start=False)
    server.cwd = checkout
    server.start()
    r = httpx.get(server.url + "/web/")
    assert r.status_code == 503 and r.headers["retry-after"] == "60"
    assert r.json()["error"]["code"] == "DASHBOARD_NOT_BUILT" and "make web" in r.json()["error"]["hint"]
    assert httpx.get(server.url + "/api/v1/system/health").status_code == 200


@pytest.mark.sandbox
def test_summary_info_and_build_figures(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "webui-summary")
        assert wait_deployed(c, deploy_inline(c, fn["id"], PY)["id"])["status"] == "succeeded"
        for _ in range(3):
            assert c.get("/fn/webui-summary").status_code == 200
        assert c.get("/fn/webui-summary/missing", params={"x": "1"}).status_code == 200

        def counted() -> bool:
            rows = c.get("/api/v1/executions/summary").json()["functions"]
            mine = [r for r in rows if r["function_id"] == fn["id"]]
            return bool(mine) and mine[0]["invocations"] == 4

        wait_for(counted, 10, "the four executions to be summarised")
        body = c.get("/api/v1/executions/summary").json()
        row = next(r for r in body["functions"] if r["function_id"] == fn["id"])
        assert row["errors"] == 0 and row["last_invoked_at"] >= body["since"]
        future = c.get("/api/v1/executions/summary", params={"since": "2999-01-01T00:00:00Z"}).json()
        assert future["functions"] == []
        bad = c.get("/api/v1/executions/summary", params={"since": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "since"

        info = c.get("/api/v1/system/info").json()
        assert info["version"] and info["data_dir"] == str(orvad.data_dir)
        assert info["data_dir_bytes"] > 0 and info["runtimes"] and info["python"] and info["nsjail"]
        assert orvad.admin_key not in str(info)
        assert c.get("/api/v1/system/metrics.json").json()["builds"] == {"running": 0, "queued": 0}
        c.delete(f"/api/v1/functions/{fn['id']}")
    assert httpx.get(orvad.url + "/api/v1/system/info").status_code == 401
