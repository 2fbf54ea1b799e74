"""Plan and catalog view-models over the real planner and the seeded catalog."""

from __future__ import annotations

from datetime import date

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.tui.viewmodels.catalog_view import (
    catalog_table,
    known_clouds,
    parse_filter,
    record_details,
)
from quantplan.tui.viewmodels.plan_view import (
    deployment_key,
    option_details,
    option_rows,
    pareto_points,
    plan_headline,
    why_not_rows,
)
from quantplan.tui.viewmodels.targets_form import TargetsForm, validate_form


def plan_for(catalog_snapshot: CatalogSnapshot, **fields: str):  # type: ignore[no-untyped-def]
    targets = validate_form(TargetsForm(**fields)).targets
    assert targets is not None
    return make_plan(targets, catalog_snapshot)


def test_option_rows_rank_the_choice_first_without_duplicates(
    catalog_snapshot: CatalogSnapshot,
) -> None:
    plan = plan_for(catalog_snapshot)
    rows = option_rows(plan)
    assert plan.choice is not None
    assert rows[0].chosen and rows[0].key == deployment_key(plan.choice)
    assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
    assert len({r.key for r in rows}) == len(rows)
    assert sum(r.chosen for r in rows) == 1
    assert rows[0].basis.startswith("T:")
    details = dict(option_details(rows[0], today=date(2026, 12, 2)))
    assert plan.choice.metrics.ttft_p95_ms.basis in details["p95 TTFT"]
    assert plan_headline(plan).startswith(f"Deploy {plan.choice.scheme}")


def test_pareto_points_and_why_not(catalog_snapshot: CatalogSnapshot) -> None:
    plan = plan_for(catalog_snapshot)
    points = pareto_points(plan)
    assert points and points == sorted(points, key=lambda p: p.usd_per_month)
    assert sum(p.chosen for p in points) <= 1
    reasons = why_not_rows(plan)
    assert {r.family for r in reasons} == {r.family for r in plan.rejected}
    assert all(r.reason for r in reasons)


def test_an_infeasible_plan_names_what_binds(catalog_snapshot: CatalogSnapshot) -> None:
    plan = plan_for(catalog_snapshot, max_usd_per_month="50")
    assert not plan.feasible
    assert option_rows(plan) == []
    assert "budget.max_usd_per_month" in plan_headline(plan)


def test_catalog_table_filters_by_words_and_fields(catalog_snapshot: CatalogSnapshot) -> None:
    everything = catalog_table(catalog_snapshot, "instances")
    assert everything.total == len(catalog_snapshot.instances) == len(everything.rows)
    aws_l4 = catalog_table(catalog_snapshot, "instances", "cloud=aws L4")
    assert 0 < len(aws_l4.rows) < everything.total
    assert all(r.record.cloud == "aws" for r in aws_l4.rows)  # type: ignore[attr-defined]
    assert all("L4" in r.record.hardware for r in aws_l4.rows)  # type: ignore[attr-defined]
    assert catalog_table(catalog_snapshot, "instances", "zzz-nothing").empty_message.startswith(
        "Nothing"
    )
    # The seed ships published profiles; a catalog without any gets the hint how to add some.
    assert catalog_table(catalog_snapshot, "profiles").total == len(catalog_snapshot.profiles) > 0
    no_profiles = catalog_snapshot.model_copy(update={"profiles": ()})
    assert "No measured profiles" in catalog_table(no_profiles, "profiles").empty_message
    assert parse_filter("a b=C") == (["a"], {"b": "c"})
    assert "aws" in known_clouds(catalog_snapshot)
    with pytest.raises(ValueError, match="unknown catalog kind"):
        catalog_table(catalog_snapshot, "prices")


def test_record_details_separate_provenance(catalog_snapshot: CatalogSnapshot) -> None:
    fields, provenance = record_details(catalog_snapshot.instances[0])
    assert "price_source" in dict(provenance)
    assert "name" in dict(fields) and "price_source" not in dict(fields)
