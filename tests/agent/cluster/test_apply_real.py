"""``apply`` end to end on a real multi-node Ray cluster: the README demo's plan, one vLLM and
one llama.cpp replica of the default model, started by node agents, benchmarked with the shared
protocol, costed, recorded in the catalog through the collector, compared with the prediction;
applied again (nothing changes) and destroyed (nothing keeps running)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from ray_fixtures import RayTestCluster

from quantplan.agent.cluster.apply import ApplyOptions, apply_plan
from quantplan.agent.cluster.collector_actor import CollectorClient, RayEventSource
from quantplan.agent.cluster.events import CostEvent, JobEvent, ReplicaEvent
from quantplan.agent.cluster.fleet_ops import destroy
from quantplan.catalog.db import open_catalog
from quantplan.catalog.snapshot import load_snapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.targets import load_targets

pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.integration,
    pytest.mark.engine,
    pytest.mark.toolchain,
    pytest.mark.slow,
]

DEMO_TARGETS = Path(__file__).parents[3] / "examples" / "cluster" / "local-demo-targets.yaml"
NAME = "demo-both-engines"


def _complete(base_url: str, model: str, body: dict[str, object]) -> str:
    response = httpx.post(
        f"{base_url}/v1/completions",
        json={"model": model, "prompt": "The capital of France is", "max_tokens": 4, **body},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["choices"][0]["text"]


async def _dashboard_shows(database_url: str, costs: dict[str, float | None]) -> None:
    """Open the dashboard on the fleet screen against the live cluster and read its tables."""
    from quantplan.tui.app import QuantplanApp
    from quantplan.tui.fleet.sources import RayFleetSource
    from quantplan.tui.services import CatalogService, DashboardServices
    from quantplan.tui.widgets.live_table import LiveTable

    services = DashboardServices(catalog=CatalogService(database_url), fleet=RayFleetSource("auto"))
    app = QuantplanApp(services, initial_mode="fleet")
    async with app.run_test(size=(120, 40)) as pilot:

        def replicas_costed() -> bool:
            state = getattr(app.screen, "state", None)
            if state is None:
                return False
            shown = {r.replica_id: r.usd_per_million_tokens for r in state.replicas.values()}
            return all(shown.get(key) is not None for key in costs)

        deadline = time.monotonic() + 60
        while not replicas_costed():
            assert time.monotonic() < deadline, "the fleet screen never showed the costs"
            await pilot.pause(0.2)
        state = app.screen.state  # type: ignore[attr-defined]
        for replica_id, usd in costs.items():
            assert state.replicas[replica_id].usd_per_million_tokens == pytest.approx(usd)
            assert state.replicas[replica_id].state == "healthy"
        await pilot.press("d")
        await pilot.pause(0.5)
        table = app.screen.query_one("#deployments", LiveTable)
        text = " ".join(
            table.get_cell(row, column) for row in table.row_keys for column, _, _ in table.columns
        )
        assert "vllm" in text and "llama.cpp" in text
        for usd in costs.values():
            assert f"{usd:,.3f}" in text


def test_apply_runs_one_vllm_and_one_llama_cpp_replica_and_closes_the_loop(
    ray_cluster: RayTestCluster,
) -> None:
    plan = make_plan(load_targets(DEMO_TARGETS), load_snapshot(open_catalog("sqlite://")))
    assert plan.feasible and {d.engine for d in plan.fleet} == {"vllm", "llama.cpp"}
    options = ApplyOptions(
        name=NAME,
        database_url=ray_cluster.database_url,
        bench_requests=4,
        max_bench_concurrency=2,
        max_bench_input_tokens=64,
        max_bench_output_tokens=16,
    )
    since = RayEventSource().events_since(0).next_seq
    try:
        stages: list[str] = []
        outcome = apply_plan(plan, options=options, on_progress=stages.append)
        assert outcome.status == "applied", outcome
        begun = [line.split(":")[0] for line in stages]
        assert begun[0] == "validating" and begun[-1] == "running"
        assert {"quantizing", "deploying", "benchmarking"} <= set(begun)
        assert sum("healthy at http" in line for line in stages) == 2
        assert len(outcome.endpoints) == 2

        # Both engines answer on their own node, as the plan said.
        by_engine = {m.engine: m for m in outcome.measurements}
        assert set(by_engine) == {"vllm", "llama.cpp"}
        assert len({m.node_id for m in outcome.measurements}) == 2
        for m in outcome.measurements:
            assert m.output_tokens_per_s > 0 and m.ttft_p95_ms is not None
            assert m.usd_per_million_tokens is not None and m.usd_per_million_tokens > 0
        from quantplan.agent.cluster import deployment_state as states

        state = states.load_state(NAME)
        assert state is not None
        for record in state.replicas.values():
            assert _complete(record.base_url, record.served_model, record.ignore_eos_body)

        # Cost per token per replica, per node and for the plan, and the loop's comparison.
        assert len(outcome.node_costs) == 2 and outcome.plan_cost is not None
        assert outcome.plan_cost.usd_per_hour == pytest.approx(
            sum(m.usd_per_hour for m in outcome.measurements)
        )
        assert {c.metric for c in outcome.comparisons} >= {"output_tokens_per_s"}
        assert all(c.predicted > 0 and c.measured > 0 for c in outcome.comparisons)
        # Each measurement is judged against the estimate for the point it was taken at.
        assert all(c.predicted_concurrency == c.measured_concurrency for c in outcome.comparisons)

        # The profiles reached the catalog through the collector, once per benchmark run.
        client = CollectorClient()
        deadline = time.monotonic() + 60
        while client.stats().pending and time.monotonic() < deadline:
            time.sleep(0.2)
        run_ids = {m.run_id for m in outcome.measurements}
        profiles = [
            p
            for p in load_snapshot(open_catalog(ray_cluster.database_url)).profiles
            if p.run_id in run_ids
        ]
        assert {p.engine for p in profiles} == {"vllm", "llama.cpp"}
        assert all(p.basis == "measured" for p in profiles)

        # The event stream the dashboard reads carried the replicas and their costs.
        events = RayEventSource().events_since(since, timeout_s=2).events
        healthy = {e.engine for e in events if isinstance(e, ReplicaEvent) and e.state == "healthy"}
        assert healthy == {"vllm", "llama.cpp"}
        costs = [e for e in events if isinstance(e, CostEvent) and e.plan_id == NAME]
        assert {e.scope for e in costs} == {"replica", "node", "plan"}
        # Replica costs carry measured p95 latency next to the plan's; benchmark jobs report
        # their load levels as progress.
        replica_costs = [e for e in costs if e.scope == "replica"]
        assert all(e.ttft_p95_ms is not None for e in replica_costs)
        assert all(e.predicted_ttft_p95_ms is not None for e in replica_costs)
        stepped = [
            e.progress
            for e in events
            if isinstance(e, JobEvent) and e.kind == "benchmark" and e.progress is not None
        ]
        assert stepped and max(stepped) == 1.0

        # The dashboard's fleet screen, connected to this cluster, shows the cost per token.
        costs_by_replica = {m.replica_id: m.usd_per_million_tokens for m in outcome.measurements}
        asyncio.run(_dashboard_shows(ray_cluster.database_url, costs_by_replica))

        # The same plan again changes nothing.
        started = time.monotonic()
        again = apply_plan(plan, options=options)
        assert again.status == "unchanged" and again.endpoints == outcome.endpoints
        assert time.monotonic() - started < 30
    finally:
        stopped = destroy(NAME)
    assert len(stopped) == 2
    for url in outcome.endpoints.values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/v1/models", timeout=5)


def test_auto_replan_applies_the_proposed_plan_and_reconciles(
    ray_cluster: RayTestCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``auto_replan`` a missed prediction re-applies the proposal: the new replica starts,
    the old one stops. Which plan the planner proposes is its own (tested in planner tests);
    here the proposal is fixed so the test knows what must run afterwards."""
    from plans import llama_cpp_plan

    from quantplan.agent.cluster import apply as apply_module
    from quantplan.agent.cluster import deployment_state as states
    from quantplan.agent.cluster.replan import ReplanProposal, propose_replan

    plan = llama_cpp_plan()  # gguf-f16 on llama.cpp, one replica on a c7i.xlarge worker
    proposed = plan.fleet[0].model_copy(update={"scheme": "gguf-q8_0"})
    better = plan.model_copy(update={"choice": proposed, "fleet": (proposed,)})
    missed_seen: list[list[object]] = []

    def propose(current, missed, database_url, name):  # type: ignore[no-untyped-def]
        missed_seen.append(list(missed))
        real, _ = propose_replan(current, missed, database_url, name)  # plans from the catalog
        if current.fleet[0].scheme == "gguf-q8_0":
            return real, None  # the re-applied plan proposes nothing further
        labels = [d.label for d in better.fleet]
        return ReplanProposal(reason=real.reason, current=real.current, proposed=labels), better

    monkeypatch.setattr(apply_module, "propose_replan", propose)
    options = ApplyOptions(
        name="auto-replan",
        database_url=ray_cluster.database_url,
        bench_requests=2,
        max_bench_concurrency=1,
        max_bench_input_tokens=32,
        max_bench_output_tokens=8,
        replan_threshold_pct=0.001,  # any difference from the prediction is a miss
        auto_replan=True,
    )
    try:
        outcome = apply_plan(plan, options=options)
        assert missed_seen and missed_seen[0], "the measurements missed no prediction"
        assert outcome.replan is not None and outcome.replan.applied
        state = states.load_state("auto-replan")
        assert state is not None
        assert [r.spec.scheme for r in state.replicas.values()] == ["gguf-q8_0"]
        (record,) = state.replicas.values()
        assert _complete(record.base_url, record.served_model, record.ignore_eos_body)
        # The first plan's replica was stopped: another id serves now.
        assert not set(outcome.endpoints) & set(state.replicas)
    finally:
        destroy("auto-replan")
