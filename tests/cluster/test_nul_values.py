"""A NUL character on PostgreSQL (orvad/store/postgres/driver.py ``storable``): PostgreSQL's text cannot hold
U+0000 where SQLite's can. A NUL in a value orvad stores was a write error there, and in a batched row
(an execution's logs or path) it failed the whole batch again and again: nothing the
orvad ran afterwards was recorded (found by the PostgreSQL pass, where schemathesis' NULs stopped the shared
orvad's writes). Now the NUL is stored as U+FFFD, and everything around it is written.

One real orvad on a throwaway PostgreSQL database, through HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

CODE = "def handler(e, c):\n    print('before\\x00after')\n    return {'ok': True}\n"


def test_a_nul_in_logs_and_paths_is_stored_as_the_replacement_character(
    pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    data = jail_tmp / "nul"
    data.mkdir(mode=0o711)
    server = make_orvad(data_dir=data, env={"ORVA_DATABASE_URL": pg_dsn})
    with server.admin() as c:
        fn = create_function(c, "nul-logs")
        assert wait_deployed(c, deploy_inline(c, fn["id"], CODE)["id"])["status"] == "succeeded"
        r = httpx.get(f"{server.url}/fn/{fn['id']}/a%00b", timeout=30)
        assert r.status_code == 200, r.text
        after = httpx.get(f"{server.url}/fn/{fn['id']}", timeout=30)
        assert after.status_code == 200, after.text

        def rows() -> list[dict[str, object]]:
            found = c.get("/api/v1/executions", params={"function_id": fn["id"]}).json()["executions"]
            return list(found)

        wait_for(lambda: len(rows()) == 2, 10, "both execution rows")  # the one after the NUL too
        first = r.headers["x-orva-execution-id"]
        logs = c.get(f"/api/v1/executions/{first}/logs").json()
        text = str(logs)
        assert "before\ufffdafter" in text, logs
