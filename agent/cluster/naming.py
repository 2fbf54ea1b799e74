"""Names the cluster's pieces share: the Ray namespace, node agents' actor names, and the
custom resources nodes declare.

Kept below every other cluster module (it imports nothing of theirs and no Ray), so the node
agent, the replica bookkeeping, validation and ``status`` can all name the same things without
importing one another.
"""

from __future__ import annotations

NAMESPACE = "quantplan"
"""The Ray namespace of every named actor quantplan starts (agents, the collector, GPU leases)."""
AGENT_PREFIX = "quantplan-agent-"
INSTANCE_PREFIX = "instance:"
"""A node declares ``instance:<catalog instance type>``: what it stands for in a plan."""


def agent_name(node_id: str) -> str:
    """The node agent's actor name on ``node_id``."""
    return AGENT_PREFIX + node_id[:16]


def instance_type_of(resources: dict[str, float]) -> str | None:
    """The catalog instance type a node declares in its Ray resources, or None (the head)."""
    for key in resources:
        if key.startswith(INSTANCE_PREFIX):
            return key.removeprefix(INSTANCE_PREFIX)
    return None
