"""The issue's four scenarios on the shipped catalog: checked by properties, not fixed answers."""

from __future__ import annotations

import json

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.plan import Deployment, Plan
from quantplan.planner.targets import (
    Budget,
    Constraints,
    QualityTarget,
    Slos,
    Targets,
    Workload,
)


def _meets(d: Deployment, t: Targets) -> None:
    m = d.metrics
    if t.slos.ttft_p95_ms is not None:
        assert m.ttft_p95_ms.value <= t.slos.ttft_p95_ms
    if t.slos.itl_p95_ms is not None:
        assert m.itl_p95_ms.value <= t.slos.itl_p95_ms
    if t.quality.max_perplexity_increase_pct is not None:
        assert m.perplexity_increase_pct is not None
        assert m.perplexity_increase_pct.value <= t.quality.max_perplexity_increase_pct
    assert m.memory_gb <= m.memory_capacity_gb


def _fleet_cost(plan: Plan) -> float:
    return sum(d.usd_per_month for d in plan.fleet)


def test_high_volume_chat_lands_on_gpus_inside_the_slos(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=50, input_tokens=1000, output_tokens=300),
        slos=Slos(ttft_p95_ms=800, itl_p95_ms=60),
        quality=QualityTarget(max_perplexity_increase_pct=5),
    )
    plan = make_plan(targets, shipped)
    assert plan.feasible and plan.choice is not None
    assert all(d.accelerator_count > 0 for d in plan.fleet)
    for d in (*plan.fleet, *plan.alternatives, *plan.pareto_front):
        _meets(d, targets)
    capacity = sum(d.capacity_requests_per_s for d in plan.fleet)
    assert capacity >= targets.workload.peak_requests_per_s
    cpu = make_plan(targets.model_copy(update={"constraints": Constraints(device="cpu")}), shipped)
    assert not cpu.feasible or _fleet_cost(cpu) > _fleet_cost(plan)
    assert plan.rejected, "every other family gets a reason"


def test_low_volume_cpu_only_is_small_and_explained(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.2-1B",
        workload=Workload(tokens_per_day=1e6, input_tokens=300, output_tokens=150),
        slos=Slos(ttft_p95_ms=5000),
        constraints=Constraints(device="cpu"),
    )
    plan = make_plan(targets, shipped)
    assert plan.feasible and plan.choice is not None
    assert all(d.accelerator_count == 0 for d in plan.fleet)
    assert plan.choice.replicas <= 2
    _meets(plan.choice, targets)
    gpu = make_plan(targets.model_copy(update={"constraints": Constraints(device="gpu")}), shipped)
    anywhere = make_plan(targets.model_copy(update={"constraints": Constraints()}), shipped)
    assert _fleet_cost(anywhere) == min(_fleet_cost(plan), _fleet_cost(gpu))
    if _fleet_cost(gpu) < _fleet_cost(plan):
        assert any(b.constraint == "constraints.device" for b in plan.binding_constraints)


def test_edge_volume_with_a_relaxed_latency_target_prefers_a_cpu(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.2-1B",
        workload=Workload(tokens_per_day=2e5, input_tokens=300, output_tokens=150),
        slos=Slos(ttft_p95_ms=15000),
    )
    plan = make_plan(targets, shipped)
    assert plan.feasible and plan.choice is not None and plan.choice.accelerator_count == 0
    assert plan.choice.replicas <= 2


def test_accuracy_critical_only_keeps_near_lossless_schemes(shipped: CatalogSnapshot) -> None:
    loose = Targets(
        model="Llama-2-7B",
        workload=Workload(requests_per_s=5),
        slos=Slos(ttft_p95_ms=1000),
    )
    strict = loose.model_copy(update={"quality": QualityTarget(max_perplexity_increase_pct=0.5)})
    plan, baseline = make_plan(strict, shipped), make_plan(loose, shipped)
    assert plan.feasible
    for d in (*plan.fleet, *plan.alternatives, *plan.pareto_front):
        _meets(d, strict)
    assert _fleet_cost(plan) >= _fleet_cost(baseline)
    # Published W4 GPTQ/AWQ results for this model exceed 0.5 %: nothing of theirs is offered.
    offered = {d.scheme for d in (*plan.fleet, *plan.alternatives)}
    assert not offered & {"gptq-w4a16-g128", "awq-w4a16-g128"}


def test_budget_too_small_is_infeasible_with_why_and_nearest_plans(
    shipped: CatalogSnapshot,
) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=20),
        slos=Slos(ttft_p95_ms=1000),
        quality=QualityTarget(max_perplexity_increase_pct=1),
        budget=Budget(max_usd_per_month=300),
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible and plan.choice is None and plan.fleet == ()
    assert "No deployment" in plan.summary
    binding = {b.constraint for b in plan.binding_constraints}
    assert "budget.max_usd_per_month" in binding
    assert plan.relaxations
    nearest = plan.relaxations[0]
    assert nearest.deployment.usd_per_month > 300
    # 8-bit GPTQ/AWQ have no Llama figure to borrow (only a prior, which the default evidence
    # policy does not accept), so those families fail quality before the budget; GGUF on
    # llama.cpp fails the 1 s TTFT at the pessimistic edge of its 90 % band.
    stages = {r.stage for r in plan.rejected}
    assert "budget" in stages and stages <= {"budget", "quality", "slo"}
    document = json.loads(plan.model_dump_json())
    assert document["feasible"] is False and document["binding_constraints"]
