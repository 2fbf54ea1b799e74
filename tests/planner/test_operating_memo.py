"""Operating points selected once per SLO set (OperatingPointsMemo) give what selecting them
afresh for every evaluation gives: the same arrays, the same plans."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import PlanningContext, plan_from_context, prepare
from quantplan.planner.explain import relaxed_optima
from quantplan.planner.operating import OperatingPoints, restrict_points
from quantplan.planner.optimize import evaluate, points_memo
from quantplan.planner.targets import Slos, Targets, Workload


@functools.cache
def shipped_catalog() -> CatalogSnapshot:
    """The shipped catalog, built once (not the fixture: hypothesis would print it whole with
    a failing example)."""
    from quantplan.catalog.seeding import seed_records

    return CatalogSnapshot(**{kind: tuple(records) for kind, records in seed_records()})


def _same_points(a: OperatingPoints, b: OperatingPoints) -> None:
    for name in (f.name for f in dataclasses.fields(OperatingPoints)):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype, name
        assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), name


@pytest.fixture(scope="module")
def context(shipped: CatalogSnapshot) -> PlanningContext:
    return prepare(Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=4)), shipped)


@pytest.mark.parametrize(
    "slos",
    [Slos(), Slos(ttft_p95_ms=300, itl_p95_ms=40), Slos(ttft_p95_ms=1000, confidence=0.5)],
)
def test_a_narrower_search_is_the_wide_one_restricted(context: PlanningContext, slos: Slos) -> None:
    targets = context.targets.model_copy(update={"slos": slos})
    rng = np.random.default_rng(3)
    live = rng.random(context.space.compatible.shape) < 0.3
    memo = points_memo(context.space, context.perf)
    wide = memo.points(targets.workload, slos)
    searched = evaluate(targets, context.space, context.perf, live=live).points
    _same_points(restrict_points(wide, live), searched)
    _same_points(memo.points(targets.workload, slos, live), searched)
    _same_points(wide, evaluate(targets, context.space, context.perf).points)


def test_points_are_kept_per_slo_set_not_per_volume(context: PlanningContext) -> None:
    memo = points_memo(context.space, context.perf)
    slos = Slos(ttft_p95_ms=800)
    first = memo.points(Workload(requests_per_s=1), slos)
    assert memo.points(Workload(requests_per_s=30), slos) is first
    assert memo.points(Workload(requests_per_s=1), Slos(ttft_p95_ms=800, confidence=0.5)) is not (
        first
    )
    assert memo.points(Workload(requests_per_s=1, output_tokens=64), slos) is not first
    # A fleet-level target: replicas are counted against it, the points do not move.
    fleet_level = Slos(ttft_p95_ms=800, min_output_tokens_per_s=500)
    assert memo.points(Workload(requests_per_s=1), fleet_level) is first


def test_relaxations_with_the_memo_are_those_without(context: PlanningContext) -> None:
    targets = context.targets.model_copy(
        update={"slos": Slos(ttft_p95_ms=250, itl_p95_ms=30, min_output_tokens_per_s=2000)}
    )
    ev = evaluate(targets, context.space, context.perf)
    memo = points_memo(context.space, context.perf)
    reference = float(np.nanmin(np.where(ev.feasible, ev.usd_per_month, np.inf)))
    for limit in (reference, np.inf):
        plain = relaxed_optima(ev, context.space, context.perf, limit)
        memoized = relaxed_optima(ev, context.space, context.perf, limit, memo)
        assert [(n, best) for n, _, best in plain] == [(n, best) for n, _, best in memoized]
        for (_, a, _), (_, b, _) in zip(plain, memoized, strict=True):
            _same_points(a.points, b.points)
            assert np.array_equal(a.usd_per_month, b.usd_per_month, equal_nan=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["Llama-3.2-1B", "Llama-3.1-8B", "Qwen2.5-14B"]),
    rate=st.floats(0.05, 120),
    slos=st.sampled_from(
        [
            {},
            {"ttft_p95_ms": 150.0},
            {"ttft_p95_ms": 600.0, "itl_p95_ms": 25.0},
            {"itl_p95_ms": 80.0, "confidence": 0.5},
            {"mode": "batch"},
        ]
    ),
    constraints=st.sampled_from(
        [
            {},
            {"device": "cpu"},
            {"device": "gpu", "spot_allowed": True},
            {"allow_mixed_fleet": True},
            {"max_replicas": 2},
        ]
    ),
    budget=st.sampled_from([{}, {"max_usd_per_month": 400.0}, {"max_usd_per_month": 5000.0}]),
)
def test_plans_made_with_the_memo_are_those_made_without(
    model: str, rate: float, slos: dict, constraints: dict, budget: dict
) -> None:
    targets = Targets.model_validate(
        {
            "model": model,
            "workload": {"requests_per_s": rate},
            "slos": slos,
            "constraints": constraints,
            "budget": budget,
        }
    )
    context = prepare(targets, shipped_catalog())
    without = dataclasses.replace(
        context,
        memo=None,
        evaluation=evaluate(context.targets, context.space, context.perf),
    )
    assert (
        plan_from_context(context).model_dump_json() == plan_from_context(without).model_dump_json()
    )
