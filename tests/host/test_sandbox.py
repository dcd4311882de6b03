"""The nsjail invocation built from a spec (pure): isolation flags, limits, and no secret on argv."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orvad.host.sandbox import HostFacts, SandboxSpec, build_invocation

HOST = HostFacts(nsjail="/opt/nsjail", cgroup="v1", seccomp_policy="/p.kafel")
env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True).filter(lambda n: n not in HOST.base_env)
env_values = st.text(min_size=1, max_size=40).map(lambda v: "s3cr3t:" + v)  # recognisable on any argv


def _spec(**kw: object) -> SandboxSpec:
    base = dict(
        argv=("/usr/bin/python3.11", "/runtime/adapter.py"),
        code_dir="/data/v1",
        binds=("/usr", "/lib"),
        memory_mb=128,
        cpus=0.5,
    )
    return SandboxSpec(**{**base, **kw})  # type: ignore[arg-type]


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@given(st.dictionaries(env_names, env_values, min_size=1, max_size=5))
def test_env_values_never_reach_argv(env: dict[str, str]) -> None:
    inv = build_invocation(_spec(env=env), HOST)
    joined = "\0".join(inv.argv)
    for name, value in env.items():
        assert value not in joined and inv.env[name] == value
        assert ["-E", name] == inv.argv[inv.argv.index(name) - 1 : inv.argv.index(name) + 1]


@given(st.integers(16, 4096), st.floats(0.1, 64), st.integers(1, 512))
def test_limits_map_to_cgroup_flags(memory: int, cpus: float, pids: int) -> None:
    argv = build_invocation(_spec(memory_mb=memory, cpus=cpus, pids=pids), HOST).argv
    assert int(_flag(argv, "--cgroup_mem_max")) == memory * 1024 * 1024
    assert int(_flag(argv, "--cgroup_pids_max")) == pids
    assert (
        100 <= int(_flag(argv, "--cgroup_cpu_ms_per_sec"))
        and abs(int(_flag(argv, "--cgroup_cpu_ms_per_sec")) - cpus * 1000) <= 1
    )


def test_isolation_flags() -> None:
    argv = build_invocation(_spec(), HOST).argv
    assert _flag(argv, "--user") == "65534:65534:1" and _flag(argv, "--group") == "65534:65534:1"
    assert _flag(argv, "--time_limit") == "0" and _flag(argv, "--rlimit_core") == "0"
    assert _flag(argv, "--rlimit_as") == "inf" and _flag(argv, "--rlimit_fsize") == "64"
    assert _flag(argv, "--rlimit_nofile") == "1024" and _flag(argv, "--seccomp_policy") == "/p.kafel"
    assert "-R" in argv and "/data/v1:/code" in argv and argv[argv.index("/data/v1:/code") - 1] == "-R"
    assert any(a.startswith("none:/tmp:tmpfs:size=") for a in argv)
    for forbidden in (
        "--keep_caps",
        "--disable_no_new_privs",
        "--disable_clone_newnet",
        "--disable_clone_newuser",
        "--disable_clone_newpid",
        "--disable_clone_newns",
        "--proc_rw",
        "-B",
    ):
        assert forbidden not in argv, forbidden
    assert argv[argv.index("--") + 1 :] == ["/usr/bin/python3.11", "/runtime/adapter.py"]


def test_builds_write_their_tree_and_join_their_own_namespace() -> None:
    argv = build_invocation(
        _spec(code_access="rw", network="build", netns="orva1b3", extra_rw=(("/cache", "/cache"),)), HOST
    ).argv
    assert argv[argv.index("/data/v1:/code") - 1] == "-B"
    assert (
        argv[:3] == ["/usr/bin/nsenter", "--net=/run/netns/orva1b3", "--"]
        and "--disable_clone_newnet" in argv
    )
    # without a prepared namespace a build gets a fresh, empty one: never the host's
    assert (
        "--disable_clone_newnet" not in build_invocation(_spec(code_access="rw", network="build"), HOST).argv
    )


def test_cgroup_v2_and_none() -> None:
    v2 = build_invocation(_spec(), HostFacts("/n", "v2", "/p", cgroupv2_mount="/sys/fs/cgroup")).argv
    assert "--use_cgroupv2" in v2 and _flag(v2, "--cgroupv2_mount") == "/sys/fs/cgroup"
    none = build_invocation(_spec(pids=64), HostFacts("/n", "none", "/p")).argv
    assert "--cgroup_mem_max" not in none and _flag(none, "--rlimit_nproc") == "64"


def test_egress_joins_a_prepared_namespace() -> None:
    argv = build_invocation(_spec(network="egress", netns="orva-e7"), HOST).argv
    assert (
        argv[:3] == ["/usr/bin/nsenter", "--net=/run/netns/orva-e7", "--"]
        and "--disable_clone_newnet" in argv
    )
