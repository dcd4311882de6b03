"""Attack on ORVA_METRICS_PUBLIC (attack-19): nothing a tenant or a caller names (function names, paths, bodies,
a handler's error) reaches the Prometheus text as anything but a well-formed label of a known vocabulary."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

NAME = "a_-" + "z" * 60  # the longest name, with every punctuation the grammar allows
RAISES = (
    "def handler(event, context):\n"
    "    if event['path'] != '/':\n"
    "        raise RuntimeError('x\"} 1\\norva_fake_total 1\\n')\n"
    "    return {'statusCode': 200, 'body': 'ok'}\n"
)
LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.+:-]*$")  # names, ids, statuses, codes, runtimes, buckets


def test_public_metrics_carry_only_well_formed_labels(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_METRICS_PUBLIC": "true"})
    with server.admin() as c:
        fn = create_function(c, NAME)
        assert wait_deployed(c, deploy_inline(c, fn["id"], RAISES)["id"])["status"] == "succeeded"
        r = c.post("/api/v1/routes", json={"path": '/r"}x/*', "function_id": NAME})
        route = r.status_code == 201
        assert c.get(f"/fn/{NAME}/").status_code == 200
        assert c.get(f"/fn/{NAME}/boom").status_code == 500
        if route:
            c.get('/r"}x/%0Aorva_fake_total%201')
        assert c.get("/fn/no%0Asuch%22fn").status_code == 404
    with server.client() as anonymous:
        wait_for(lambda: 'status="error"' in anonymous.get("/metrics").text, 10, "the error in the metrics")
        text = anonymous.get("/metrics").text
    assert "orva_fake" not in text and "no\nsuch" not in text
    seen = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.name.startswith(("orva_", "python_", "process_")), sample
            for key, value in sample.labels.items():
                assert LABEL_VALUE.fullmatch(value), (sample.name, key, value)
                seen.add(value)
    assert {NAME, fn["id"], "error", "success"} <= seen
