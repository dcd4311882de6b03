"""The path a stored record keeps: any request path cut to a bound, with a marker saying so.

A request head may carry a path of up to 16 KiB; the audit log and the executions table keep
at most ``RECORDED_PATH_MAX`` characters of it (docs/API.md), so that no caller grows the
database by sending long paths.
"""

from __future__ import annotations

RECORDED_PATH_MAX = 512


def recorded_path(path: str) -> str:
    """``path`` itself when it fits, else its start and ``...[cut: N chars]`` (N the full length),
    never longer than ``RECORDED_PATH_MAX``; a cut path is left as it is when cut again."""
    if len(path) <= RECORDED_PATH_MAX:
        return path
    marker = f"...[cut: {len(path)} chars]"
    return path[: RECORDED_PATH_MAX - len(marker)] + marker
