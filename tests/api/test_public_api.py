"""The Python API through its public names only: quantplan.plan, report, catalog.open."""

from __future__ import annotations

import subprocess
import sys

import pytest

import quantplan

TARGETS = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}, "slos": {"ttft_p95_ms": 800}}


def test_plan_report_and_catalog_through_the_public_names(catalog_url: str) -> None:
    catalog = quantplan.catalog.open(catalog_url)
    plan = quantplan.plan(TARGETS, catalog=catalog)
    assert isinstance(plan, quantplan.Plan)
    assert plan.feasible and plan.fleet and plan.summary.startswith("Serve Llama-3.1-8B")
    assert plan.provenance is not None and plan.provenance.catalog_revision is not None
    # The same plan from a URL, and from a snapshot (which records no revision).
    assert quantplan.plan(quantplan.Targets.model_validate(TARGETS), catalog=catalog_url) == plan
    from_snapshot = quantplan.plan(TARGETS, catalog=catalog.snapshot())
    assert from_snapshot.fleet == plan.fleet and from_snapshot.provenance.catalog_revision is None

    report = quantplan.report(plan, catalog=catalog)
    assert report.capacity.plan.fleet == plan.fleet
    assert report.markdown.startswith("#") and "<html" in report.html.lower()

    aws = catalog.rows("instances", cloud="aws")
    assert aws.rows and all(row["cloud"] == "aws" for row in aws.rows)
    assert {row["kind"] for row in catalog.show("Llama-3.1-8B")} == {"models"}


def test_errors_are_quantplan_errors_with_a_hint(catalog_url: str) -> None:
    with pytest.raises(quantplan.QuantplanError) as unknown:
        quantplan.plan(
            {"model": "Llama-3.1-8", "workload": {"requests_per_s": 5}}, catalog=catalog_url
        )
    assert "Llama-3.1-8B" in (unknown.value.hint or "")
    with pytest.raises(quantplan.QuantplanError, match="requests_per_s"):
        quantplan.plan(
            {"model": "Llama-3.1-8B", "workload": {"requests_per_s": -1}}, catalog=catalog_url
        )
    with pytest.raises(quantplan.QuantplanError, match="unknown kind"):
        quantplan.catalog.open(catalog_url).rows("instance")


def test_import_quantplan_stays_light() -> None:
    code = (
        "import sys, quantplan; "
        "heavy = [m for m in ('numpy', 'fastapi', 'mcp', 'quantplan.api', 'sqlalchemy') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
