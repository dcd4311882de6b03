"""Environment names a function may not set: the ones that change how a host program runs.

A function's variables reach its jail through nsjail's own environment (``-E NAME`` copies the
value in without putting it on a command line), so for a moment they are the environment of
root-side programs: nsjail and, for egress, nsenter. The dynamic loader and glibc read some
variables at start (``LD_PRELOAD`` loads a library into a root process; found by the red-team
pass). Refused here is the list glibc itself ignores in privileged programs (``UNSECURE_ENVVARS``
in its sources), every ``LD_*`` and ``MALLOC_*`` name, and orvad's own ``ORVA_*`` prefix (which the
callers check with their own message). Programs are started by absolute path, so ``PATH`` is
harmless on the host and stays the function's to set.
"""

from __future__ import annotations

HOST_PREFIXES = ("LD_", "MALLOC_")
HOST_NAMES = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TMPDIR",
        "TZDIR",
    }
)


def host_sensitive(name: str) -> bool:
    """True for a name that would change how nsjail or nsenter (root, on the host) run."""
    upper = name.upper()
    return upper in HOST_NAMES or upper.startswith(HOST_PREFIXES)


REFUSAL = (
    "is read by the host's dynamic loader or C library when orvad starts the sandbox "
    "(LD_*, MALLOC_*, GLIBC_TUNABLES, GCONV_PATH, TMPDIR, ...), so a function may not set it"
)
