"""A simulated fleet: a seeded random walk publishing the cluster's own events.

It exists to drive the Fleet screen at scale (the 1,000-node benchmark) and in demos without a
cluster. It publishes into the cluster package's in-process
:class:`~quantplan.agent.cluster.events.EventBus` from a thread, and the screen reads it through
the same long-poll adapter it uses for the collector actor, so the benchmark exercises the real
receive path. The screen labels it SIMULATED; nothing it produces reaches the catalog.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from quantplan.agent.cluster.events import (
    CostEvent,
    EventBus,
    FleetEvent,
    HardwareFacts,
    JobEvent,
    NodeEvent,
    PlanEvent,
    ReplicaEvent,
)
from quantplan.agent.costs import usd_per_million_tokens
from quantplan.tui.fleet.sources import PolledFleetSource

# (instance type, GPU names, CPU model, $/h): node shapes the simulator spreads around.
NODE_KINDS: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("g6.xlarge", ("L4",), "AMD EPYC 7R13", 0.805),
    ("g5.xlarge", ("A10G",), "AMD EPYC 7R32", 1.006),
    ("c7i.8xlarge", (), "Intel Xeon Platinum 8488C", 1.428),
    ("c7a.4xlarge", (), "AMD EPYC 9R14", 0.821),
)
PLAN_ID = "plan-sim"
# p95 TTFT the simulated plan predicts per replica, GPU and CPU nodes (ms).
PREDICTED_TTFT_P95_MS = {True: 180.0, False: 900.0}
BENCH_LEVELS = 3  # load levels of a simulated benchmark job, reported one by one
QUANTIZE_LAYERS = 30  # layers a simulated quantize job counts through


@dataclass
class SimulatedFleet:
    """Deterministic state of a fake fleet; :meth:`tick` advances it and returns events."""

    nodes: int
    updates_per_node_per_s: float = 10.0
    seed: int = 0
    replicas: int = 8
    _random: random.Random = field(init=False, repr=False)
    _ticks: int = field(default=0, init=False)
    _cursor: int = field(default=0, init=False)
    _bench_node: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("a simulated fleet needs at least one node")
        self._random = random.Random(self.seed)

    @staticmethod
    def node_id(index: int) -> str:
        return f"node-{index:04d}"

    def kind(self, index: int) -> tuple[str, tuple[str, ...], str, float]:
        return NODE_KINDS[index % len(NODE_KINDS)]

    def _replica_node(self, replica: int) -> int:
        return replica % self.nodes

    def _deployment(self, replica: int) -> tuple[str, str]:
        gpus = self.kind(self._replica_node(replica))[1]
        return ("gptq-w4a16-g128", "vllm") if gpus else ("gguf-q4_k_m", "llama.cpp")

    def opening(self, at: datetime) -> list[FleetEvent]:
        """Every node joining, the plan running, its replicas healthy, a benchmark per node."""
        events: list[FleetEvent] = []
        for index in range(self.nodes):
            instance, gpus, cpu, _ = self.kind(index)
            facts = HardwareFacts(
                node_id=self.node_id(index),
                node_ip=f"10.0.{index // 250}.{index % 250 + 1}",
                hostname=f"sim-{index:04d}",
                instance_type=instance,
                logical_cpus=4.0,
                memory_gb=16.0,
                cpu_model=cpu,
                gpus=gpus,
            )
            events.append(
                NodeEvent(
                    node_id=facts.node_id,
                    instance_type=instance,
                    state="joined",
                    facts=facts,
                    at=at,
                )
            )
        events.append(PlanEvent(plan_id=PLAN_ID, state="running", at=at))
        for replica in range(self.replicas):
            node = self._replica_node(replica)
            scheme, engine = self._deployment(replica)
            events.append(
                ReplicaEvent(
                    plan_id=PLAN_ID,
                    replica_id=f"replica-{replica}",
                    engine=engine,
                    scheme=scheme,
                    node_id=self.node_id(node),
                    instance_type=self.kind(node)[0],
                    state="healthy",
                    at=at,
                )
            )
        return events

    def tick(self, at: datetime, seconds: float) -> list[FleetEvent]:
        """``seconds`` of traffic: per-node cost updates at the configured rate, and the rest."""
        rnd = self._random
        self._ticks += 1
        events: list[FleetEvent] = []
        count = max(1, round(self.nodes * self.updates_per_node_per_s * seconds))
        for _ in range(count):
            index = self._cursor
            self._cursor = (self._cursor + 1) % self.nodes
            price = self.kind(index)[3]
            gpu = bool(self.kind(index)[1])
            tokens = max(0.0, rnd.gauss(380.0 if gpu else 42.0, 20.0 if gpu else 3.0))
            total = tokens * 3
            events.append(
                CostEvent(
                    scope="node",
                    key=self.node_id(index),
                    plan_id=PLAN_ID,
                    output_tokens_per_s=round(tokens, 1),
                    total_tokens_per_s=round(total, 1),
                    usd_per_hour=price,
                    usd_per_million_tokens=usd_per_million_tokens(price, total),
                    at=at,
                )
            )
        events.extend(self._replica_costs(at))
        events.extend(self._jobs(at))
        return events

    def _replica_costs(self, at: datetime) -> list[FleetEvent]:
        rnd = self._random
        events: list[FleetEvent] = []
        plan_tokens = plan_total = plan_cost = 0.0
        for replica in range(self.replicas):
            node = self._replica_node(replica)
            price, gpu = self.kind(node)[3], bool(self.kind(node)[1])
            tokens = max(1.0, rnd.gauss(380.0 if gpu else 42.0, 20.0 if gpu else 3.0))
            total = tokens * 3
            predicted_ttft = PREDICTED_TTFT_P95_MS[gpu]
            ttft = max(1.0, rnd.gauss(predicted_ttft * 1.08, predicted_ttft * 0.1))
            plan_tokens, plan_total, plan_cost = (
                plan_tokens + tokens,
                plan_total + total,
                (plan_cost + price),
            )
            events.append(
                CostEvent(
                    scope="replica",
                    key=f"replica-{replica}",
                    plan_id=PLAN_ID,
                    output_tokens_per_s=round(tokens, 1),
                    total_tokens_per_s=round(total, 1),
                    usd_per_hour=price,
                    usd_per_million_tokens=usd_per_million_tokens(price, total),
                    ttft_p95_ms=round(ttft, 1),
                    itl_p95_ms=round(max(1.0, rnd.gauss(28.0 if gpu else 70.0, 4.0)), 1),
                    predicted_ttft_p95_ms=predicted_ttft,
                    at=at,
                )
            )
        events.append(
            CostEvent(
                scope="plan",
                key=PLAN_ID,
                plan_id=PLAN_ID,
                output_tokens_per_s=round(plan_tokens, 1),
                total_tokens_per_s=round(plan_total, 1),
                usd_per_hour=plan_cost,
                usd_per_million_tokens=usd_per_million_tokens(plan_cost, plan_total),
                predicted_usd_per_million_tokens=0.26,
                at=at,
            )
        )
        return events

    def _jobs(self, at: datetime) -> list[FleetEvent]:
        """Benchmark jobs stepping through their load levels, a long quantize job counting
        layers, a rare lost node, one replan proposal."""
        events: list[FleetEvent] = []
        phase = self._ticks % 20  # a benchmark job every 20 ticks: start, 3 levels, done
        if phase == 1:
            node = self._random.randrange(self.nodes)
            self._bench_node = node
            if self._ticks > 20:
                previous = f"bench-{self._ticks // 20 - 1}"
                events.append(JobEvent(job_id=previous, kind="benchmark", state="succeeded", at=at))
        if phase in (1, 6, 11, 16):
            level = (phase - 1) // 5
            stage = (
                f"{level}/{BENCH_LEVELS} levels done"
                if level
                else f"warm-up, then {BENCH_LEVELS} load level(s)"
            )
            events.append(
                JobEvent(
                    job_id=f"bench-{self._ticks // 20}",
                    kind="benchmark",
                    node_id=self.node_id(self._bench_node),
                    instance_type=self.kind(self._bench_node)[0],
                    state="started",
                    progress=level / BENCH_LEVELS,
                    stage=stage,
                    at=at,
                )
            )
        # One layer every 4 ticks; the next quantize job starts when the last one is done.
        layer, run = (
            (self._ticks // 4) % (QUANTIZE_LAYERS + 1),
            self._ticks // (4 * (QUANTIZE_LAYERS + 1)),
        )
        if self._ticks % 4 == 0:
            job = f"quantize-{run}"
            quantize_node = self.node_id(run % self.nodes)
            if layer == QUANTIZE_LAYERS:
                events.append(
                    JobEvent(
                        job_id=job, kind="quantize", node_id=quantize_node, state="succeeded", at=at
                    )
                )
            else:
                events.append(
                    JobEvent(
                        job_id=job,
                        kind="quantize",
                        node_id=quantize_node,
                        instance_type=self.kind(run % self.nodes)[0],
                        state="started",
                        progress=layer / QUANTIZE_LAYERS,
                        stage=f"gptq layer {layer + 1}/{QUANTIZE_LAYERS}",
                        at=at,
                    )
                )
        if self._ticks % 150 == 0:
            node = self._random.randrange(self.nodes)
            events.append(
                NodeEvent(
                    node_id=self.node_id(node),
                    instance_type=self.kind(node)[0],
                    state="restarted",
                    detail="agent restarted after a missed heartbeat (simulated)",
                    at=at,
                )
            )
        if self._ticks == 100:
            events.append(
                PlanEvent(
                    plan_id=PLAN_ID,
                    state="replan_proposed",
                    reasons=(
                        "measured vLLM throughput is 8% under the prediction",
                        "awq-w4a16-g128 on g6.xlarge meets the SLOs for 6% less",
                    ),
                    at=at,
                )
            )
        return events


@dataclass
class SimulatedFleetSource:
    """Runs a :class:`SimulatedFleet` in a thread, publishing to an in-process event bus.

    Iterating :meth:`events` starts the publisher and reads the bus through
    :class:`PolledFleetSource`; closing the iterator stops the publisher.
    """

    fleet: SimulatedFleet
    period_s: float = 0.1
    description: str = "SIMULATED fleet (no cluster; numbers are random)"
    # Two seconds of a 1,000-node fleet at 10 updates/s: enough for a poll to catch up, and
    # bounded, since the bus keeps what it holds until newer events push it out.
    bus: EventBus = field(default_factory=lambda: EventBus(capacity=20_000))
    published: int = 0

    def _publish(self, events: Sequence[FleetEvent]) -> None:
        for event in events:
            self.bus.publish(event)
        self.published += len(events)

    def _run(self, stop: threading.Event) -> None:
        self._publish(self.fleet.opening(datetime.now(UTC)))
        next_at = time.monotonic()
        while not stop.is_set():
            next_at += self.period_s
            stop.wait(max(0.0, next_at - time.monotonic()))
            if not stop.is_set():
                self._publish(self.fleet.tick(datetime.now(UTC), self.period_s))

    async def events(self) -> AsyncIterator[Sequence[FleetEvent]]:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), daemon=True, name="sim-fleet")
        thread.start()
        reader = PolledFleetSource(self.bus, self.description, poll_timeout_s=0.2)
        try:
            async for batch in reader.events():
                yield batch
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 2.0)
