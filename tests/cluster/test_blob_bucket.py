"""Shared versions in an S3-compatible bucket (ORVA_BLOB_URL; orvad/builder/blob_bucket.py, docs/CLUSTER.md
"Shared versions").

Real orvads on ONE PostgreSQL database (the pg_dsn fixture) and a real S3-compatible server: moto's, started
in this process on 127.0.0.1 (``moto[server]``, the test extra), each test in a bucket of its own. A version
deployed on node A is put in the bucket under the prefix and its ``version_blobs`` row says ``bucket`` and
holds no bytes; node B fetches it from the bucket, checks its SHA-256 and answers. The same tree is one
object; a tampered or missing object is refused with 503 VERSION_UNAVAILABLE (Retry-After) and writes
nothing; the sweep deletes a deleted function's object, and only once no deployment names it; versions stored
in the database before the bucket was configured stay readable; a bucket that refuses a version fails its
build with the reason. At start: bad ORVA_BLOB_URL values, a missing or unreachable bucket and a bucket
without PostgreSQL stop orvad with exit code 2 and the reason (never the secret key).
"""

from __future__ import annotations

import hashlib
import io
import secrets
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from orvad.config import ConfigError, load_settings
from tests.cluster.test_shared_versions import _invoke  # waits while the node hears of the function
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port, wait_for
from tests.pg import run_sql

pytestmark = pytest.mark.sandbox

PYTHON = """
def handler(event, context):
    return {"answer": 42, "path": event["path"]}
"""
OTHER = PYTHON.replace("42", "7")
PREFIX = "cluster-1/versions"
SECRET = "s3cr3t-never-shown"
AWS = {
    "AWS_ACCESS_KEY_ID": "orva-test",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata probe for credentials
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on a free port of 127.0.0.1, stopped by its own handle."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"orva-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    return name


def _blob_url(bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}/{PREFIX}?endpoint={endpoint}&region=us-east-1"


def _node(
    make_orvad: Callable[..., Orvad],
    root: Path,
    name: str,
    dsn: str,
    blob_url: str | None,
    *,
    start: bool = True,
) -> Orvad:
    """A node with its own data dir and node id on the shared database, ORVA_BLOB_URL set when given."""
    data = root / name
    data.mkdir(mode=0o711, exist_ok=True)
    data.chmod(0o711)
    env = {
        "ORVA_DATABASE_URL": dsn,
        "ORVA_NODE_ID": name,
        "ORVA_HEARTBEAT_S": "1",
        "ORVA_FORWARD_COLD": "0",  # each node answers from its own workers
        **AWS,
    }
    if blob_url is not None:
        env["ORVA_BLOB_URL"] = blob_url
    return make_orvad(data_dir=data, env=env, start=start)


def _same_keys(a: Orvad, b: Orvad) -> None:
    """B gets A's master key and bootstrap admin key (as a cluster's operator gives them to every node)."""
    for name in ("master.key", "admin.key"):
        shutil.copyfile(a.data_dir / name, b.data_dir / name)
        (b.data_dir / name).chmod(0o600)


@pytest.fixture
def two_nodes(
    pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path, bucket: str, s3_endpoint: str
) -> tuple[Orvad, Orvad]:
    """A running; B stopped (it learns of what A deployed when a test starts it), both with the bucket."""
    url = _blob_url(bucket, s3_endpoint)
    a = _node(make_orvad, jail_tmp, "node-a", pg_dsn, url)
    b = _node(make_orvad, jail_tmp, "node-b", pg_dsn, url, start=False)
    _same_keys(a, b)
    return a, b


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _deploy(server: Orvad, name: str, code: str = PYTHON, *, create: bool = True) -> tuple[dict, dict, str]:
    """(function, deployment, the blob hash its build log names) of a deployment that succeeded."""
    with server.admin() as c:
        fn = create_function(c, name) if create else c.get(f"/api/v1/functions/{name}").json()
        dep = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
        assert dep["status"] == "succeeded", dep
        lines = [row["line"] for row in c.get(f"/api/v1/deployments/{dep['id']}/logs").json()["lines"]]
    shared = [ln for ln in lines if ln.startswith("shared with the other nodes")]
    assert len(shared) == 1, lines
    return fn, dep, shared[0].rsplit("sha256 ", 1)[1].split(" ")[0]


def _refused(server: Orvad, fn: str, said: str) -> tuple[dict, dict[str, str]]:
    """The 503 VERSION_UNAVAILABLE error saying ``said`` that ``server`` answers for ``fn`` (once it has heard
    of it and tried again after its pool's back-off), and the answer's headers."""
    found: dict = {}
    headers: dict[str, str] = {}

    def failed() -> bool:
        with server.client(server.admin_key) as c:
            r = c.get(f"/fn/{fn}/x")
        assert r.status_code != 200, r.text
        if r.status_code == 503 and r.json()["error"]["code"] == "VERSION_UNAVAILABLE":
            found.clear()
            found.update(r.json()["error"])
            headers.clear()
            headers.update(r.headers)
            return said in found["message"]
        return False

    wait_for(failed, 60, f"{fn} to be refused on port {server.port}", interval_s=0.1)
    return found, headers


def _versions(server: Orvad, fn_id: str) -> list[str]:
    folder = server.data_dir / "functions" / fn_id / "versions"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# the happy paths


def test_deployed_on_a_answered_by_b_from_the_bucket(
    two_nodes: tuple[Orvad, Orvad], pg_dsn: str, s3: Any, bucket: str
) -> None:
    a, b = two_nodes
    fn, dep, blob_hash = _deploy(a, "from-bucket")
    # the bytes are the object <prefix>/<sha256>; the row records hash, size and place, and holds no bytes
    objects = _objects(s3, bucket)
    assert list(objects) == [f"{PREFIX}/{blob_hash}"]
    data = objects[f"{PREFIX}/{blob_hash}"]
    assert hashlib.sha256(data).hexdigest() == blob_hash
    (row,) = run_sql(
        pg_dsn, "SELECT size, bytes, location, created_at FROM version_blobs WHERE hash = ?", blob_hash
    )
    assert row["location"] == "bucket" and row["bytes"] == b"" and row["size"] == len(data)
    assert row["created_at"].endswith("Z")
    stored = run_sql(pg_dsn, "SELECT blob_hash, build_node FROM deployments WHERE id = ?", dep["id"])[0]
    assert stored["blob_hash"] == blob_hash and stored["build_node"] == "node-a"
    assert SECRET.encode() not in run_sql(pg_dsn, "SELECT bytes FROM version_blobs")[0]["bytes"]
    # B, started after the deploy, has no copy: it reads the bucket, checks the hash, unpacks, answers
    b.start()
    assert _invoke(b, "from-bucket")["answer"] == 42
    assert _versions(b, fn["id"]) == [dep["code_hash"], f"{dep['code_hash']}.built"]
    wait_for(lambda: "fetched a version built on another node" in b.stderr(), 10, "the fetch's log")
    told = b.stderr()
    assert "build claimed" not in told
    assert "shared versions are stored in a bucket" in told
    for server in (a, b):  # the secret key is in neither node's output
        assert SECRET not in server.stderr() + server.stdout()


def test_the_same_tree_deployed_twice_is_one_object(
    two_nodes: tuple[Orvad, Orvad], pg_dsn: str, s3: Any, bucket: str
) -> None:
    a, _ = two_nodes
    fn, first, blob_hash = _deploy(a, "twice")
    with a.admin() as c:
        second = wait_deployed(c, deploy_inline(c, fn["id"], PYTHON)["id"])
        lines = [row["line"] for row in c.get(f"/api/v1/deployments/{second['id']}/logs").json()["lines"]]
    assert second["status"] == "succeeded"
    assert any(f"sha256 {blob_hash} (the same packed tree is stored already)" in ln for ln in lines), lines
    rows = run_sql(pg_dsn, "SELECT blob_hash FROM deployments WHERE function_id = ? ORDER BY id", fn["id"])
    assert [r["blob_hash"] for r in rows] == [blob_hash, blob_hash]
    assert run_sql(pg_dsn, "SELECT COUNT(*) AS n FROM version_blobs")[0]["n"] == 1
    assert list(_objects(s3, bucket)) == [f"{PREFIX}/{blob_hash}"]


def test_versions_stored_in_the_database_before_the_bucket_stay_readable(
    pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    a = _node(make_orvad, jail_tmp, "node-a", pg_dsn, None)  # no bucket yet
    fn, _, old_hash = _deploy(a, "before")
    (row,) = run_sql(pg_dsn, "SELECT location, size, bytes FROM version_blobs WHERE hash = ?", old_hash)
    assert row["location"] == "database" and len(row["bytes"]) == row["size"] > 0
    # the bucket is configured on every node; B, which never had the version, reads it from the database
    a.stop()
    a.env["ORVA_BLOB_URL"] = _blob_url(bucket, s3_endpoint)
    a.start()
    b = _node(make_orvad, jail_tmp, "node-b", pg_dsn, _blob_url(bucket, s3_endpoint), start=False)
    _same_keys(a, b)
    b.start()
    assert _invoke(b, "before")["answer"] == 42
    wait_for(lambda: "fetched a version built on another node" in b.stderr(), 10, "the fetch's log")
    assert _objects(s3, bucket) == {}  # nothing was copied over
    # a new version now goes to the bucket; B stopped meanwhile fetches that one from there
    b.stop()
    _, dep, new_hash = _deploy(a, "before", OTHER, create=False)
    assert (
        run_sql(pg_dsn, "SELECT location FROM version_blobs WHERE hash = ?", new_hash)[0]["location"]
        == "bucket"
    )
    assert list(_objects(s3, bucket)) == [f"{PREFIX}/{new_hash}"]
    b.start()
    assert _invoke(b, "before")["answer"] == 7
    assert dep["code_hash"] in _versions(b, fn["id"])
    wait_for(
        lambda: b.stderr().count("fetched a version built on another node") == 2, 10, "the second fetch's log"
    )


# refusals


def test_a_tampered_object_is_refused_and_writes_nothing(
    two_nodes: tuple[Orvad, Orvad], pg_dsn: str, s3: Any, bucket: str
) -> None:
    a, b = two_nodes
    fn, _, blob_hash = _deploy(a, "target")
    key = f"{PREFIX}/{blob_hash}"
    good = _objects(s3, bucket)[key]
    # a valid archive of another handler, under the right name: the hash check refuses it
    evil = _tar({"handler.py": b"def handler(e, c):\n    return {'answer': 666}\n"})
    s3.put_object(Bucket=bucket, Key=key, Body=evil)
    before = {str(p) for p in b.data_dir.rglob("*")}
    b.start()
    error, headers = _refused(b, "target", "does not match its hash")
    assert error["message"].endswith("does not match its hash; refused"), error
    assert headers["retry-after"] == "30"
    assert _versions(b, fn["id"]) == []  # no version, no scratch folder
    wait_for(  # the log is written off the request's path
        lambda: "a version blob's bytes do not match its hash: refused" in b.stderr(), 10, "the refusal's log"
    )
    written = {str(p) for p in b.data_dir.rglob("*")} - before
    assert not [p for p in written if f"/functions/{fn['id']}/versions/" in p], written
    # no object at all: refused the same way, saying so
    s3.delete_object(Bucket=bucket, Key=key)
    error, headers = _refused(b, "target", "is gone")
    assert error["message"].endswith("is gone (no object in the bucket)"), error
    assert headers["retry-after"] == "30"
    # the right bytes back: B fetches and answers
    s3.put_object(Bucket=bucket, Key=key, Body=good)
    assert _invoke(b, "target")["answer"] == 42


def test_a_bucket_that_refuses_the_version_fails_the_build(
    two_nodes: tuple[Orvad, Orvad], pg_dsn: str, s3: Any, bucket: str
) -> None:
    """The bucket is gone after start: the build fails with the bucket and the cause, nothing is recorded as
    shared, and the function keeps what it served (nothing here: it never got a version)."""
    a, _ = two_nodes
    s3.delete_bucket(Bucket=bucket)
    with a.admin() as c:
        fn = create_function(c, "no-bucket")
        dep = wait_deployed(c, deploy_inline(c, fn["id"], PYTHON)["id"])
    assert dep["status"] == "failed", dep
    message = dep["error_message"]
    assert f"s3://{bucket}/{PREFIX}" in message and "NoSuchBucket" in message, message
    assert "could not be stored for the other nodes" in message
    assert run_sql(pg_dsn, "SELECT COUNT(*) AS n FROM version_blobs")[0]["n"] == 0
    assert (
        run_sql(pg_dsn, "SELECT blob_hash FROM deployments WHERE id = ?", dep["id"])[0]["blob_hash"] is None
    )
    assert SECRET not in message and SECRET not in a.stderr()


# the sweep


def test_the_sweep_removes_the_object_once_no_function_names_it(
    two_nodes: tuple[Orvad, Orvad], pg_dsn: str, s3: Any, bucket: str
) -> None:
    """Two functions of one tree share one object: deleting the first keeps it (the second still names it),
    deleting the second removes the object and its row (the delete answers once this node swept)."""
    a, _ = two_nodes
    _, _, blob_hash = _deploy(a, "first")
    _, _, same = _deploy(a, "second")
    other_fn, _, other_hash = _deploy(a, "other", OTHER)
    assert same == blob_hash != other_hash
    assert sorted(_objects(s3, bucket)) == sorted(f"{PREFIX}/{h}" for h in (blob_hash, other_hash))
    with a.admin() as c:
        assert c.delete("/api/v1/functions/first").status_code == 200
    assert f"{PREFIX}/{blob_hash}" in _objects(s3, bucket)
    assert run_sql(pg_dsn, "SELECT COUNT(*) AS n FROM version_blobs WHERE hash = ?", blob_hash)[0]["n"] == 1
    with a.admin() as c:
        assert c.delete("/api/v1/functions/second").status_code == 200
    assert list(_objects(s3, bucket)) == [f"{PREFIX}/{other_hash}"]  # the other function's object stays
    assert [r["hash"] for r in run_sql(pg_dsn, "SELECT hash FROM version_blobs")] == [other_hash]
    assert "could not be swept" not in a.stderr()
    with a.admin() as c:  # the function left is untouched
        assert c.get(f"/api/v1/functions/{other_fn['id']}").status_code == 200
    assert _invoke(a, "other")["answer"] == 7


# refused starts


@pytest.mark.parametrize(
    "value, said",
    [
        ("https://bucket.example/x", "expected s3://<bucket>[/<prefix>]"),
        ("s3://", "no bucket"),
        ("s3:///prefix-only", "no bucket"),
        ("s3://Upper_Case", "a bucket's name is 3..63 of a-z 0-9"),
        ("s3://bucket:9000/x", "with no port"),
        ("s3://bucket/a//b", "the prefix is folders"),
        ("s3://bucket/../up", "the prefix is folders"),
        ("s3://bucket?endpoint=ftp://127.0.0.1:21", "the endpoint is http(s)://host[:port]"),
        ("s3://bucket?endpoint=http://127.0.0.1:9000/path", "the endpoint is http(s)://host[:port]"),
        ("s3://bucket?endpoint=http://127.0.0.1:99999", "the endpoint is http(s)://host[:port]"),
        ("s3://bucket?endpoint=127.0.0.1:9000", "the endpoint is http(s)://host[:port]"),
        ("s3://bucket?region=us east", "the region is 1..64"),
        ("s3://bucket?secret_key=" + SECRET, "the query takes only endpoint=... and region=..."),
        (f"s3://AKIA:{SECRET}@bucket/x", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        (f"s3://bucket?endpoint=http://AKIA:{SECRET}@127.0.0.1:9000", "no path or credentials"),
    ],
)
def test_bad_blob_urls_are_refused_with_the_form_to_write(value: str, said: str) -> None:
    with pytest.raises(ConfigError, match="ORVA_BLOB_URL") as info:
        load_settings(
            environ={"ORVA_BLOB_URL": value, "ORVA_DATABASE_URL": "postgresql://orva@127.0.0.1/orva"}
        )
    assert said in str(info.value)
    assert SECRET not in str(info.value)


def test_good_blob_urls_are_taken() -> None:
    for value in (
        "s3://orva-versions",
        "s3://orva.versions/a/b/",
        "s3://orva?region=eu-west-3&endpoint=https://s3.example:8443",
    ):
        loaded = load_settings(
            environ={"ORVA_BLOB_URL": value, "ORVA_DATABASE_URL": "postgresql://orva@127.0.0.1/orva"}
        )
        assert loaded.blob_url == value


def _refused_start(server: Orvad) -> str:
    server.start(wait=False)
    assert server.proc is not None and server.proc.wait(timeout=60) == 2, server.stderr()[-3000:]
    return server.stderr()


@pytest.mark.parametrize(
    "value, said",
    [
        (f"s3://AKIA:{SECRET}@bucket/x", "credentials do not go in the URL: set AWS_ACCESS_KEY_ID and"),
        ("s3://bucket?endpoint=tcp://127.0.0.1:9000", "the endpoint is http(s)://host[:port]"),
    ],
)
def test_a_bad_blob_url_stops_orvad_with_the_reason(
    make_orvad: Callable[..., Orvad], jail_tmp: Path, value: str, said: str
) -> None:
    # the URL is refused before any database is opened: this one is never reached
    server = _node(make_orvad, jail_tmp, "node-a", "postgresql://orva@127.0.0.1:1/unused", value, start=False)
    told = _refused_start(server)
    assert "invalid blob_url from ORVA_BLOB_URL" in told and said in told, told
    assert SECRET not in told


def test_a_missing_or_unreachable_bucket_refuses_the_start(
    pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path, s3_endpoint: str
) -> None:
    missing = _node(
        make_orvad, jail_tmp, "node-a", pg_dsn, _blob_url("no-such-bucket", s3_endpoint), start=False
    )
    told = _refused_start(missing)
    assert "cannot start: the bucket s3://no-such-bucket/" in told and "there is no such bucket" in told, told
    assert SECRET not in told
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = _node(make_orvad, jail_tmp, "node-b", pg_dsn, _blob_url("orva-x", closed), start=False)
    told = _refused_start(unreachable)
    assert "cannot start: the bucket s3://orva-x/" in told and "Could not connect" in told, told


def test_a_bucket_without_postgresql_is_refused(make_orvad: Callable[..., Orvad], s3_endpoint: str) -> None:
    """One SQLite node never fetches its own versions: ORVA_BLOB_URL without ORVA_DATABASE_URL is a mistake."""
    server = make_orvad(
        env={"ORVA_DATABASE_URL": "", "ORVA_BLOB_URL": _blob_url("orva-x", s3_endpoint), **AWS}, start=False
    )
    told = _refused_start(server)
    assert "blob_url (ORVA_BLOB_URL) is set but database_url (ORVA_DATABASE_URL) is not" in told, told
    assert not (server.data_dir / "orva.db").exists()
