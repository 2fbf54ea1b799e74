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


def test_progress_updates_a_running_job_in_place() -> None:
    state = FleetState()
    state.apply_all(recorded_fleet())
    bench = state.jobs["bench-1"]
    assert (bench.progress, bench.stage) == (pytest.approx(2 / 3), "2/3 levels done, 8 in flight")
    # A later step of the same job: same row, same place in the table, no double count.
    state.jobs_dirty = False
    state.apply(
        JobEvent(
            job_id="bench-1",
            kind="benchmark",
            node_id="node-1",
            state="started",
            progress=1.0,
            stage="recording the profile",
            at=START + timedelta(seconds=300),
        )
    )
    assert state.jobs_dirty and state.jobs["bench-1"] is bench and bench.progress == 1.0
    assert bench.started_at == START + timedelta(seconds=50)
    assert state.nodes["node-1"].running_jobs == 1
    # Finishing without a fraction keeps the last one reported, and frees the node.
    state.apply(
        JobEvent(job_id="bench-1", kind="benchmark", node_id="node-1", state="failed", at=START)
    )
    assert state.jobs["bench-1"].progress == 1.0 and state.jobs["bench-1"].state == "failed"
    assert state.nodes["node-1"].running_jobs == 0


def test_deployments_show_the_worst_replica_p95_next_to_the_plan() -> None:
    state = FleetState()
    state.apply_all(recorded_fleet())
    (row,) = state.deployment_rows()
    assert (row.ttft_p95_ms, row.predicted_ttft_p95_ms) == (247.0, 230.0)
    assert state.replicas["r-0"].itl_p95_ms == 31.0


def test_simulated_jobs_report_their_steps() -> None:
    fleet = SimulatedFleet(nodes=10, seed=2)
    state = FleetState()
    state.apply_all(fleet.opening(START))
    for _ in range(30):
        state.apply_all(fleet.tick(START, 0.1))
    fractions = {job.job_id: job.progress for job in state.jobs.values()}
    assert fractions["bench-1"] == pytest.approx(1 / 3)  # started at tick 21, a level at 26
    assert fractions["quantize-0"] == pytest.approx(7 / 30)  # a layer every 4 ticks
    assert state.jobs["bench-0"].state == "succeeded"
    assert all(r.ttft_p95_ms is not None for r in state.replicas.values())


def test_a_retry_on_the_same_node_is_logged() -> None:
    state = FleetState()
    state.apply_all(recorded_fleet())
    state.apply(
        JobEvent(job_id="bench-1", kind="benchmark", node_id="node-1", state="retrying", at=START)
    )
    assert state.jobs["bench-1"].state == "retrying"
    assert "bench-1 retrying on node-1" in state.log[-1].message


def test_the_summary_says_when_its_cost_comes_from_live_traffic() -> None:
    from quantplan.tui.screens.fleet import summary_line

    state = FleetState()
    state.apply_all(recorded_fleet())
    assert not state.summary().live  # apply's benchmark priced the plan
    state.apply_all(
        [
            CostEvent(
                scope="plan",
                key="plan-a",
                plan_id="plan-a",
                measured_by="traffic",
                window_s=10.0,
                requests=42,
                output_tokens_per_s=120.0,
                total_tokens_per_s=300.0,
                usd_per_hour=1.61,
                usd_per_million_tokens=1.61 / (300 * 3600) * 1e6,
            )
        ]
    )
    summary = state.summary()
    assert summary.live and summary.output_tokens_per_s == 120.0
    line = summary_line("cluster", summary)
    assert "120 out tok/s" in line and "(live traffic)" in line


def test_a_line_metered_by_the_endpoint_shows_its_live_traffic_in_place_of_the_benchmark() -> None:
    from quantplan.tui.screens.fleet import LIVE_MARK, deployment_cells

    state = FleetState()
    state.apply_all(recorded_fleet())
    (benchmarked,) = state.deployment_rows()
    assert not benchmarked.live

    def line(deployment: str, tokens: float, usd_per_hour: float) -> CostEvent:
        return CostEvent(
            scope="line",
            key=f"plan-a|{deployment}",
            plan_id="plan-a",
            deployment=deployment,
            measured_by="traffic",
            output_tokens_per_s=tokens,
            total_tokens_per_s=2 * tokens,
            usd_per_hour=usd_per_hour,
            usd_per_million_tokens=usd_per_hour / (2 * tokens * 3600) * 1e6,
            predicted_usd_per_million_tokens=0.25,
            ttft_p95_ms=180.0,
        )

    state.apply_all(
        [line(benchmarked.deployment, 50.0, 1.61), line("bf16 vllm g6.xlarge", 5.0, 0.8)]
    )
    rows = {row.deployment: row for row in state.deployment_rows()}
    assert len(rows) == 2 and state.plans.keys() == {"plan-a"}  # lines are not plans
    metered = rows[benchmarked.deployment]
    assert metered.live and metered.output_tokens_per_s == 50.0 and metered.usd_per_hour == 1.61
    assert (metered.ttft_p95_ms, metered.predicted_usd_per_million_tokens) == (180.0, 0.25)
    assert metered.replicas_total == benchmarked.replicas_total  # replicas still counted
    # A line the dashboard knows only from the endpoint (no replica events) still gets a row.
    other = deployment_cells(rows["bf16 vllm g6.xlarge"])
    assert other[2] == "-" and other[3] == (f"{LIVE_MARK}5", "green")
