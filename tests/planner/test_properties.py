"""Property tests: monotonicity of the optimum, and agreement with exhaustive search."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan, prepare
from quantplan.planner.optimize import cheapest
from quantplan.planner.oracle import brute_force_cost
from quantplan.planner.synthetic import synthetic_snapshot
from quantplan.planner.targets import Budget, Constraints, QualityTarget, Slos, Targets, Workload

SNAPSHOTS = {
    seed: synthetic_snapshot(seed, instances=25, schemes=10, models=2) for seed in range(4)
}


@st.composite
def targets_for(draw: st.DrawFn, snapshot: CatalogSnapshot) -> Targets:
    model = draw(st.sampled_from([m.name for m in snapshot.models]))
    return Targets(
        model=model,
        workload=Workload(
            requests_per_s=draw(st.floats(0.01, 50)),
            input_tokens=draw(st.sampled_from([128, 512, 2048])),
            output_tokens=draw(st.sampled_from([64, 256])),
            peak_to_mean=draw(st.floats(1, 3)),
        ),
        slos=Slos(
            ttft_p95_ms=draw(st.none() | st.floats(100, 20000)),
            itl_p95_ms=draw(st.none() | st.floats(10, 500)),
        ),
        quality=QualityTarget(max_perplexity_increase_pct=draw(st.none() | st.floats(0.1, 30))),
        budget=Budget(max_usd_per_month=draw(st.none() | st.floats(50, 200000))),
        constraints=Constraints(
            spot_allowed=draw(st.booleans()),
            device=draw(st.sampled_from(["any", "gpu", "cpu"])),
            max_replicas=draw(st.integers(1, 32)),
        ),
    )


def _cost(targets: Targets, snapshot: CatalogSnapshot) -> float | None:
    plan = make_plan(targets, snapshot)
    return plan.fleet_usd_per_month if plan.feasible else None


scenario = st.sampled_from(sorted(SNAPSHOTS)).flatmap(
    lambda seed: st.tuples(st.just(seed), targets_for(SNAPSHOTS[seed]))
)
common = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(scenario, st.floats(1.01, 10))
def test_a_larger_budget_never_gives_a_worse_plan(case: tuple[int, Targets], factor: float) -> None:
    seed, targets = case
    snapshot = SNAPSHOTS[seed]
    budget = targets.budget.max_usd_per_month or 1000.0
    tight = targets.model_copy(update={"budget": Budget(max_usd_per_month=budget)})
    loose = targets.model_copy(update={"budget": Budget(max_usd_per_month=budget * factor)})
    tight_cost, loose_cost = _cost(tight, snapshot), _cost(loose, snapshot)
    if tight_cost is not None:
        assert loose_cost is not None and loose_cost <= tight_cost * (1 + 1e-9)


@common
@given(scenario, st.floats(1.01, 10), st.sampled_from(["ttft_p95_ms", "itl_p95_ms"]))
def test_a_looser_slo_never_costs_more(case: tuple[int, Targets], factor: float, slo: str) -> None:
    seed, targets = case
    snapshot = SNAPSHOTS[seed]
    value = getattr(targets.slos, slo) or 500.0
    tight = targets.model_copy(update={"slos": targets.slos.model_copy(update={slo: value})})
    loose = targets.model_copy(
        update={"slos": targets.slos.model_copy(update={slo: value * factor})}
    )
    tight_cost, loose_cost = _cost(tight, snapshot), _cost(loose, snapshot)
    if tight_cost is not None:
        assert loose_cost is not None and loose_cost <= tight_cost * (1 + 1e-9)


@common
@given(scenario)
def test_optimum_equals_exhaustive_search(case: tuple[int, Targets]) -> None:
    seed, targets = case
    snapshot = SNAPSHOTS[seed]
    expected = brute_force_cost(targets, snapshot)
    context = prepare(targets, snapshot)
    best = cheapest(context.evaluation)
    if expected is None:
        assert best is None
    else:
        assert best is not None
        assert float(context.evaluation.usd_per_month[best]) == pytest.approx(expected, rel=1e-9)


@common
@given(scenario)
def test_every_offered_deployment_meets_the_targets(case: tuple[int, Targets]) -> None:
    seed, targets = case
    plan = make_plan(targets, SNAPSHOTS[seed])
    assert plan.feasible == bool(plan.fleet)
    for d in (*plan.fleet, *plan.alternatives, *plan.pareto_front):
        if targets.slos.ttft_p95_ms is not None:
            assert d.metrics.ttft_p95_ms.value <= targets.slos.ttft_p95_ms * (1 + 1e-6)
        if targets.slos.itl_p95_ms is not None:
            assert d.metrics.itl_p95_ms.value <= targets.slos.itl_p95_ms * (1 + 1e-6)
        assert d.replicas <= targets.constraints.max_replicas
        if targets.budget.max_usd_per_month is not None:
            assert d.usd_per_month <= targets.budget.max_usd_per_month * (1 + 1e-6)
        if targets.constraints.device != "any":
            assert (d.accelerator_count > 0) == (targets.constraints.device == "gpu")
