"""Builds have their own network: a dependency's build code reaches only orvad's build proxy, and the
proxy lets only the allow-listed registries through.

The registry is a stand-in the test builds itself: a network namespace holding a tiny package
index on 198.18.77.2:8080 (RFC 2544 benchmarking range, routed from the host over a veth pair).
Its one package, ``orva-probe-dep``, is an sdist with an in-tree PEP 517 backend: pip runs that
backend's code inside the build jail, as it would run any package's build code. The backend is the
attacker: it tries loopback, orvad, a listener the test opened on every host address, the index
directly, other addresses through the proxy, reads /proc/net/tcp and its environment, and puts
what it saw into the wheel it builds; the deployed handler returns it.
"""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orvad.builder.installer import CUT_MARK, MAX_LINE_CHARS
from orvad.host.buildproxy import discover_registries
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for
from tests.netns_helpers import CONNECT_CODE, host_addresses, listener_everywhere, served_namespace

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

INDEX_NS, HOST_IF = "orvatest-idx", "orvatest-ih"
INDEX_IP, INDEX_HOST_IP, INDEX_PORT = "198.18.77.2", "198.18.77.1", 8080
INDEX = f"{INDEX_IP}:{INDEX_PORT}"
HOST_SECRET = "ORVA_TEST_HOST_SECRET"

BACKEND = (
    r"""
import base64, hashlib, json, os, socket, urllib.parse, zipfile

PROBE = %(probe)s
"""
    + CONNECT_CODE
    + r"""

def via_proxy(request):
    proxy = urllib.parse.urlsplit(os.environ.get("HTTPS_PROXY", "http://0.0.0.0:1"))
    s = socket.create_connection((proxy.hostname, proxy.port), 5)
    try:
        s.sendall(request.encode())
        return s.recv(300).decode(errors="replace").split("\r\n")[0]
    finally:
        s.close()

def probe():
    proxy_host = urllib.parse.urlsplit(os.environ.get("HTTPS_PROXY", "http://0.0.0.0:1")).hostname
    targets = ["127.0.0.1:%%d" %% PROBE["orvad"], "127.0.0.1:%%d" %% PROBE["listener"], PROBE["index"],
               "%%s:%%d" %% (proxy_host, PROBE["listener"]), "%%s:%%d" %% (proxy_host, PROBE["orvad"]),
               "169.254.169.254:80"] + ["%%s:%%d" %% (ip, PROBE["listener"]) for ip in PROBE["host_ips"]]
    direct = {t: connect(*t.rsplit(":", 1)) for t in targets}
    proxied = {}
    for target in ["127.0.0.1:%%d" %% PROBE["orvad"], "localhost:%%d" %% PROBE["orvad"], "pypi.org:443",
                   "%%s:%%d" %% (PROBE["host_ips"][0], PROBE["listener"])]:
        proxied["CONNECT " + target] = via_proxy("CONNECT %%s HTTP/1.1\r\nHost: %%s\r\n\r\n" %% (target, target))
    url = "http://127.0.0.1:%%d/api/v1/system/health" %% PROBE["orvad"]
    proxied["GET " + url] = via_proxy("GET %%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" %% url)
    with open("/proc/net/tcp") as fh:
        proc_net_tcp = fh.read()
    return {"direct": direct, "proxied": proxied, "proc_net_tcp": proc_net_tcp, "env": dict(os.environ)}

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {
        "orva_probe_dep.py": "RESULT = %%r\n" %% json.dumps(probe()),
        "orva_probe_dep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: orva-probe-dep\nVersion: 1.0\n",
        "orva_probe_dep-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: orva-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    name = "orva_probe_dep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%%s,sha256=%%s,%%d" %% (path, digest, len(data)))
            whl.writestr(path, data)
        record.append("orva_probe_dep-1.0.dist-info/RECORD,,")
        whl.writestr("orva_probe_dep-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return name
"""
)

PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "orva-probe-dep"
version = "1.0"
"""

HANDLER = "import json, orva_probe_dep\n\ndef handler(event, context):\n    return json.loads(orva_probe_dep.RESULT)\n"
REQUIREMENTS = f"--index-url http://{INDEX}/simple/\n--trusted-host {INDEX_IP}\norva-probe-dep==1.0\n"


def _sdist(probe: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        pkg_info = "Metadata-Version: 2.1\nName: orva-probe-dep\nVersion: 1.0\n"
        for name, text in {
            "pyproject.toml": PYPROJECT,
            "backend.py": BACKEND % {"probe": repr(probe)},
            "PKG-INFO": pkg_info,
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(f"orva_probe_dep-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[dict[str, object]], None]]:
    """A package index in its own namespace; calling the fixture (re)publishes the probe sdist."""
    root: Path = tmp_path_factory.mktemp("index")
    (root / "simple" / "orva-probe-dep").mkdir(parents=True)

    def publish(probe: dict[str, object]) -> None:
        (root / "orva_probe_dep-1.0.tar.gz").write_bytes(_sdist(probe))
        (root / "simple" / "orva-probe-dep" / "index.html").write_text(
            '<html><body><a href="../../orva_probe_dep-1.0.tar.gz">orva_probe_dep-1.0.tar.gz</a></body></html>\n'
        )

    with served_namespace(INDEX_NS, HOST_IF, f"{INDEX_HOST_IP}/30", f"{INDEX_IP}/30", INDEX_PORT, root):
        yield publish


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP service on every host address (loopback included): builds must not reach it."""
    with listener_everywhere() as port:
        yield port


def _build_log(c: object, deployment_id: str) -> list[str]:
    return [ln["line"] for ln in c.get(f"/api/v1/deployments/{deployment_id}/logs").json()["lines"]]  # type: ignore[attr-defined]


def test_build_code_reaches_only_the_allow_listed_registry_through_the_proxy(
    make_orvad: Callable[..., Orvad], package_index: Callable[[dict[str, object]], None], host_listener: int
) -> None:
    server = make_orvad(
        env={"ORVA_BUILD_ALLOW_HOSTS": INDEX, HOST_SECRET: "s3cret", "PIP_FIND_LINKS": "/opt/wheels"}
    )
    host_ips = host_addresses()
    package_index({"orvad": server.port, "listener": host_listener, "index": INDEX, "host_ips": host_ips})
    with server.admin() as c:
        fn = create_function(c, "build-probe", timeout_ms=20000)
        dep = wait_deployed(c, deploy_inline(c, fn["id"], HANDLER, dependencies=REQUIREMENTS)["id"], 300)
        assert dep["status"] == "succeeded", _build_log(c, dep["id"])
        seen = c.get(f"/fn/{fn['id']}").json()

    # the allow-listed index was reached (the package came from it) but nothing else was, directly...
    assert len(seen["direct"]) == 6 + len(host_ips)
    for target, result in seen["direct"].items():
        assert result.startswith("refused:"), (target, seen["direct"])
    # ...or through the proxy
    for request, status in seen["proxied"].items():
        assert status.startswith("HTTP/1.1 403 "), (request, seen["proxied"])
    # /proc/net/tcp is the build namespace's own: neither orvad's port nor the listener shows
    local_ports = {int(line.split()[1].split(":")[1], 16) for line in seen["proc_net_tcp"].splitlines()[1:]}
    assert server.port not in local_ports and host_listener not in local_ports, local_ports
    # no host variable came in: only the documented ones (and what pip itself sets for a backend)
    env = seen["env"]
    assert HOST_SECRET not in env and "PIP_FIND_LINKS" not in env, env
    documented = {
        "HOME",
        "PATH",
        "LANG",
        "npm_config_update_notifier",
        "PIP_NO_COLOR",
        "NODE_OPTIONS",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "NO_PROXY",
        "no_proxy",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "npm_config_registry",
    }
    set_by_pip = {
        "PYTHONNOUSERSITE",
        "PYTHONPATH",
        "PIP_BUILD_TRACKER",
        "PIP_NO_INPUT",
        "PEP517_BUILD_BACKEND",
        "PEP517_BACKEND_PATH",
    }
    assert set(env) - documented - set_by_pip == set(), env
    assert env["HTTPS_PROXY"].endswith(":3128") and env["HTTPS_PROXY"] == env["npm_config_https_proxy"]


def test_the_proxy_refuses_a_registry_not_in_the_allow_list(
    orvad: Orvad, package_index: Callable[[dict[str, object]], None]
) -> None:
    """The shared orvad allows only the host's configured registries: the test index is not one."""
    package_index({"orvad": orvad.port, "listener": 1, "index": INDEX, "host_ips": host_addresses()})
    with orvad.admin() as c:
        fn = create_function(c, "build-refused")
        dep = wait_deployed(c, deploy_inline(c, fn["id"], HANDLER, dependencies=REQUIREMENTS)["id"], 300)
        lines = _build_log(c, dep["id"])
        assert dep["status"] == "failed" and "dependency install failed" in dep["error_message"], lines
        assert any(
            f"build proxy refused GET http://{INDEX}/simple/orva-probe-dep/" in ln
            and "not in the build allow list" in ln
            for ln in lines
        ), lines


@pytest.fixture
def upstream_proxy() -> Iterator[tuple[int, list[str]]]:
    """A CONNECT-only proxy on the host's loopback standing in for a site proxy; records request lines."""
    seen: list[str] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def relay(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def handle(conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and (chunk := conn.recv(4096)):
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            seen.append(line)
            method, target = line.split(" ")[:2]
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 CONNECT only\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), 5) as upstream:
                conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                back = threading.Thread(target=relay, args=(upstream, conn), daemon=True)
                back.start()
                relay(conn, upstream)
                back.join(30)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1], seen
    srv.shutdown(socket.SHUT_RDWR)
    srv.close()
    thread.join(5)


def test_allowed_requests_chain_through_orvads_upstream_proxy(
    make_orvad: Callable[..., Orvad],
    package_index: Callable[[dict[str, object]], None],
    upstream_proxy: tuple[int, list[str]],
) -> None:
    port, seen = upstream_proxy
    server = make_orvad(env={"ORVA_BUILD_ALLOW_HOSTS": INDEX, "HTTPS_PROXY": f"http://127.0.0.1:{port}"})
    package_index({"orvad": server.port, "listener": 1, "index": INDEX, "host_ips": host_addresses()})
    with server.admin() as c:
        fn = create_function(c, "build-upstream", timeout_ms=20000)
        dep = wait_deployed(c, deploy_inline(c, fn["id"], HANDLER, dependencies=REQUIREMENTS)["id"], 300)
        assert dep["status"] == "succeeded", _build_log(c, dep["id"])
    # the index was reached through the upstream, and nothing refused by the allow list went there
    assert f"CONNECT {INDEX} HTTP/1.1" in seen, seen
    assert all(line == f"CONNECT {INDEX} HTTP/1.1" for line in seen), seen


def test_default_hosts_may_not_resolve_to_loopback_or_private_addresses_named_ones_may() -> None:
    """The proxy resolves names itself: a default (derived) host that resolves to loopback, as a
    poisoned or rebinding DNS answer would, is refused; the same host named by the operator is not."""
    import asyncio

    from orvad.host.buildproxy import AllowList, BuildProxy, Refused

    async def attempt(allow: AllowList, port: int) -> str:
        try:
            _, writer = await BuildProxy(allow).open("localhost", port)
        except Refused as refused:
            return f"{refused.status} {refused.message}"
        writer.close()
        return "connected"

    with listener_everywhere() as port:
        derived = asyncio.run(attempt(AllowList.parse("", [f"localhost:{port}"]), port))
        named = asyncio.run(attempt(AllowList.parse(f"localhost:{port}", []), port))
        unlisted = asyncio.run(attempt(AllowList.parse("", ["pypi.org"]), port))
    assert derived.startswith("403 localhost resolves to") and "loopback, private or host address" in derived
    assert named == "connected"
    assert unlisted == f"403 localhost:{port} is not in the build allow list"


def _jails_of(orvad_pid: int, deployment_id: str) -> list[int]:
    """nsjail processes orvad started for this deployment's build (its children naming the staging tree)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if ppid == orvad_pid and b"nsjail" in argv[0] and any(deployment_id.encode() in a for a in argv):
                found.append(int(entry.name))
    return found


def test_a_build_line_longer_than_64_kib_is_cut_and_the_build_ends_as_an_install_failure(
    make_orvad: Callable[..., Orvad],
) -> None:
    """Red team F6: pip prints a 100 KB line (the index URL); reading it line by line raised ValueError, the
    build ended as "internal build error", the other pump kept logging and the jail was left running."""
    server = make_orvad(env={"ORVA_BUILD_TIMEOUT_S": "120"})
    long_url = "http://127.0.0.1:9/" + "a" * 100_000
    with server.admin() as c:
        fn = create_function(c, "long-line")
        dep = wait_deployed(
            c,
            deploy_inline(c, fn["id"], HANDLER, dependencies=f"--index-url {long_url}\norva-no-such-dep\n")[
                "id"
            ],
            180,
        )
        lines = _build_log(c, dep["id"])
        assert dep["status"] == "failed", lines
        assert dep["error_message"].startswith("dependency install failed (exit code "), dep["error_message"]
        looking = [ln for ln in lines if ln.startswith("Looking in indexes: http://127.0.0.1:9/aaaa")]
        assert looking, lines
        assert all(len(ln) == MAX_LINE_CHARS and ln.endswith(CUT_MARK) for ln in looking), [
            len(ln) for ln in looking
        ]
        assert any("orva-no-such-dep" in ln for ln in lines), (
            lines
        )  # pip's lines after the long one are there
        assert lines[-1].startswith("build failed: dependency install failed"), lines[-3:]
    wait_for(lambda: not _jails_of(server.proc.pid, dep["id"]), 10, "the build's nsjail to be gone")  # type: ignore[union-attr]
    assert "UNIQUE constraint" not in server.stderr() and "Traceback" not in server.stderr(), server.stderr()[
        -3000:
    ]


def test_registry_urls_reach_builds_without_query_fragment_or_userinfo(tmp_path: Path) -> None:
    """Red team F7: tokens in a registry URL's query (`?token=` on Nexus/Artifactory, npm's `?_authToken=`)
    reached every build's environment; only `user:password@` was removed. The path is kept (it cannot be
    told from a token: docs/NETWORK.md says a credential there reaches builds)."""
    (tmp_path / ".npmrc").write_text("registry=https://npm.corp/reg/?_authToken=SECRET4#frag\n")
    env = discover_registries(
        {
            "PIP_INDEX_URL": "https://pypi.fury.io/acme/simple/?token=SECRET1#SECRET5",
            "PIP_EXTRA_INDEX_URL": "https://nexus.corp/simple/?token=SECRET2 https://u:SECRET3@x.corp/pypi/simple/",
        },
        home=tmp_path,
    ).env()
    assert env == {
        "PIP_INDEX_URL": "https://pypi.fury.io/acme/simple/",
        "PIP_EXTRA_INDEX_URL": "https://nexus.corp/simple/ https://x.corp/pypi/simple/",
        "npm_config_registry": "https://npm.corp/reg/",
    }, env
