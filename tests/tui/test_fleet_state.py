"""The fleet view-model: folding the cluster's events, change tracking, bounded memory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from quantplan.agent.cluster.events import CostEvent, JobEvent, NodeEvent
from quantplan.tui.fleet.sample import START
from quantplan.tui.fleet.sample import sample_history as recorded_fleet
from quantplan.tui.fleet.simulated import SimulatedFleet
from quantplan.tui.viewmodels.fleet_state import FleetState


def test_recorded_history_folds_into_rows() -> None:
    state = FleetState()
    state.apply_all(recorded_fleet())
    assert set(state.nodes) == {"node-0", "node-1", "node-2"}
    assert state.nodes["node-2"].state == "lost"
    assert state.nodes["node-0"].hardware == "L4"
    assert state.nodes["node-2"].hardware == "Intel Xeon"
    # quantize-1 finished on node-0; bench-1 still runs on node-1
    assert state.nodes["node-0"].running_jobs == 0
    assert state.nodes["node-1"].running_jobs == 1
    assert [job.job_id for job in state.job_rows()] == ["bench-1", "quantize-1"]
    (row,) = state.deployment_rows()
    assert row.deployment == "gptq-w4a16-g128 vllm g6.xlarge"
    assert (row.replicas_healthy, row.replicas_total) == (2, 2)
    assert row.output_tokens_per_s == 800.0
    assert row.usd_per_hour == pytest.approx(1.61)
    # 1.61 $/h over 2,400 tok/s, the agent's own formula
    assert row.usd_per_million_tokens == pytest.approx(1.61 / (2400 * 3600) * 1e6)
    assert row.predicted_usd_per_million_tokens == 0.170
    summary = state.summary()
    assert summary.nodes_by_state == {"joined": 2, "lost": 1}
    assert summary.usd_per_million_tokens == 0.186
    assert [p.plan_id for p in state.replan_proposals()] == ["plan-a"]


def test_changes_are_reported_once_and_new_nodes_are_not_also_changed() -> None:
    state = FleetState()
    state.apply_all(recorded_fleet())
    first = state.take_node_changes()
    assert first.added == ["node-0", "node-1", "node-2"]
    assert first.changed == []  # updates to a node not shown yet are part of its first row
    assert not state.has_node_changes
    state.apply(
        CostEvent(
            scope="node",
            key="node-1",
            plan_id="plan-a",
            output_tokens_per_s=10,
            total_tokens_per_s=30,
            usd_per_hour=0.805,
            at=START,
        )
    )
    assert state.take_node_changes().changed == ["node-1"]
    assert state.nodes["node-1"].output_tokens_per_s == 10


def test_a_retried_job_moves_between_nodes() -> None:
    state = FleetState()
    state.apply_all(recorded_fleet())
    moved = JobEvent(
        job_id="bench-1", kind="benchmark", node_id="node-0", state="retrying", attempt=2, at=START
    )
    state.apply(moved)
    assert (state.nodes["node-0"].running_jobs, state.nodes["node-1"].running_jobs) == (1, 0)
    assert "retrying" in state.log[-1].message


def test_memory_stays_bounded_under_a_long_stream() -> None:
    state = FleetState(event_log_limit=50, finished_job_limit=10)
    for index in range(500):
        at = START + timedelta(seconds=index)
        job = f"job-{index}"
        state.apply(JobEvent(job_id=job, kind="benchmark", state="started", at=at))
        state.apply(JobEvent(job_id=job, kind="benchmark", state="failed", detail="x", at=at))
        state.apply(NodeEvent(node_id="n", instance_type="g6.xlarge", state="restarted", at=at))
    assert len(state.jobs) == 10
    assert len(state.log) == 50
    assert state.log_total == 1000  # 500 failures + 500 restarts
    assert len(state.new_log_lines(state.log_total - 3)) == 3
    assert len(state.new_log_lines(0)) == 50  # older lines were dropped, not kept


def test_simulated_fleet_publishes_the_configured_rate() -> None:
    fleet = SimulatedFleet(nodes=100, updates_per_node_per_s=10, seed=1)
    state = FleetState()
    state.apply_all(fleet.opening(START))
    assert len(state.nodes) == 100
    events = fleet.tick(START, 0.1)
    node_updates = [e for e in events if isinstance(e, CostEvent) and e.scope == "node"]
    assert len(node_updates) == 100  # 100 nodes x 10/s x 0.1 s
    state.apply_all(events)
    assert all(n.output_tokens_per_s is not None for n in state.nodes.values())
    again = SimulatedFleet(nodes=100, updates_per_node_per_s=10, seed=1)
    again.opening(START)
    assert again.tick(START, 0.1) == events  # seeded: the same run twice
