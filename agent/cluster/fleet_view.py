"""The fleet as a screen shows it, folded from the event stream (pure, no I/O).

A dashboard keeps one :class:`FleetView`, feeds every event it receives to :func:`apply_event`
and renders the result; it needs no logic of its own and no access to Ray or the catalog.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster.events import (
    CatalogEvent,
    CostEvent,
    FleetEvent,
    HardwareFacts,
    JobEvent,
    NodeEvent,
    PlanEvent,
    ReplicaEvent,
    ReportEvent,
)

RECENT_REPORTS = 20


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeView(_View):
    node_id: str
    instance_type: str
    state: Literal["up", "lost"]
    facts: HardwareFacts | None = None
    running_jobs: tuple[str, ...] = Field(default=(), description="Job ids running there now")
    usd_per_million_tokens: float | None = None


class ReplicaView(_View):
    replica_id: str
    plan_id: str
    engine: str
    scheme: str
    instance_type: str
    node_id: str | None = None
    endpoint: str | None = None
    state: Literal["starting", "healthy", "failed", "stopped"]
    detail: str = ""
    output_tokens_per_s: float | None = None
    usd_per_million_tokens: float | None = None


class PlanView(_View):
    plan_id: str
    state: str
    reasons: tuple[str, ...] = ()
    usd_per_million_tokens: float | None = None
    predicted_usd_per_million_tokens: float | None = None


class FleetView(_View):
    """Everything the fleet screen shows; a new object after every event."""

    nodes: dict[str, NodeView] = Field(default_factory=dict)
    replicas: dict[str, ReplicaView] = Field(default_factory=dict)
    plans: dict[str, PlanView] = Field(default_factory=dict)
    catalog_available: bool = True
    buffered_reports: int = 0
    recent_reports: tuple[ReportEvent, ...] = ()
    epoch: str | None = None
    last_seq: int = -1


def apply_event(view: FleetView, event: FleetEvent) -> FleetView:
    """The view after ``event`` (``view`` itself is not changed)."""
    update: dict[str, object] = {"last_seq": event.seq}
    match event:
        case NodeEvent():
            node = view.nodes.get(event.node_id)
            state: Literal["up", "lost"] = "lost" if event.state == "lost" else "up"
            facts = event.facts or (node.facts if node else None)
            new = NodeView(
                node_id=event.node_id,
                instance_type=event.instance_type,
                state=state,
                facts=facts,
                running_jobs=() if state == "lost" or node is None else node.running_jobs,
            )
            update["nodes"] = {**view.nodes, event.node_id: new}
        case JobEvent() if event.node_id in view.nodes:
            node = view.nodes[event.node_id]
            running = tuple(j for j in node.running_jobs if j != event.job_id)
            if event.state == "started":
                running = (*running, event.job_id)
            update["nodes"] = {
                **view.nodes,
                event.node_id: node.model_copy(update={"running_jobs": running}),
            }
        case ReplicaEvent():
            old = view.replicas.get(event.replica_id)
            fields = event.model_dump(include=set(ReplicaView.model_fields))
            if old is not None:
                fields["output_tokens_per_s"] = old.output_tokens_per_s
                fields["usd_per_million_tokens"] = old.usd_per_million_tokens
            update["replicas"] = {**view.replicas, event.replica_id: ReplicaView(**fields)}
        case CostEvent():
            update.update(_apply_cost(view, event))
        case PlanEvent():
            old_plan = view.plans.get(event.plan_id)
            plan = (old_plan or PlanView(plan_id=event.plan_id, state=event.state)).model_copy(
                update={"state": event.state, "reasons": event.reasons}
            )
            update["plans"] = {**view.plans, event.plan_id: plan}
        case ReportEvent():
            update["recent_reports"] = (*view.recent_reports, event)[-RECENT_REPORTS:]
        case CatalogEvent():
            update["catalog_available"] = event.state == "available"
            update["buffered_reports"] = event.buffered
    return view.model_copy(update=update)


def _apply_cost(view: FleetView, event: CostEvent) -> dict[str, object]:
    if event.scope == "replica" and event.key in view.replicas:
        replica = view.replicas[event.key].model_copy(
            update={
                "output_tokens_per_s": event.output_tokens_per_s,
                "usd_per_million_tokens": event.usd_per_million_tokens,
            }
        )
        return {"replicas": {**view.replicas, event.key: replica}}
    if event.scope == "node" and event.key in view.nodes:
        node = view.nodes[event.key].model_copy(
            update={"usd_per_million_tokens": event.usd_per_million_tokens}
        )
        return {"nodes": {**view.nodes, event.key: node}}
    if event.scope == "plan":
        plan = view.plans.get(event.key) or PlanView(plan_id=event.key, state="running")
        plan = plan.model_copy(
            update={
                "usd_per_million_tokens": event.usd_per_million_tokens,
                "predicted_usd_per_million_tokens": event.predicted_usd_per_million_tokens,
            }
        )
        return {"plans": {**view.plans, event.key: plan}}
    return {}
