"""The event model and bus: strict JSON, ordered delivery, epochs, and the fleet view fold."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from quantplan.agent.cluster.events import (
    CostEvent,
    EventBus,
    HardwareFacts,
    JobEvent,
    NodeEvent,
    ReplicaEvent,
    parse_event,
    subscribe,
)
from quantplan.agent.cluster.fleet_view import FleetView, apply_event


def node_event(node_id: str = "n1", state: str = "joined") -> NodeEvent:
    facts = HardwareFacts(
        node_id=node_id,
        node_ip="127.0.0.1",
        hostname="h",
        instance_type="c7i.xlarge",
        logical_cpus=4,
        memory_gb=8,
    )
    return NodeEvent(node_id=node_id, instance_type="c7i.xlarge", state=state, facts=facts)


def test_events_round_trip_as_strict_json() -> None:
    event = node_event()
    assert parse_event(event.model_dump_json()) == event
    with pytest.raises(ValidationError):
        parse_event({"type": "node", "node_id": "n", "instance_type": "x", "state": "gone"})
    with pytest.raises(ValidationError):
        parse_event({**event.model_dump(mode="json"), "payload": "__import__('os')"})
    with pytest.raises(ValidationError):
        parse_event({"type": "shell", "command": "rm -rf /"})


def test_bus_numbers_events_and_serves_them_in_order() -> None:
    bus = EventBus(capacity=5)
    for i in range(8):
        bus.publish(JobEvent(job_id=f"j{i}", kind="probe", state="started"))
    batch = bus.events_since(0)
    assert [e.seq for e in batch.events] == [3, 4, 5, 6, 7]
    assert batch.dropped == 3 and batch.next_seq == 8
    assert bus.events_since(8).events == ()
    assert [e.seq for e in bus.events_since(6, limit=1).events] == [6]


def test_long_poll_wakes_on_publish_and_subscribe_follows_a_new_epoch() -> None:
    bus = EventBus()
    stop = threading.Event()
    received: list[str] = []

    def consume() -> None:
        for event in subscribe(bus, poll_timeout_s=0.2, stop=stop):
            received.append(event.job_id)  # type: ignore[union-attr]

    thread = threading.Thread(target=consume)
    thread.start()
    bus.publish(JobEvent(job_id="a", kind="probe", state="started"))
    bus.publish(JobEvent(job_id="b", kind="probe", state="succeeded"))
    threading.Event().wait(0.5)
    stop.set()
    thread.join(5)
    assert received == ["a", "b"]

    class Restarting:
        """A source whose collector restarts between two polls."""

        def __init__(self) -> None:
            self.buses = [EventBus(), EventBus()]
            self.buses[0].publish(JobEvent(job_id="old", kind="probe", state="started"))
            self.buses[1].publish(JobEvent(job_id="new", kind="probe", state="started"))
            self.calls = 0

        def events_since(self, since: int, *, timeout_s: float = 0.0, limit: int = 500):
            self.calls += 1
            return self.buses[0 if self.calls == 1 else 1].events_since(since, limit=limit)

    seen = []
    for event in subscribe(Restarting(), poll_timeout_s=0):
        seen.append(event.job_id)  # type: ignore[union-attr]
        if len(seen) == 2:
            break
    assert seen == ["old", "new"]


def test_fleet_view_folds_nodes_jobs_replicas_and_costs() -> None:
    view = FleetView()
    view = apply_event(view, node_event("n1"))
    view = apply_event(view, JobEvent(job_id="q1", kind="quantize", node_id="n1", state="started"))
    assert view.nodes["n1"].running_jobs == ("q1",)
    replica = ReplicaEvent(
        plan_id="p",
        replica_id="r1",
        engine="llama.cpp",
        scheme="gguf-q8_0",
        node_id="n1",
        instance_type="c7i.xlarge",
        endpoint="http://127.0.0.1:9000",
        state="healthy",
    )
    view = apply_event(view, replica)
    cost = CostEvent(
        scope="replica",
        key="r1",
        plan_id="p",
        output_tokens_per_s=50,
        total_tokens_per_s=150,
        usd_per_hour=0.17,
        usd_per_million_tokens=0.31,
    )
    view = apply_event(view, cost)
    assert view.replicas["r1"].usd_per_million_tokens == 0.31
    view = apply_event(view, node_event("n1", "lost"))
    assert view.nodes["n1"].state == "lost" and view.nodes["n1"].running_jobs == ()
    assert view.nodes["n1"].facts is not None


def test_progress_and_latency_fields_are_optional_and_checked() -> None:
    # Events from publishers that predate the fields stay valid and read as "not reported".
    job = parse_event({"type": "job", "job_id": "j", "kind": "quantize", "state": "started"})
    assert isinstance(job, JobEvent) and job.progress is None and job.stage == ""
    cost = parse_event(
        {
            "type": "cost",
            "scope": "replica",
            "key": "r",
            "plan_id": "p",
            "output_tokens_per_s": 1,
            "total_tokens_per_s": 3,
            "usd_per_hour": 1,
        }
    )
    assert isinstance(cost, CostEvent) and cost.ttft_p95_ms is None
    stepped = JobEvent(job_id="j", kind="benchmark", state="started", progress=0.5, stage="1/2")
    assert parse_event(stepped.model_dump_json()) == stepped
    with pytest.raises(ValidationError):
        JobEvent(job_id="j", kind="benchmark", state="started", progress=1.5)
    with pytest.raises(ValidationError):
        CostEvent(
            scope="replica",
            key="r",
            plan_id="p",
            output_tokens_per_s=1,
            total_tokens_per_s=3,
            usd_per_hour=1,
            ttft_p95_ms=-1,
        )
