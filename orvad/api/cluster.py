"""/api/v1/cluster: the node registry (issue 25; docs/API.md "Cluster", docs/CLUSTER.md "Nodes and heartbeats").

GET needs ``read``. On SQLite the list is this one node (and the rows of earlier node ids of this data dir,
left or gone); on PostgreSQL every node sharing the database.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param
from orvad.errors import ValidationError

STATUSES = ("alive", "gone", "left")  # orvad/cluster/nodes.py STATUSES


async def list_nodes(request: Request) -> Response:
    """The cluster's nodes by id, each alive, gone or left; ?status=, ?limit=, ?cursor= (next_cursor)."""
    registry = daemon_of(request).nodes
    limit = int_param(request, "limit", 50, 1, 500)
    cursor = request.query_params.get("cursor") or ""
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(
            f"status must be one of {', '.join(STATUSES)}",
            hint="for the nodes that stopped heartbeating send GET /api/v1/cluster/nodes?status=gone",
            details={"field": "status"},
        )
    every = await registry.nodes()  # a handful of rows: one per node
    counts = {s: sum(1 for n in every if n.status == s) for s in STATUSES}
    chosen = [n for n in every if (status is None or n.status == status) and n.id > cursor]
    page = chosen[:limit]
    return JSONResponse(
        {
            "nodes": [n.to_json(registry.node_id) for n in page],
            "next_cursor": page[-1].id if len(chosen) > limit and page else None,
            "counts": counts,
            "this_node": registry.node_id,
            "heartbeat_s": registry.heartbeat_s,
            "gone_after_s": registry.gone_after_s,
        }
    )


routes = [Route("/api/v1/cluster/nodes", list_nodes, methods=["GET"])]
