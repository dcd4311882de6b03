"""`orva cluster`: the nodes sharing this orvad's database (issue 25; GET /api/v1/cluster/nodes)."""

from __future__ import annotations

from typing import Any

import click

from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

NODE_COLUMNS = (
    Col("ID", "id_shown"),
    Col("STATUS", "status"),
    Col("ADDRESS", "address", flex=True),
    Col("VERSION", "version"),
    Col("WARM", "warm"),
    Col("LOAD", "loadavg"),
    Col("SEEN", "last_seen"),
)  # 80 columns: started_at, run_id and the load's other figures are in --json
STATUSES = ("alive", "gone", "left")


@click.group()
def cluster() -> None:
    """The nodes of this Orva cluster (orvads sharing one PostgreSQL database).

    \b
    Each node writes a heartbeat every ORVA_HEARTBEAT_S; one silent for three of them
    (and a slack) is gone, one stopped cleanly has left. On SQLite the list is this node.

    \b
    Examples:
      orva cluster nodes
      orva cluster nodes --status gone --json
    """


def _row(node: dict[str, Any]) -> dict[str, Any]:
    pools = node.get("pools") or {}
    load = node.get("load") or {}
    return node | {
        "id_shown": node["id"] + (" *" if node.get("this_node") else ""),
        "warm": sum(int(p.get("workers", 0)) for p in pools.values() if isinstance(p, dict)),
        "loadavg": load.get("loadavg_1m", ""),
        "last_seen": f"{node['seen_s_ago']:.1f}s",
    }


@cluster.command("nodes")
@click.option("--status", type=click.Choice(STATUSES), help="Only nodes in this status.")
@json_option
@pass_app
def nodes(app: App, status: str | None) -> None:
    """List the nodes: status, address, version, warm workers, load, last heartbeat.

    \b
    The node answering is marked *. WARM counts its live workers and LOAD is its 1-minute
    load average, as of its last heartbeat; SEEN is how long ago that was. --json has
    every field (started_at, run_id, pools per function, load.invocations, ...).

    \b
    Examples:
      orva cluster nodes
      orva cluster nodes --status alive --json
    """
    params: dict[str, Any] = {"limit": 500}
    if status:
        params["status"] = status
    items = list(app.client.pages("/api/v1/cluster/nodes", "nodes", params))
    app.out.show(items, lambda rows: app.out.table([_row(n) for n in rows], NODE_COLUMNS))


commands = [cluster]
