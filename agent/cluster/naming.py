"""Names the cluster's pieces share: the Ray namespace, node agents' actor names, and the
custom resources nodes declare.

Kept below every other cluster module (it imports nothing of theirs and no Ray), so the node
agent, the replica bookkeeping, validation and ``status`` can all name the same things without
importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

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


MARKET_LABEL = "ray.io/market-type"
"""Ray's own node label for how a node was bought: ``spot`` or ``on-demand`` (KubeRay and the
autoscaler set it from the node group; `cluster up` sets it from ``TYPE@spot``). A node without
it counts as on-demand."""
SPOT = "spot"


def is_spot(labels: Mapping[str, object] | None) -> bool:
    """Whether a node with these Ray labels is spot capacity (values are strings; Ray's
    runtime context types them loosely)."""
    return (labels or {}).get(MARKET_LABEL) == SPOT


def market_placement(pricing: str) -> dict[str, object]:
    """Ray actor options that put a plan line's replica on its market. A spot replica asks for
    a spot node and falls back to any other (an interrupted spot node's replica is replaced on
    on-demand capacity: the plan's fallback); an on-demand one never takes a spot node."""
    not_spot = {MARKET_LABEL: f"!{SPOT}"}
    if pricing == SPOT:
        return {
            "label_selector": {MARKET_LABEL: SPOT},
            "fallback_strategy": [{"label_selector": not_spot}],
        }
    return {"label_selector": not_spot}


FAKE_GPU_RESOURCE = "quantplan:fake_gpus"
"""Declared (with the fake GPUs' count) by a test node whose ``GPU`` resources are logical only:
Ray schedules on them, no device exists. Agents, ``cluster status`` and refusals say "fake"."""
ACCELERATOR_TYPE_PREFIX = "accelerator_type:"


class NodeOffer(BaseModel):
    """What one alive node offers a plan, read from its Ray resources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_type: str = Field(description="The catalog instance type the node stands for")
    gpus: int = Field(default=0, ge=0, description="GPUs the node declares to Ray")
    accelerator_type: str | None = Field(default=None, description="Ray's accelerator type")
    fake_gpus: bool = Field(default=False, description="The GPUs are logical only (tests)")
    spot: bool = Field(default=False, description="Spot capacity (Ray's market-type label)")

    def describe(self) -> str:
        market = ", spot" if self.spot else ""
        if not self.gpus:
            return f"{self.instance_type} (no GPU{market})"
        fake = " (fake)" if self.fake_gpus else ""
        gpus = f"{self.gpus} {self.accelerator_type or '?'} GPU{fake}"
        return f"{self.instance_type} with {gpus}" + (" (spot)" if self.spot else "")


def node_offer(
    resources: dict[str, float], labels: Mapping[str, object] | None = None
) -> NodeOffer | None:
    """The offer of a node with these Ray resources and labels; None for a node of no
    instance type."""
    instance_type = instance_type_of(resources)
    if instance_type is None:
        return None
    types = [
        k.removeprefix(ACCELERATOR_TYPE_PREFIX)
        for k in resources
        if k.startswith(ACCELERATOR_TYPE_PREFIX)
    ]
    return NodeOffer(
        instance_type=instance_type,
        gpus=int(resources.get("GPU", 0)),
        accelerator_type=types[0] if types else None,
        fake_gpus=resources.get(FAKE_GPU_RESOURCE, 0) > 0,
        spot=is_spot(labels),
    )
