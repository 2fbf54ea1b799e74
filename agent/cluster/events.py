"""The fleet event stream: what the collector publishes and the dashboard subscribes to.

Every event is strict JSON (pydantic, ``extra="forbid"``) with a ``type`` discriminator, so a
subscriber in another process -- the TUI, a CLI ``status --follow``, a test -- validates what it
receives instead of trusting it. Events carry a sequence number assigned by the bus that
published them and the bus's ``epoch`` (a fresh id each time a collector starts): a subscriber
that sees a new epoch knows the collector restarted and starts reading that epoch from the top.

Subscribing is polling with a long-poll timeout (:func:`subscribe`, :func:`subscribe_async`)
against any :class:`EventSource`: the in-process :class:`EventBus` (tests, single process) or
the collector actor on a Ray cluster (``quantplan.agent.cluster.collector.connect_events``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from quantplan.agent.toolchains.gpu import AcceleratorInventory

DEFAULT_CAPACITY = 10_000
"""Events a bus keeps for late or slow subscribers before the oldest are dropped."""


def _now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(default=0, ge=0, description="Position in the bus's epoch; set on publish")
    at: AwareDatetime = Field(default_factory=_now, description="When it happened (UTC)")


class HardwareFacts(BaseModel):
    """What a node agent found out about its machine (reported, never assumed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str = Field(description="Ray node id")
    node_ip: str = Field(description="Address the node registered with Ray")
    hostname: str
    instance_type: str = Field(description="Catalog instance type the node was started as")
    logical_cpus: float = Field(ge=0, description="CPUs the node declared to Ray")
    physical_cores: int | None = Field(default=None, ge=1, description="Cores the OS reports")
    memory_gb: float = Field(ge=0, description="Host memory in GB")
    cpu_model: str = Field(default="", description="CPU model string, if readable")
    isa_flags: tuple[str, ...] = Field(default=(), description="Relevant ISA flags: avx2, ...")
    gpus: tuple[str, ...] = Field(default=(), description="GPU names, empty on CPU nodes")
    accelerators: AcceleratorInventory | None = Field(
        default=None,
        description="GPUs: detected by nvidia-smi (model, memory, capability, driver, CUDA), or "
        "logical ones a test node declares (fake=True); None from older agents",
    )


class NodeEvent(_Event):
    """A node agent came up, came back after a restart, or its node was lost."""

    type: Literal["node"] = "node"
    node_id: str
    instance_type: str
    state: Literal["joined", "restarted", "lost"]
    facts: HardwareFacts | None = None
    detail: str = ""


class JobEvent(_Event):
    """A quantize / serve / benchmark / evaluate job changed state on a node."""

    type: Literal["job"] = "job"
    job_id: str = Field(description="Stable across retries: it is the run id of the job")
    kind: Literal["quantize", "serve", "benchmark", "evaluate", "probe"]
    node_id: str | None = None
    instance_type: str | None = None
    state: Literal["started", "succeeded", "failed", "retrying"]
    attempt: int = Field(default=1, ge=1)
    detail: str = ""
    # A running job repeats "started" with these as it moves on; events without them (older
    # publishers, jobs that cannot count their work) stay valid and mean "under way".
    progress: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fraction done, from steps the job really counts (quantizer steps, "
        "benchmark levels); None when the job cannot say",
    )
    stage: str = Field(
        default="", max_length=120, description="What the job is doing now, e.g. 'level 1/3'"
    )


class ReplicaEvent(_Event):
    """A serving replica of an applied plan changed state."""

    type: Literal["replica"] = "replica"
    plan_id: str
    replica_id: str
    engine: str
    scheme: str
    node_id: str | None = None
    instance_type: str
    endpoint: str | None = Field(default=None, description="OpenAI-compatible base URL")
    state: Literal["starting", "healthy", "failed", "stopped"]
    detail: str = ""


class CostEvent(_Event):
    """Measured cost per token of a replica, a node, a plan line, or a whole plan."""

    type: Literal["cost"] = "cost"
    scope: Literal["replica", "node", "line", "plan"]
    key: str = Field(
        description="replica id, node id, '<plan id>|<deployment>' or plan id, as scope says"
    )
    plan_id: str
    deployment: str | None = Field(
        default=None,
        description="Line scope: the plan line, 'scheme engine instance-type' (as replicas "
        "are grouped on the dashboard)",
    )
    output_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float = Field(ge=0)
    usd_per_hour: float = Field(ge=0)
    usd_per_million_output_tokens: float | None = Field(default=None, ge=0)
    usd_per_million_tokens: float | None = Field(default=None, ge=0)
    predicted_usd_per_million_tokens: float | None = Field(default=None, ge=0)
    ttft_p95_ms: float | None = Field(
        default=None,
        ge=0,
        description="Measured p95 time to first token (a replica's benchmark; or the plan's "
        "streamed requests over a traffic window)",
    )
    itl_p95_ms: float | None = Field(
        default=None, ge=0, description="Measured p95 inter-token latency (replica scope)"
    )
    predicted_ttft_p95_ms: float | None = Field(
        default=None, ge=0, description="The plan's p95 TTFT for this replica's deployment"
    )
    measured_by: Literal["benchmark", "traffic"] = Field(
        default="benchmark",
        description="benchmark: apply's run at the planned load; traffic: the requests users "
        "sent through the fleet endpoint over the last window (agent/cluster/traffic.py)",
    )
    window_s: float | None = Field(default=None, gt=0, description="Traffic: the window's length")
    requests: int | None = Field(default=None, ge=0, description="Traffic: requests it saw")
    failed_requests: int | None = Field(default=None, ge=0, description="Traffic: of those, failed")


class PlanEvent(_Event):
    """An applied plan moved through apply's stages (or was refused, or proposed a replan)."""

    type: Literal["plan"] = "plan"
    plan_id: str
    state: Literal[
        "validating",
        "refused",
        "quantizing",
        "deploying",
        "benchmarking",
        "running",
        "replan_proposed",
        "destroyed",
        "failed",
    ]
    reasons: tuple[str, ...] = Field(default=(), description="Why refused/failed/replanned")
    detail: str = ""


class ReportEvent(_Event):
    """A measurement report reached the collector and what became of it."""

    type: Literal["report"] = "report"
    run_id: str
    kind: str
    status: str = Field(description="The run's status: succeeded or failed")
    outcome: Literal["recorded", "duplicate", "buffered", "rejected"]
    detail: str = ""


class CatalogEvent(_Event):
    """The catalog database became unavailable or available again."""

    type: Literal["catalog"] = "catalog"
    state: Literal["available", "unavailable"]
    buffered: int = Field(ge=0, description="Reports waiting in the collector's spool")
    detail: str = ""


FleetEvent = Annotated[
    NodeEvent | JobEvent | ReplicaEvent | CostEvent | PlanEvent | ReportEvent | CatalogEvent,
    Field(discriminator="type"),
]
FLEET_EVENT = TypeAdapter(FleetEvent)


class EventBatch(BaseModel):
    """One poll's answer: events after the cursor, and where to continue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epoch: str = Field(description="Changes when the publishing collector restarts")
    events: tuple[FleetEvent, ...] = ()
    next_seq: int = Field(ge=0, description="Pass as ``since`` to get the events after these")
    dropped: int = Field(default=0, ge=0, description="Events lost to a subscriber too far behind")


def parse_event(data: str | bytes | dict[str, object]) -> FleetEvent:
    """Validate one event from JSON text or a plain dict (raises pydantic.ValidationError)."""
    if isinstance(data, str | bytes):
        return FLEET_EVENT.validate_json(data)
    return FLEET_EVENT.validate_python(data)


class EventSource(Protocol):
    """Anything a subscriber can poll: the in-process bus or the collector on Ray."""

    def events_since(self, since: int, *, timeout_s: float = 0.0, limit: int = 500) -> EventBatch:
        """Events with ``seq >= since``; waits up to ``timeout_s`` for the first one."""
        ...


class EventBus:
    """A thread-safe, bounded, in-memory event log with long-poll reads."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self._events: deque[FleetEvent] = deque(maxlen=capacity)
        self._next_seq = 0
        self._changed = threading.Condition()

    def publish(self, event: FleetEvent) -> FleetEvent:
        """Append ``event`` with the next sequence number; returns the stored copy."""
        with self._changed:
            stored = event.model_copy(update={"seq": self._next_seq})
            self._next_seq += 1
            self._events.append(stored)
            self._changed.notify_all()
        return stored

    def events_since(self, since: int, *, timeout_s: float = 0.0, limit: int = 500) -> EventBatch:
        with self._changed:
            if since > self._next_seq:  # a cursor from an earlier epoch: read this one afresh
                since = 0
            if self._next_seq <= since and timeout_s > 0:
                self._changed.wait_for(lambda: self._next_seq > since, timeout=timeout_s)
            first_kept = self._events[0].seq if self._events else self._next_seq
            start = max(since, first_kept)
            # Sequence numbers are contiguous, so the wanted slice starts at a known offset.
            offset = start - first_kept
            end = min(offset + limit, len(self._events))
            picked = tuple(self._events[i] for i in range(offset, end))
            return EventBatch(
                epoch=self.epoch,
                events=picked,
                next_seq=start + len(picked),
                dropped=start - since,
            )

    @property
    def next_seq(self) -> int:
        with self._changed:
            return self._next_seq


def subscribe(
    source: EventSource,
    *,
    since: int = 0,
    poll_timeout_s: float = 1.0,
    stop: threading.Event | None = None,
) -> Iterator[FleetEvent]:
    """Yield events from ``source`` as they come, until ``stop`` is set (forever otherwise).

    When the source's epoch changes (the collector restarted), reading starts over at the new
    epoch's first event, so nothing published after the restart is missed.
    """
    epoch: str | None = None
    cursor = since
    while stop is None or not stop.is_set():
        batch = source.events_since(cursor, timeout_s=poll_timeout_s)
        if epoch is not None and batch.epoch != epoch:
            cursor = 0
            epoch = batch.epoch
            continue
        epoch = batch.epoch
        cursor = batch.next_seq
        yield from batch.events


async def subscribe_async(
    source: EventSource, *, since: int = 0, poll_timeout_s: float = 1.0
) -> AsyncIterator[FleetEvent]:
    """:func:`subscribe` for asyncio code (a Textual worker): polls in a thread."""
    epoch: str | None = None
    cursor = since
    while True:
        batch = await asyncio.to_thread(source.events_since, cursor, timeout_s=poll_timeout_s)
        if epoch is not None and batch.epoch != epoch:
            cursor, epoch = 0, batch.epoch
            continue
        epoch, cursor = batch.epoch, batch.next_seq
        for event in batch.events:
            yield event
