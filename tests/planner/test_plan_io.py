"""Targets and Plan files: strict validation, round trips, schema versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.plan import load_plan, save_plan
from quantplan.planner.planning import make_plan
from quantplan.planner.targets import Targets, Workload, load_targets

from quantplan.errors import QuantplanError


def test_workload_needs_exactly_one_volume() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Workload(requests_per_s=1, tokens_per_day=1000)
    with pytest.raises(ValidationError, match="exactly one"):
        Workload()


def test_tokens_per_day_converts_by_the_chosen_accounting() -> None:
    both = Workload(tokens_per_day=86_400 * 768, input_tokens=512, output_tokens=256)
    output = both.model_copy(update={"token_accounting": "output_only"})
    assert both.mean_requests_per_s == pytest.approx(1.0)
    assert Workload.model_validate(output.model_dump()).mean_requests_per_s == pytest.approx(3.0)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        Targets.model_validate(
            {"model": "x", "workload": {"requests_per_s": 1}, "slo": {"ttft_p95_ms": 1}}
        )


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_plan_round_trips(shipped: CatalogSnapshot, tmp_path: Path, suffix: str) -> None:
    plan = make_plan(Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2)), shipped)
    path = save_plan(plan, tmp_path / f"plan{suffix}")
    assert load_plan(path) == plan
    assert load_targets(path) == plan.targets  # a plan file is also a targets file


def test_other_schema_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("schema_version: 0\nmodel: x\n")
    with pytest.raises(QuantplanError, match="schema version"):
        load_plan(path)


def test_bad_targets_file_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("model: x\nworkload: {requests_per_s: -1}\n")
    with pytest.raises(QuantplanError, match="invalid"):
        load_targets(path)


def test_context_re_solves_under_other_targets(shipped: CatalogSnapshot) -> None:
    from quantplan.planner.planning import plan_from_context, prepare
    from quantplan.planner.targets import Constraints, Slos

    base = Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2))
    context = prepare(base, shipped)
    tighter = base.model_copy(update={"slos": Slos(ttft_p95_ms=300)})
    cpu = base.model_copy(update={"constraints": Constraints(device="cpu")})
    assert context.with_targets(tighter).space is context.space  # same maps, new solve
    assert plan_from_context(context.with_targets(tighter)) == make_plan(tighter, shipped)
    assert plan_from_context(context.with_targets(cpu)) == make_plan(cpu, shipped)


def test_plans_written_before_instances_existed_still_load(
    shipped: CatalogSnapshot, tmp_path: Path
) -> None:
    import yaml

    plan = make_plan(Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2)), shipped)
    data = plan.model_dump(mode="json")
    for field in ("instances", "replicas_per_instance", "on_demand_usd_per_month"):
        data["choice"].pop(field)
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(data))
    old = load_plan(path)
    assert old.choice is not None and old.choice.instances == old.choice.replicas
