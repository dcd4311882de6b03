"""The Docker Compose file of docs/CLUSTER.md (deploy/compose/docker-compose.cluster.yml) and its HAProxy
configuration: no Docker engine here, so the file is parsed and checked, and HAProxy (Debian's, `make
haproxy-deps`) checks its configuration with ``haproxy -c``. The retry policy is the one the 3-node test
proves (tests/cluster3.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.cluster3 import Cluster, haproxy_binary

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "compose"
COMPOSE = FOLDER / "docker-compose.cluster.yml"
NODES = ("orva-1", "orva-2", "orva-3")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_has_three_nodes_postgres_and_haproxy() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", *NODES, "haproxy"}

    pg = services["postgres"]
    assert "--locale=C" in pg["environment"]["POSTGRES_INITDB_ARGS"]  # orvad refuses another text order
    assert "--encoding=UTF8" in pg["environment"]["POSTGRES_INITDB_ARGS"]
    assert pg["environment"]["POSTGRES_DB"] == "orva" and pg["environment"]["POSTGRES_USER"] == "orva"
    assert "pg_isready" in pg["healthcheck"]["test"]

    shared = {
        "ORVA_DATABASE_URL",
        "ORVA_MASTER_KEY",
        "ORVA_HEARTBEAT_S",
        "ORVA_TRUSTED_PROXIES",
        "ORVA_PUBLIC_URL",
    }
    envs = [services[name]["environment"] for name in NODES]
    for name in shared:  # one database, one master key (secrets are sealed with it), one heartbeat
        assert len({env[name] for env in envs}) == 1, name
    url = envs[0]["ORVA_DATABASE_URL"]
    assert url.startswith("postgresql://orva:") and url.endswith("@postgres:5432/orva")
    assert "${ORVA_MASTER_KEY:?" in envs[0]["ORVA_MASTER_KEY"]  # no key written in the file
    haproxy_ip = services["haproxy"]["networks"]["orva"]["ipv4_address"]
    assert envs[0]["ORVA_TRUSTED_PROXIES"] == haproxy_ip

    volumes = set()
    for name, env in zip(NODES, envs, strict=True):
        node = services[name]
        assert env["ORVA_NODE_ID"] == name and env["ORVA_NODE_ADDRESS"] == f"http://{name}:8443"
        assert env["ORVA_HOST"] == "0.0.0.0" and env["ORVA_PORT"] == "8443"
        assert (COMPOSE.parent / node["build"]["context"] / "Dockerfile").resolve() == ROOT / "Dockerfile"
        assert "SYS_ADMIN" in node["cap_add"] and node["cgroup"] == "host"  # nsjail: namespaces and cgroups
        assert "seccomp=unconfined" in node["security_opt"]
        data = [v for v in node["volumes"] if v.endswith(":/var/lib/orva")]
        assert len(data) == 1
        volumes.add(data[0])
        assert "ports" not in node, "the nodes are reached through HAProxy"
    assert len(volumes) == 3, "each node has a data dir of its own"
    assert services["orva-1"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in NODES[1:]:  # node 1 migrates and mints the bootstrap admin key first
        assert services[name]["depends_on"]["orva-1"]["condition"] == "service_healthy"

    haproxy = services["haproxy"]
    assert "8080:8080" in haproxy["ports"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]


def test_compose_haproxy_config_is_valid_and_retries_like_the_tested_one() -> None:
    text = (FOLDER / "haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+) check", text, re.M)
    assert servers == [(name, f"{name}:8443") for name in NODES]
    tested = Cluster().haproxy_config()
    for line in (
        "retries 3",
        "option redispatch 1",
        "retry-on conn-failure empty-response response-timeout",
        "http-request disable-l7-retry unless METH_GET || METH_OPTIONS",
        "option httpchk GET /health/ready",
        "http-check expect status 200",
        "balance roundrobin",
        "option forwardfor",
        "timeout check 2s",
    ):
        assert f"    {line}\n" in text and f"    {line}\n" in tested, line
    done = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(FOLDER / "haproxy.cfg")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr
