"""``quantplan status`` and ``quantplan destroy``: what runs where, and removing it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster import deployment_state as states
from quantplan.agent.cluster.events import PlanEvent, ReplicaEvent


class ReplicaStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str
    replica_id: str
    scheme: str
    engine: str
    instance_type: str
    node_id: str
    node_alive: bool
    endpoint: str
    healthy: bool
    state: Literal["healthy", "not answering", "failed"] = Field(
        description="failed: apply could not start it (see detail)"
    )
    detail: str = Field(default="", description="Why it failed, for a failed replica")


class NodeStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str
    instance_type: str | None
    alive: bool
    cpus: float
    address: str
    gpus: int = Field(default=0, ge=0, description="GPUs the node declares to Ray")
    accelerator_type: str | None = Field(default=None, description="Ray accelerator type")
    fake_gpus: bool = Field(default=False, description="Logical GPUs only (a test node)")
    spot: bool = Field(default=False, description="Spot capacity (Ray's market-type label)")


class FleetStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="The GCS address of the Ray cluster attached to")
    cluster: str = Field(default="", description="Which cluster that is and how it was found")
    nodes: tuple[NodeStatus, ...]
    replicas: tuple[ReplicaStatus, ...]
    collector: dict[str, object] | None = None


def _offer_fields(
    resources: dict[str, float], labels: Mapping[str, object] | None
) -> dict[str, object]:
    from quantplan.agent.cluster.naming import node_offer

    offer = node_offer(resources, labels)
    if offer is None:
        return {}
    return {
        "gpus": offer.gpus,
        "accelerator_type": offer.accelerator_type,
        "fake_gpus": offer.fake_gpus,
        "spot": offer.spot,
    }


def fleet_status(address: str = "auto") -> FleetStatus:
    import ray

    from quantplan.agent.cluster.local import attach
    from quantplan.agent.cluster.naming import instance_type_of
    from quantplan.agent.cluster.replicas import healthy_replicas

    connected = attach(address)
    nodes = tuple(
        NodeStatus(
            node_id=node["NodeID"],
            instance_type=instance_type_of(node.get("Resources", {})),
            alive=bool(node.get("Alive")),
            cpus=float(node.get("Resources", {}).get("CPU", 0.0)),
            address=node.get("NodeManagerAddress", ""),
            **_offer_fields(node.get("Resources", {}), node.get("Labels")),
        )
        for node in ray.nodes()
    )
    alive = {node.node_id for node in nodes if node.alive}
    replicas = []
    for state in states.all_states():
        healthy = healthy_replicas(state)
        for replica_id, record in state.replicas.items():
            replicas.append(
                ReplicaStatus(
                    deployment=state.name,
                    replica_id=replica_id,
                    scheme=record.spec.scheme,
                    engine=record.spec.engine,
                    instance_type=record.spec.instance_type,
                    node_id=record.node_id,
                    node_alive=record.node_id in alive,
                    endpoint=record.base_url,
                    healthy=replica_id in healthy,
                    state="healthy" if replica_id in healthy else "not answering",
                )
            )
        for replica_id, failure in state.failed.items():
            replicas.append(
                ReplicaStatus(
                    deployment=state.name,
                    replica_id=replica_id,
                    scheme=failure.spec.scheme,
                    engine=failure.spec.engine,
                    instance_type=failure.spec.instance_type,
                    node_id=failure.node_id or "",
                    node_alive=failure.node_id in alive,
                    endpoint="",
                    healthy=False,
                    state="failed",
                    detail=failure.reason,
                )
            )
    collector = None
    try:
        from quantplan.agent.cluster.collector_actor import CollectorClient

        collector = CollectorClient().stats(timeout_s=10).model_dump()
    except Exception:  # no collector started on this cluster yet
        collector = None
    return FleetStatus(
        address=ray.get_runtime_context().gcs_address,
        cluster=connected,
        nodes=nodes,
        replicas=tuple(replicas),
        collector=collector,
    )


def destroy(name: str | None = None, address: str = "auto") -> list[str]:
    """Stop every replica of deployment ``name`` (all deployments if None); their ids."""
    from quantplan.agent.cluster.local import attach
    from quantplan.agent.cluster.replicas import stop_noted_servers, stop_replica

    attach(address)
    client = None
    try:
        from quantplan.agent.cluster.collector_actor import CollectorClient

        client = CollectorClient()
    except Exception:
        client = None
    stopped: list[str] = []
    for state in states.all_states():
        if name is not None and state.name != name:
            continue
        for replica_id, record in list(state.replicas.items()):
            stop_replica(record)
            stopped.append(replica_id)
            if client is not None:
                client.publish(
                    ReplicaEvent(
                        plan_id=state.name,
                        replica_id=replica_id,
                        engine=record.spec.engine,
                        scheme=record.spec.scheme,
                        node_id=record.node_id,
                        instance_type=record.spec.instance_type,
                        state="stopped",
                    )
                )
        # A replica that failed to start may have left an engine behind (its node was lost
        # while the engine loaded): its agent noted the process group at launch.
        if state.failed:
            left = stop_noted_servers(replica_ids=set(state.failed))
            stopped.extend(f"{replica_id} (left by a failed start)" for replica_id in left)
        states.delete_state(state.name)
        if client is not None:
            client.publish(PlanEvent(plan_id=state.name, state="destroyed"))
    return stopped
