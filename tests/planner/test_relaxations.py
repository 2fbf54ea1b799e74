"""Explanations with the right numbers: a relaxation quotes the user's target (it printed
"None": it read the relaxed targets), relaxes by the least that works and comes smallest change
first, and a mixed fleet is summarised as a fleet."""

from __future__ import annotations

import re

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan, prepare
from quantplan.planner.targets import Targets


def _targets(**sections: object) -> Targets:
    return Targets.model_validate({"model": "Llama-3.1-8B", **sections})


def _ms(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text))


def test_latency_relaxation_quotes_the_target_and_the_least_that_works(
    shipped: CatalogSnapshot,
) -> None:
    targets = _targets(
        workload={"requests_per_s": 2},
        slos={"ttft_p95_ms": 100},
        constraints={"device": "cpu", "max_replicas": 20},
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible
    ttft = next(r for r in plan.relaxations if r.constraint == "slos.ttft_p95_ms")
    assert ttft.current == "100 ms"
    assert "None" not in plan.summary
    # The cheapest plan with the TTFT objective dropped: its latency is whatever it is.
    context = prepare(targets, shipped)
    free = make_plan(targets.model_copy(update={"slos": targets.slos.model_copy(
        update={"ttft_p95_ms": None})}), shipped)  # fmt: skip
    assert free.feasible and free.choice is not None
    assert _ms(ttft.needed) <= free.choice.metrics.ttft_p95_ms.value
    # ... and no candidate reaches a TTFT much lower than the one asked for.
    reachable = context.evaluation.points.best_ttft_p95_ms
    assert _ms(ttft.needed) >= 0.5 * float(reachable[reachable > 0].min())


def test_relaxations_come_smallest_change_first(shipped: CatalogSnapshot) -> None:
    plan = make_plan(
        _targets(
            workload={"requests_per_s": 20},
            slos={"ttft_p95_ms": 5000},
            constraints={"device": "cpu", "max_replicas": 8},
        ),
        shipped,
    )
    names = [r.constraint for r in plan.relaxations]
    assert names[0] == "constraints.max_replicas", names
    replicas = plan.relaxations[0]
    # The fewest replicas any CPU deployment needs, not the cheapest plan's 193.
    assert replicas.current == "8" and int(replicas.needed) == replicas.deployment.replicas
    assert int(replicas.needed) <= min(
        int(m)
        for m in re.findall(r"needs (\d+) replicas", " ".join(x.reason for x in plan.rejected))
    )
    assert "from 8 to" in plan.summary


def test_a_mixed_fleet_is_summarised_as_a_fleet(shipped: CatalogSnapshot) -> None:
    plan = make_plan(
        _targets(
            workload={"requests_per_s": 5},
            constraints={"allow_mixed_fleet": True, "required_engines": ["vllm", "llama.cpp"]},
        ),
        shipped,
    )
    assert plan.feasible and len(plan.fleet) >= 2
    replicas = sum(d.replicas for d in plan.fleet)
    assert f"mixed fleet of {replicas} replicas in {len(plan.fleet)} deployments" in plan.summary
    worst = max(d.metrics.ttft_p95_ms.value for d in plan.fleet)
    assert f"p95 TTFT up to ~{worst:,.0f} ms" in plan.summary
