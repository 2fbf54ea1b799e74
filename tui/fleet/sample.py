"""A short recorded fleet history: three nodes, a plan with two replicas, jobs, costs, a replan.

Used by tests and the README's screenshots;
a ReplayFleetSource plays it back. The numbers are illustrative, fixed and labelled as a sample.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quantplan.agent.cluster.events import (
    CostEvent,
    FleetEvent,
    HardwareFacts,
    JobEvent,
    NodeEvent,
    PlanEvent,
    ReplicaEvent,
    ReportEvent,
)

START = datetime(2026, 11, 28, 6, 0, 0, tzinfo=UTC)


def sample_history() -> list[FleetEvent]:
    """A small, fixed event history: 3 nodes, a plan with 2 replicas, jobs, costs, a replan."""
    at = START
    events: list[FleetEvent] = []
    kinds = [("g6.xlarge", ("L4",)), ("g6.xlarge", ("L4",)), ("c7i.8xlarge", ())]
    for index, (instance, gpus) in enumerate(kinds):
        node = f"node-{index}"
        facts = HardwareFacts(
            node_id=node,
            node_ip=f"10.0.0.{index + 1}",
            hostname=f"host-{index}",
            instance_type=instance,
            logical_cpus=4,
            memory_gb=16,
            cpu_model="Intel Xeon",
            gpus=gpus,
        )
        events.append(
            NodeEvent(node_id=node, instance_type=instance, state="joined", facts=facts, at=at)
        )
    events += [
        PlanEvent(plan_id="plan-a", state="deploying", at=at + timedelta(seconds=1)),
        JobEvent(
            job_id="quantize-1",
            kind="quantize",
            node_id="node-0",
            instance_type="g6.xlarge",
            state="started",
            at=at + timedelta(seconds=2),
        ),
        JobEvent(
            job_id="quantize-1",
            kind="quantize",
            node_id="node-0",
            state="succeeded",
            at=at + timedelta(seconds=40),
        ),
        JobEvent(
            job_id="bench-1",
            kind="benchmark",
            node_id="node-1",
            state="started",
            at=at + timedelta(seconds=50),
        ),
        JobEvent(
            job_id="bench-1",
            kind="benchmark",
            node_id="node-1",
            state="started",
            progress=2 / 3,
            stage="2/3 levels done, 8 in flight",
            at=at + timedelta(seconds=58),
        ),
    ]
    for replica, node, ttft in (("r-0", "node-0", 212.0), ("r-1", "node-1", 247.0)):
        events.append(
            ReplicaEvent(
                plan_id="plan-a",
                replica_id=replica,
                engine="vllm",
                scheme="gptq-w4a16-g128",
                node_id=node,
                instance_type="g6.xlarge",
                state="healthy",
                at=at + timedelta(seconds=45),
            )
        )
        events.append(
            CostEvent(
                scope="replica",
                key=replica,
                plan_id="plan-a",
                output_tokens_per_s=400.0,
                total_tokens_per_s=1200.0,
                usd_per_hour=0.805,
                usd_per_million_tokens=0.186,
                ttft_p95_ms=ttft,
                itl_p95_ms=31.0,
                predicted_ttft_p95_ms=230.0,
                at=at + timedelta(seconds=60),
            )
        )
        events.append(
            CostEvent(
                scope="node",
                key=node,
                plan_id="plan-a",
                output_tokens_per_s=400.0,
                total_tokens_per_s=1200.0,
                usd_per_hour=0.805,
                usd_per_million_tokens=0.186,
                at=at + timedelta(seconds=60),
            )
        )
    events += [
        CostEvent(
            scope="plan",
            key="plan-a",
            plan_id="plan-a",
            output_tokens_per_s=800.0,
            total_tokens_per_s=2400.0,
            usd_per_hour=1.61,
            usd_per_million_tokens=0.186,
            predicted_usd_per_million_tokens=0.170,
            at=at + timedelta(seconds=60),
        ),
        ReportEvent(
            run_id="run-1",
            kind="profile",
            status="succeeded",
            outcome="recorded",
            at=at + timedelta(seconds=61),
        ),
        NodeEvent(
            node_id="node-2",
            instance_type="c7i.8xlarge",
            state="lost",
            detail="heartbeat missed",
            at=at + timedelta(seconds=70),
        ),
        PlanEvent(
            plan_id="plan-a",
            state="replan_proposed",
            reasons=("measured $/M tokens 9% over the prediction",),
            at=at + timedelta(seconds=80),
        ),
    ]
    return events
