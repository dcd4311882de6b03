"""The cluster (issue 25, docs/CLUSTER.md): the node registry and its heartbeat (orvad/cluster/nodes.py)."""

from orvad.cluster.nodes import Node, NodeRegistry, default_address, default_node_id

__all__ = ["Node", "NodeRegistry", "default_address", "default_node_id"]
