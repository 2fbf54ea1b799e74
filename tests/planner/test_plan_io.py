"""Targets and Plan files: strict validation, round trips, schema versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.errors import QuantplanError
from quantplan.planner.decide import make_plan
from quantplan.planner.plan import load_plan, save_plan
from quantplan.planner.targets import Targets, Workload, load_targets


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
    with pytest.raises(QuantplanError, match="requests_per_s"):
        load_targets(path)


def test_context_re_solves_under_other_targets(shipped: CatalogSnapshot) -> None:
    from quantplan.planner.decide import plan_from_context, prepare
    from quantplan.planner.targets import Constraints, Slos

    base = Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2))
    context = prepare(base, shipped)
    tighter = base.model_copy(update={"slos": Slos(ttft_p95_ms=300)})
    cpu = base.model_copy(update={"constraints": Constraints(device="cpu")})
    assert context.with_targets(tighter).space is context.space  # same maps, new solve
    assert plan_from_context(context.with_targets(tighter)) == make_plan(tighter, shipped)
    assert plan_from_context(context.with_targets(cpu)) == make_plan(cpu, shipped)


def test_context_cache_gives_the_plans_make_plan_gives(shipped: CatalogSnapshot) -> None:
    from quantplan.planner.decide import ContextCache, plan_from_context
    from quantplan.planner.targets import QualityTarget, Slos

    cache = ContextCache(capacity=2)
    base = Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2))
    asked = [
        base,
        base.model_copy(update={"workload": Workload(requests_per_s=9)}),  # reuses the maps
        base.model_copy(update={"slos": Slos(ttft_p95_ms=300)}),
        # The recovery benchmark decides which evidence the candidate space carries.
        base.model_copy(update={"quality": QualityTarget(recovery_benchmark="gsm8k")}),
        Targets(model="llama-3.2-1b", workload=Workload(requests_per_s=2)),  # spelled loosely
        Targets(model="Mistral-7B", workload=Workload(requests_per_s=2)),  # evicts the oldest
        base,
    ]
    for targets in asked:
        assert plan_from_context(cache.context(targets, shipped)) == make_plan(targets, shipped)
    first = cache.context(base, shipped)
    assert cache.context(asked[1], shipped).space is first.space
    assert cache.context(asked[3], shipped).space is not first.space


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


def _small_plan(shipped: CatalogSnapshot, **make: object):  # type: ignore[no-untyped-def]
    return make_plan(
        Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=2)), shipped, **make
    )


def test_plans_record_quantplan_version_catalog_and_price_dates(
    shipped: CatalogSnapshot, tmp_path: Path
) -> None:
    from quantplan import __version__
    from quantplan.planner.decide import catalog_fingerprint

    plan = _small_plan(shipped, catalog_revision="0004")
    provenance = plan.provenance
    assert provenance is not None
    assert provenance.quantplan_version == __version__
    assert provenance.catalog_revision == "0004"
    assert provenance.catalog_fingerprint == catalog_fingerprint(shipped)
    # The shipped price list carries no dates: the plan says so rather than inventing one.
    assert provenance.oldest_price_date is None and "unknown date" in provenance.price_dates
    assert provenance.undated_prices == tuple(sorted({str(d.instance) for d in plan.fleet}))
    assert load_plan(save_plan(plan, tmp_path / "p.yaml")).provenance == provenance

    # Prices with dates: the fleet's oldest and newest, and only the fleet's.
    chosen = {(d.instance.cloud, d.instance.name, d.instance.region) for d in plan.fleet}
    dated = shipped.model_copy(
        update={
            "instances": tuple(
                i.model_copy(
                    update={
                        "price_date": "2026-10-01"
                        if (i.cloud, i.name, i.region) in chosen
                        else "2020-01-01"
                    }
                )
                for i in shipped.instances
            )
        }
    )
    priced = _small_plan(dated).provenance
    assert priced is not None and priced.catalog_revision is None
    assert (priced.oldest_price_date, priced.newest_price_date) == ("2026-10-01", "2026-10-01")
    assert priced.price_dates == "prices of 2026-10-01" and not priced.undated_prices
    assert priced.catalog_fingerprint != provenance.catalog_fingerprint


def test_plans_from_a_newer_quantplan_are_refused_and_older_ones_load(
    shipped: CatalogSnapshot, tmp_path: Path
) -> None:
    import yaml

    data = _small_plan(shipped).model_dump(mode="json")
    newer_schema = {**data, "schema_version": 3}
    newer_release = {**data, "provenance": {**data["provenance"], "quantplan_version": "99.0"}}
    version_1 = {k: v for k, v in data.items() if k != "provenance"} | {"schema_version": 1}
    for name, content, refusal in (
        ("schema.yaml", newer_schema, "plan schema 3; this is quantplan"),
        ("release.yaml", newer_release, "written by quantplan 99.0"),
    ):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(content))
        with pytest.raises(QuantplanError, match=refusal) as refused:
            load_plan(path)
        assert "upgrade quantplan" in (refused.value.hint or "")
    old = tmp_path / "v1.yaml"
    old.write_text(yaml.safe_dump(version_1))
    loaded = load_plan(old)
    assert loaded.provenance is None and loaded.fleet == _small_plan(shipped).fleet


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- schema_version: 2\n", "holds a list, not a plan"),
        ("just a string\n", "holds a string, not a plan"),
        ("", "holds nothing, not a plan"),
        ("42\n", "holds a number, not a plan"),
        ("model: x\n", "no schema_version: it is not a plan file"),
        ("schema_version: two\n", "schema_version 'two', not a whole number"),
        ("schema_version: 2\nmodel: [1, 2]\n", "is invalid: field"),
        ("schema_version: 2\nfleet: {a: 1}\n", "is invalid: field"),
        ("a: &x [1]\nb: *x\n", "anchors"),
        ("{schema_version: 2\n", "not valid YAML/JSON"),
    ],
)
def test_any_shape_of_plan_file_gives_one_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(content)
    with pytest.raises(QuantplanError, match=message) as refused:
        load_plan(path)
    assert "\n" not in refused.value.message


@pytest.mark.parametrize("number", [".nan", ".inf", "1.0e400", "-1"])
def test_numbers_a_plan_cannot_hold_are_refused(
    shipped: CatalogSnapshot, tmp_path: Path, number: str
) -> None:
    import yaml

    data = _small_plan(shipped).model_dump(mode="json")
    text = yaml.safe_dump(data).replace(
        f"usd_per_hour: {data['fleet'][0]['usd_per_hour']}", f"usd_per_hour: {number}", 1
    )
    assert text != yaml.safe_dump(data)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(QuantplanError, match="usd_per_hour"):
        load_plan(path)
