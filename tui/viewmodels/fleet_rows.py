"""The rows the Fleet screen shows: plain dataclasses filled by :mod:`.fleet_state`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class NodeRow:
    node_id: str
    instance_type: str
    state: str
    hardware: str = ""
    running_jobs: int = 0
    output_tokens_per_s: float | None = None
    usd_per_hour: float | None = None
    usd_per_million_tokens: float | None = None


@dataclass
class ReplicaRow:
    replica_id: str
    plan_id: str
    deployment: str
    node_id: str | None
    state: str
    output_tokens_per_s: float | None = None
    total_tokens_per_s: float | None = None
    usd_per_hour: float | None = None
    usd_per_million_tokens: float | None = None
    ttft_p95_ms: float | None = None
    itl_p95_ms: float | None = None
    predicted_ttft_p95_ms: float | None = None


@dataclass
class JobRow:
    """A job's latest state; ``started_at`` is when it was first seen, so progress updates do
    not reorder the table under the cursor."""

    job_id: str
    kind: str
    node_id: str | None
    state: str
    attempt: int
    started_at: datetime
    progress: float | None = None
    stage: str = ""
    detail: str = ""


@dataclass
class PlanRow:
    plan_id: str
    state: str = "running"
    reasons: tuple[str, ...] = ()
    output_tokens_per_s: float | None = None
    total_tokens_per_s: float | None = None
    usd_per_hour: float | None = None
    usd_per_million_tokens: float | None = None
    predicted_usd_per_million_tokens: float | None = None
    measured_by: str | None = None  # "benchmark" (apply) or "traffic" (the fleet endpoint)


@dataclass(frozen=True)
class DeploymentRow:
    """Replicas of one (plan, scheme, engine, instance type), measured next to predicted."""

    key: str
    plan_id: str
    deployment: str
    replicas_healthy: int
    replicas_total: int
    output_tokens_per_s: float | None
    usd_per_hour: float | None
    usd_per_million_tokens: float | None
    predicted_usd_per_million_tokens: float | None
    ttft_p95_ms: float | None = None  # the worst replica's: an SLO holds only if it holds there
    predicted_ttft_p95_ms: float | None = None
    live: bool = False  # tokens, $ and TTFT from the endpoint's live traffic on this line


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str  # info, warning or error
    message: str


@dataclass(frozen=True)
class FleetSummary:
    nodes_by_state: dict[str, int]
    jobs_running: int
    replicas_healthy: int
    output_tokens_per_s: float
    usd_per_hour: float
    usd_per_million_tokens: float | None
    live: bool = False  # every plan's cost comes from the live traffic through its endpoint


@dataclass(frozen=True)
class NodeChanges:
    """What the node table must do on this tick."""

    added: list[str]
    changed: list[str]
