"""Infeasible targets never raise: they say what binds and what relaxing it would give."""

from __future__ import annotations

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.errors import QuantplanError, UnknownNameError
from quantplan.planner.decide import make_plan
from quantplan.planner.targets import (
    Budget,
    Constraints,
    ModelShape,
    QualityTarget,
    Slos,
    Targets,
    Workload,
)


def test_impossible_latency_names_the_slo_and_the_best_achievable(
    shipped: CatalogSnapshot,
) -> None:
    targets = Targets(
        model="Llama-3.1-70B", workload=Workload(requests_per_s=1), slos=Slos(ttft_p95_ms=1)
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible
    assert all(r.stage == "slo" and "TTFT" in r.reason for r in plan.rejected)
    relaxed = {r.constraint: r for r in plan.relaxations}
    assert "slos.ttft_p95_ms" in relaxed
    assert relaxed["slos.ttft_p95_ms"].deployment.metrics.ttft_p95_ms.value > 1


def test_replica_cap_binds_and_relaxing_it_gives_the_count(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=500),
        slos=Slos(ttft_p95_ms=1000),
        constraints=Constraints(max_replicas=1),
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible
    relaxed = {r.constraint: r for r in plan.relaxations}
    assert int(relaxed["constraints.max_replicas"].needed) > 1


def test_unreachable_quality_is_the_reason(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=1),
        quality=QualityTarget(max_perplexity_increase_pct=0.0001, max_kl_divergence=0.00001),
        constraints=Constraints(families=("gptq", "awq")),
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible
    stages = {r.family: r.stage for r in plan.rejected}
    assert stages == {
        "awq": "quality",
        "gptq": "quality",
        "baseline": "constraints",
        "gguf": "constraints",
        "fp8": "constraints",
        "int8": "constraints",
    }
    assert all("allowed" in r.reason for r in plan.rejected if r.stage == "quality")
    assert plan.binding_constraints


def test_no_instance_left_after_filters(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=1),
        constraints=Constraints(clouds=("oracle",)),
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible
    assert all(r.stage == "constraints" and "constraints.clouds" in r.reason for r in plan.rejected)
    assert any(b.constraint == "constraints.clouds" for b in plan.binding_constraints)


def test_unknown_model_suggests_near_misses(shipped: CatalogSnapshot) -> None:
    targets = Targets(model="Llama-3.1-8Bx", workload=Workload(requests_per_s=1))
    with pytest.raises(UnknownNameError) as caught:
        make_plan(targets, shipped)
    assert "Llama-3.1-8B" in str(caught.value.hint)


def test_names_in_another_case_are_the_catalogs_names(shipped: CatalogSnapshot) -> None:
    targets = Targets.model_validate(
        {
            "model": "llama-3.1-8b",
            "workload": {"requests_per_s": 1},
            "constraints": {"accelerator_allow": ["l4"], "engines": ["VLLM"]},
        }
    )
    plan = make_plan(targets, shipped)
    assert plan.model == "Llama-3.1-8B" and plan.feasible
    assert plan.choice is not None and plan.choice.hardware == "L4"
    assert plan.targets.constraints.engines == ("vllm",)


def test_inline_shape_plans_an_unknown_model(shipped: CatalogSnapshot) -> None:
    shape = ModelShape(
        name="in-house-3b", family="llama", parameters_b=3.2, layers=28, hidden_size=3072,
        heads=24, kv_heads=8, head_dim=128, vocab_size=128256, max_context=8192,
    )  # fmt: skip
    plan = make_plan(Targets(model=shape, workload=Workload(requests_per_s=2)), shipped)
    assert plan.feasible and plan.model == "in-house-3b"
    assert plan.choice and plan.choice.metrics.perplexity_increase_pct is not None


def test_requests_longer_than_the_context_are_a_user_error(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="LLaMA-7B", workload=Workload(requests_per_s=1, input_tokens=4000, output_tokens=500)
    )
    with pytest.raises(QuantplanError, match="context"):
        make_plan(targets, shipped)


@pytest.mark.parametrize("kind", ["instances", "schemes", "support"])
def test_an_empty_catalog_part_gives_an_explained_infeasible_plan(
    shipped: CatalogSnapshot, kind: str
) -> None:
    snapshot = shipped.model_copy(update={kind: ()})
    plan = make_plan(Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2)), snapshot)
    assert not plan.feasible
    assert plan.rejected or "catalog has no" in plan.summary
    assert all(r.reason for r in plan.rejected)


def _drop(targets: Targets, path: str) -> Targets:
    """``targets`` without the target at ``path`` (the way the explanation relaxes it)."""
    section, field = path.split(".", 1)
    relaxed = {
        "spot_allowed": True, "device": "any", "max_replicas": 10**6, "clouds": (),
        "regions": (), "families": (), "engines": (), "instance_allow": (),
        "instance_deny": (), "accelerator_allow": (), "accelerator_deny": (),
    }.get(field)  # fmt: skip
    part = getattr(targets, section).model_copy(update={field: relaxed})
    return targets.model_copy(update={section: part})


@pytest.mark.parametrize(
    "targets",
    [
        Targets(
            model="Llama-3.1-8B",
            workload=Workload(requests_per_s=20),
            slos=Slos(ttft_p95_ms=400, itl_p95_ms=40),
            quality=QualityTarget(max_perplexity_increase_pct=1),
            constraints=Constraints(device="gpu", clouds=("aws",)),
        ),
        Targets(
            model="Llama-3.1-8B",
            workload=Workload(requests_per_s=20),
            slos=Slos(ttft_p95_ms=1000),
            quality=QualityTarget(max_perplexity_increase_pct=1),
            budget=Budget(max_usd_per_month=300),
        ),
    ],
    ids=["feasible", "infeasible"],
)
def test_binding_constraints_tell_the_truth(shipped: CatalogSnapshot, targets: Targets) -> None:
    plan = make_plan(targets, shipped)
    assert plan.binding_constraints
    for binding in plan.binding_constraints:
        if binding.usd_per_month_without is None:
            continue
        without = make_plan(_drop(targets, binding.constraint), shipped)
        assert without.choice is not None
        assert without.choice.usd_per_month == pytest.approx(binding.usd_per_month_without)
        if plan.choice is not None:
            assert without.choice.usd_per_month < plan.choice.usd_per_month
