"""The seccomp policy, its catalog and the runtimes list, as served over HTTP."""

from __future__ import annotations

import subprocess

from orvad.seccomp import load_catalog, policy_path, policy_syscalls
from tests.conftest import Orvad

REQUIRED = {"mount", "umount2", "pivot_root", "unshare", "setns", "ptrace", "bpf", "perf_event_open", "kexec_load",
            "kexec_file_load", "init_module", "finit_module", "delete_module", "keyctl", "add_key", "request_key",
            "userfaultfd", "process_vm_readv", "process_vm_writev", "reboot", "swapon", "swapoff", "io_uring_setup",
            "io_uring_enter", "io_uring_register"}


def test_catalog_and_policy_agree() -> None:
    catalog = load_catalog()
    in_policy = policy_syscalls(policy_path().read_text())
    assert {s["kafel"] for s in catalog["syscalls"]} == in_policy
    assert REQUIRED <= {s["name"] for s in catalog["syscalls"]}
    assert "ERRNO(1)" in policy_path().read_text() and "DEFAULT ALLOW" in policy_path().read_text()
    assert all(s["action"] == "EPERM" and s["description"] and s["category"] for s in catalog["syscalls"])


def test_catalog_numbers_match_the_kernel_headers() -> None:
    """Numbers are for x86_64; check them against the C library's own table where it exists."""
    import ctypes.util

    names = {s["name"]: s["number"] for s in load_catalog()["syscalls"]}
    header = subprocess.run(["sh", "-c", "echo '#include <sys/syscall.h>' | cpp -dM 2>/dev/null"],
                            capture_output=True, text=True, timeout=30).stdout
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
    assert node["version"] == subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()[1:]
    assert {s["name"] for s in syscalls["syscalls"]} >= REQUIRED
