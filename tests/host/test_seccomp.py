"""The seccomp policy, its catalog and the runtimes list, as served over HTTP."""

from __future__ import annotations

import subprocess

from orvad.host.seccomp import Rule, load_catalog, policy_path, policy_rules
from tests.helpers import Orvad

REQUIRED = {
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "ptrace",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "process_vm_readv",
    "process_vm_writev",
    "reboot",
    "swapon",
    "swapoff",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
}


ERRNO_NAMES = {1: "EPERM", 38: "ENOSYS"}
# every CLONE_NEW* flag of <linux/sched.h>: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NEW_FLAGS = (0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)


def test_catalog_and_policy_agree() -> None:
    catalog = load_catalog()
    rules = policy_rules(policy_path().read_text())
    assert {s["kafel"] for s in catalog["syscalls"]} == set(rules)
    assert REQUIRED <= {s["name"] for s in catalog["syscalls"]}
    assert "DEFAULT ALLOW" in policy_path().read_text()
    for entry in catalog["syscalls"]:
        rule = rules[entry["kafel"]]
        assert entry["action"] == ERRNO_NAMES[rule.errno] and entry["description"] and entry["category"], (
            entry
        )
        assert entry.get("condition") == rule.condition, entry


def test_clone_rule_covers_every_namespace_flag_and_clone3_is_enosys() -> None:
    """clone with any CLONE_NEW* flag is refused (EPERM); clone3, whose flags seccomp cannot see, is ENOSYS."""
    rules = policy_rules(policy_path().read_text())
    mask = 0
    for flag in CLONE_NEW_FLAGS:
        mask |= flag
    assert mask == 0x7E020080
    assert rules["clone"] == Rule(1, "(clone_flags & 0x7E020080) != 0")
    assert rules["clone3"].errno == 38 and rules["clone3"].condition is None
    assert rules["unshare"].condition is None and rules["setns"].condition is None


def test_the_whole_x32_abi_is_refused() -> None:
    """x32 syscalls carry the x86_64 architecture tag; Kafel's rules match numbers, so the x32 numbers of
    unshare, clone, mount... need rules of their own: the whole ABI, one range."""
    rules = policy_rules(policy_path().read_text())
    assert rules["SYSCALL[0x40000000..0x400003ff]"] == Rule(1, None)
    x32 = next(s for s in load_catalog()["syscalls"] if s["name"] == "x32 ABI")
    assert x32["kafel"] == "SYSCALL[0x40000000..0x400003ff]" and x32["action"] == "EPERM"


def test_catalog_numbers_match_the_kernel_headers() -> None:
    """Numbers are for x86_64; check them against the C library's own table where it exists."""
    import ctypes.util

    names = {
        s["name"]: s["number"] for s in load_catalog()["syscalls"] if "number" in s
    }  # the x32 range has none
    header = subprocess.run(
        ["sh", "-c", "echo '#include <sys/syscall.h>' | cpp -dM 2>/dev/null"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    table = {}
    for line in header.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("__NR_") and parts[2].isdigit():
            table[parts[1][5:]] = int(parts[2])
    assert table, "the C preprocessor gave no syscall table"
    assert ctypes.util.find_library("c")
    for name, number in names.items():
        assert table.get(name) == number, name


def test_http_runtimes_and_syscalls(orvad: Orvad) -> None:
    with orvad.admin() as c:
        runtimes = c.get("/api/v1/runtimes").json()["runtimes"]
        syscalls = c.get("/api/v1/syscalls").json()
    by_lang = {r["language"]: r for r in runtimes}
    assert {"python", "node"} <= set(by_lang)
    py = by_lang["python"]
    real = subprocess.run([py["interpreter"], "--version"], capture_output=True, text=True).stdout.split()[1]
    assert py["version"] == real and "python" in py["aliases"] and py["id"].startswith("python3.")
    node = by_lang["node"]
    assert (
        node["version"]
        == subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()[1:]
    )
    assert {s["name"] for s in syscalls["syscalls"]} >= REQUIRED
    by_name = {s["name"]: s for s in syscalls["syscalls"]}
    assert (
        by_name["clone"]["condition"] == "(clone_flags & 0x7E020080) != 0"
        and by_name["clone3"]["action"] == "ENOSYS"
    )
