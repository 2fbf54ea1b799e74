"""The Fleet screen's view-model: folds the cluster's event stream into what the tables show.

Plain Python, no widgets. The screen applies event batches as they arrive (a few dictionary
writes per event) and, on its own refresh tick, asks what changed since the last tick. That keeps
a busy cluster (thousands of events a second) off the render path. The cluster package's own
``fleet_view.apply_event`` builds a new immutable view per event, which costs O(nodes) per event;
this fold is incremental and tracks changes, which is what a live screen of 1,000 nodes needs.

Memory stays bounded: one entry per node, replica and plan, a capped set of finished jobs and a
capped event log.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from quantplan.agent.cluster.events import (
    CatalogEvent,
    CostEvent,
    FleetEvent,
    JobEvent,
    NodeEvent,
    PlanEvent,
    ReplicaEvent,
    ReportEvent,
)
from quantplan.agent.costs import usd_per_million_tokens
from quantplan.tui.viewmodels.fleet_rows import (
    DeploymentRow,
    FleetSummary,
    JobRow,
    LogLine,
    NodeChanges,
    NodeRow,
    PlanRow,
    ReplicaRow,
)

FINISHED_JOB_STATES = frozenset({"succeeded", "failed"})


@dataclass
class FleetState:
    """Latest status per node/job/replica/plan plus the event log, with change tracking."""

    event_log_limit: int = 500
    finished_job_limit: int = 200
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    jobs: dict[str, JobRow] = field(default_factory=dict)
    replicas: dict[str, ReplicaRow] = field(default_factory=dict)
    plans: dict[str, PlanRow] = field(default_factory=dict)
    # (plan id, deployment): the line's latest live-traffic cost event (the fleet endpoint's)
    lines: dict[tuple[str, str], CostEvent] = field(default_factory=dict)
    events_applied: int = 0
    log_total: int = 0  # log lines ever written; the log keeps only the newest
    catalog_available: bool = True
    buffered_reports: int = 0
    jobs_dirty: bool = False
    deployments_dirty: bool = False
    replan_dirty: bool = False

    def __post_init__(self) -> None:
        self.log: deque[LogLine] = deque(maxlen=self.event_log_limit)
        self._finished_jobs: deque[str] = deque()
        self._added: dict[str, None] = {}  # an ordered set: rows appear in arrival order
        self._changed: set[str] = set()

    # ------------------------------------------------------------------ folding events

    def apply_all(self, events: Iterable[FleetEvent]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: FleetEvent) -> None:
        self.events_applied += 1
        if isinstance(event, CostEvent):  # by far the most frequent: checked first
            self._apply_cost(event)
        elif isinstance(event, NodeEvent):
            self._apply_node(event)
        elif isinstance(event, JobEvent):
            self._apply_job(event)
        elif isinstance(event, ReplicaEvent):
            self._apply_replica(event)
        elif isinstance(event, PlanEvent):
            self._apply_plan(event)
        elif isinstance(event, ReportEvent):
            level = "error" if event.outcome == "rejected" else "info"
            detail = f": {event.detail}" if event.detail else ""
            self._log(
                event.at, level, f"report {event.run_id} ({event.kind}) {event.outcome}{detail}"
            )
        elif isinstance(event, CatalogEvent):
            self.catalog_available = event.state == "available"
            self.buffered_reports = event.buffered
            level = "info" if self.catalog_available else "warning"
            self._log(
                event.at,
                level,
                f"catalog {event.state}, {event.buffered} reports buffered {event.detail}".rstrip(),
            )

    def _mark_node(self, node_id: str) -> None:
        if node_id not in self._added:
            self._changed.add(node_id)

    def _apply_node(self, event: NodeEvent) -> None:
        row = self.nodes.get(event.node_id)
        if row is None:
            row = NodeRow(event.node_id, event.instance_type, event.state)
            self.nodes[event.node_id] = row
            self._added[event.node_id] = None
        else:
            row.state, row.instance_type = event.state, event.instance_type
            self._mark_node(event.node_id)
        if event.facts is not None:
            row.hardware = ", ".join(event.facts.gpus) or event.facts.cpu_model
        if event.state == "lost":
            row.running_jobs = 0
        level = "warning" if event.state != "joined" else "info"
        detail = f": {event.detail}" if event.detail else ""
        self._log(
            event.at, level, f"node {event.node_id} ({event.instance_type}) {event.state}{detail}"
        )

    def _apply_job(self, event: JobEvent) -> None:
        previous = self.jobs.get(event.job_id)
        was_active = previous is not None and previous.state not in FINISHED_JOB_STATES
        is_active = event.state not in FINISHED_JOB_STATES
        if (
            previous is not None
            and previous.state == event.state == "started"
            and previous.node_id == event.node_id
        ):
            # A progress update of a running job: the row changes in place, counts do not.
            previous.state, previous.attempt = event.state, event.attempt
            previous.progress, previous.stage = event.progress, event.stage
            previous.detail = event.detail
            self.jobs_dirty = True
            return
        self.jobs[event.job_id] = JobRow(
            job_id=event.job_id,
            kind=event.kind,
            node_id=event.node_id
            if event.node_id is not None or previous is None
            else previous.node_id,
            state=event.state,
            attempt=event.attempt,
            started_at=previous.started_at if previous is not None else event.at,
            # A finished job keeps the last progress it reported (where a failure stopped).
            progress=event.progress
            if event.progress is not None or previous is None
            else previous.progress,
            stage=event.stage,
            detail=event.detail,
        )
        self.jobs_dirty = True
        # A retried job may move nodes: count it off the old node and onto the new one.
        if was_active and previous is not None:
            self._count_job(previous.node_id, -1)
        if is_active:
            self._count_job(event.node_id, +1)
        if not is_active and (was_active or previous is None):
            self._finished_jobs.append(event.job_id)
            while len(self._finished_jobs) > self.finished_job_limit:
                self.jobs.pop(self._finished_jobs.popleft(), None)
        if event.state in ("failed", "retrying"):
            self._log(
                event.at,
                "error" if event.state == "failed" else "warning",
                f"{event.kind} job {event.job_id} {event.state} on {event.node_id}: {event.detail}",
            )

    def _count_job(self, node_id: str | None, delta: int) -> None:
        node = self.nodes.get(node_id or "")
        if node is not None:
            node.running_jobs = max(0, node.running_jobs + delta)
            self._mark_node(node.node_id)

    def _apply_replica(self, event: ReplicaEvent) -> None:
        row = self.replicas.get(event.replica_id)
        deployment = f"{event.scheme} {event.engine} {event.instance_type}"
        if row is None:
            row = ReplicaRow(
                event.replica_id, event.plan_id, deployment, event.node_id, event.state
            )
            self.replicas[event.replica_id] = row
        else:
            row.state, row.node_id, row.deployment = event.state, event.node_id, deployment
        self.deployments_dirty = True
        if event.state in ("healthy", "failed"):
            level = "info" if event.state == "healthy" else "error"
            self._log(
                event.at, level, f"replica {event.replica_id} {event.state} {event.detail}".rstrip()
            )

    def _apply_cost(self, event: CostEvent) -> None:
        if event.scope == "node":
            node = self.nodes.get(event.key)
            if node is not None:
                node.output_tokens_per_s = event.output_tokens_per_s
                node.usd_per_hour = event.usd_per_hour
                node.usd_per_million_tokens = event.usd_per_million_tokens
                self._mark_node(event.key)
        elif event.scope == "replica":
            replica = self.replicas.get(event.key)
            if replica is not None:
                replica.output_tokens_per_s = event.output_tokens_per_s
                replica.total_tokens_per_s = event.total_tokens_per_s
                replica.usd_per_hour = event.usd_per_hour
                replica.usd_per_million_tokens = event.usd_per_million_tokens
                replica.ttft_p95_ms = event.ttft_p95_ms
                replica.itl_p95_ms = event.itl_p95_ms
                replica.predicted_ttft_p95_ms = event.predicted_ttft_p95_ms
                self.deployments_dirty = True
        elif event.scope == "line":
            if event.deployment is not None:
                self.lines[(event.plan_id, event.deployment)] = event
                self.deployments_dirty = True
        else:
            plan = self.plans.setdefault(event.key, PlanRow(event.key))
            plan.output_tokens_per_s = event.output_tokens_per_s
            plan.total_tokens_per_s = event.total_tokens_per_s
            plan.usd_per_hour = event.usd_per_hour
            plan.usd_per_million_tokens = event.usd_per_million_tokens
            plan.predicted_usd_per_million_tokens = event.predicted_usd_per_million_tokens
            plan.measured_by = event.measured_by
            self.deployments_dirty = True

    def _apply_plan(self, event: PlanEvent) -> None:
        plan = self.plans.setdefault(event.plan_id, PlanRow(event.plan_id))
        plan.state, plan.reasons = event.state, event.reasons
        self.deployments_dirty = True
        if event.state == "replan_proposed":
            self.replan_dirty = True
        level = "error" if event.state in ("refused", "failed") else "info"
        reasons = f": {'; '.join(event.reasons)}" if event.reasons else ""
        self._log(event.at, level, f"plan {event.plan_id} {event.state}{reasons}")

    def _log(self, at: datetime, level: str, message: str) -> None:
        self.log.append(LogLine(at, level, message))
        self.log_total += 1

    # ------------------------------------------------------------------ reading changes

    @property
    def has_node_changes(self) -> bool:
        return bool(self._added or self._changed)

    def take_node_changes(self) -> NodeChanges:
        """Nodes added and changed since the last call (then forgets them).

        Nodes are never removed: a lost node stays listed as "lost", which is what an operator
        needs to see.
        """
        changes = NodeChanges(added=list(self._added), changed=sorted(self._changed))
        self._added.clear()
        self._changed.clear()
        return changes

    def new_log_lines(self, seen: int) -> list[LogLine]:
        """Log lines after the first ``seen`` ever written (those still kept)."""
        fresh = min(self.log_total - seen, len(self.log))
        return list(self.log)[len(self.log) - fresh :] if fresh > 0 else []

    def replan_proposals(self) -> list[PlanRow]:
        return [p for p in self.plans.values() if p.state == "replan_proposed"]

    def job_rows(self) -> list[JobRow]:
        """Active jobs first, then finished ones; the newest started first within each."""
        return sorted(
            self.jobs.values(),
            key=lambda job: (job.state in FINISHED_JOB_STATES, -job.started_at.timestamp()),
        )

    def deployment_rows(self) -> list[DeploymentRow]:
        """One row per plan line: its replicas' benchmark figures, or, where the fleet
        endpoint meters the line, its live traffic's."""
        groups: dict[tuple[str, str], list[ReplicaRow]] = {key: [] for key in self.lines}
        for replica in self.replicas.values():
            groups.setdefault((replica.plan_id, replica.deployment), []).append(replica)
        rows = []
        for (plan_id, deployment), replicas in sorted(groups.items()):
            live = [r for r in replicas if r.state != "stopped"]
            measured = [r for r in live if r.output_tokens_per_s is not None]
            plan = self.plans.get(plan_id)
            ttfts = [r.ttft_p95_ms for r in measured if r.ttft_p95_ms is not None]
            predicted_ttfts = [
                r.predicted_ttft_p95_ms for r in live if r.predicted_ttft_p95_ms is not None
            ]
            row = DeploymentRow(
                key=f"{plan_id}|{deployment}",
                plan_id=plan_id,
                deployment=deployment,
                replicas_healthy=sum(1 for r in live if r.state == "healthy"),
                replicas_total=len(live),
                output_tokens_per_s=(
                    sum(r.output_tokens_per_s or 0.0 for r in measured) if measured else None
                ),
                usd_per_hour=(sum(r.usd_per_hour or 0.0 for r in measured) if measured else None),
                usd_per_million_tokens=_combined_cost(measured),
                predicted_usd_per_million_tokens=(
                    plan.predicted_usd_per_million_tokens if plan else None
                ),
                ttft_p95_ms=max(ttfts) if ttfts else None,
                predicted_ttft_p95_ms=max(predicted_ttfts) if predicted_ttfts else None,
            )
            traffic = self.lines.get((plan_id, deployment))
            if traffic is not None:
                row = replace(
                    row,
                    output_tokens_per_s=traffic.output_tokens_per_s,
                    usd_per_hour=traffic.usd_per_hour,
                    usd_per_million_tokens=traffic.usd_per_million_tokens,
                    predicted_usd_per_million_tokens=(
                        traffic.predicted_usd_per_million_tokens
                        or row.predicted_usd_per_million_tokens
                    ),
                    ttft_p95_ms=traffic.ttft_p95_ms,
                    live=True,
                )
            rows.append(row)
        return rows

    def summary(self) -> FleetSummary:
        states = Counter(node.state for node in self.nodes.values())
        plans = [p for p in self.plans.values() if p.usd_per_hour is not None]
        tokens = sum(p.output_tokens_per_s or 0.0 for p in plans)
        cost = sum(p.usd_per_hour or 0.0 for p in plans)
        per_million = plans[0].usd_per_million_tokens if len(plans) == 1 else _combined_cost(plans)
        return FleetSummary(
            nodes_by_state=dict(states),
            jobs_running=sum(1 for j in self.jobs.values() if j.state not in FINISHED_JOB_STATES),
            replicas_healthy=sum(1 for r in self.replicas.values() if r.state == "healthy"),
            output_tokens_per_s=tokens,
            usd_per_hour=cost,
            usd_per_million_tokens=per_million,
            live=bool(plans) and all(p.measured_by == "traffic" for p in plans),
        )


def _combined_cost(rows: Iterable[ReplicaRow | PlanRow]) -> float | None:
    """$/M tokens of several parts together: total $/h over total tokens/s (the agent's math)."""
    measured = [r for r in rows if r.usd_per_hour is not None and r.total_tokens_per_s]
    if not measured:
        return None
    return usd_per_million_tokens(
        sum(r.usd_per_hour or 0.0 for r in measured),
        sum(r.total_tokens_per_s or 0.0 for r in measured),
    )
