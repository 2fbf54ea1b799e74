"""Spot prices weighed with how often the cloud takes spot capacity back (planner/spot.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantplan.catalog.records import SpotInterruptionRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.spot import fallback_share, spot_interruption
from quantplan.planner.targets import Constraints, Slos, Targets, Workload

QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))


def _numeric_share(rate: float, steps: int = 20_000) -> float:
    """The same expectation by summing: interrupted at t (constant hazard), on-demand after."""
    hazard = -math.log1p(-rate)  # per month
    dt = 1 / steps
    return sum(
        hazard * math.exp(-hazard * t) * (1 - t) * dt
        for t in ((k + 0.5) * dt for k in range(steps))
    )


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.1, 0.2, 0.5, 0.9])
def test_the_share_on_the_stand_in_is_the_expectation_it_claims(rate: float) -> None:
    assert fallback_share(rate) == pytest.approx(_numeric_share(rate), rel=1e-4)


def test_the_share_runs_from_none_to_all_and_is_about_half_the_rate_when_small() -> None:
    assert fallback_share(0.0) == 0.0
    assert fallback_share(1.0) == 1.0
    assert fallback_share(0.02) == pytest.approx(0.01, rel=0.02)
    shares = [fallback_share(r / 100) for r in range(101)]
    assert shares == sorted(shares)


def _instance(snapshot: CatalogSnapshot, cloud: str, name: str):  # type: ignore[no-untyped-def]
    return next(i for i in snapshot.instances if i.cloud == cloud and i.name == name)


def test_a_type_s_own_band_comes_first_then_its_cloud_s_then_a_modeled_default(
    shipped: CatalogSnapshot,
) -> None:
    own = spot_interruption(shipped, _instance(shipped, "aws", "p5.48xlarge"), "gpu")
    assert (own.monthly_rate_low, own.monthly_rate_high, own.basis) == (0.15, 0.2, "published")
    assert "p5.48xlarge" in own.source and own.as_of == "2026-02-24"
    cloud_wide = spot_interruption(shipped, _instance(shipped, "aws", "g5.xlarge"), "gpu")
    assert (cloud_wide.instance_type, cloud_wide.monthly_rate_high) == ("", 0.2)
    cpu = spot_interruption(shipped, _instance(shipped, "aws", "c7a.xlarge"), "cpu")
    assert (cpu.device_kind, cpu.monthly_rate_high) == ("cpu", 0.05)
    default = spot_interruption(shipped, _instance(shipped, "gcp", "g2-standard-4"), "gpu")
    assert default.basis == "modeled" and "no spot_interruptions row for gcp" in default.source


def _targets(**constraints: object) -> Targets:
    return Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=5, input_tokens=512, output_tokens=256),
        slos=Slos(ttft_p95_ms=2000, itl_p95_ms=100),
        constraints=Constraints(spot_allowed=True, clouds=("aws",), **constraints),
    )


def test_a_spot_line_pays_its_stand_in_and_says_so(shipped: CatalogSnapshot) -> None:
    plan = make_plan(_targets(), shipped)
    line = plan.fleet[0]
    assert line.pricing == "spot" and line.spot is not None
    instance = next(
        i
        for i in shipped.instances
        if (i.cloud, i.name, i.region)
        == (line.instance.cloud, line.instance.name, line.instance.region)
    )
    assert line.spot.listed_usd_per_hour == pytest.approx(instance.spot_price_per_hour)
    share = line.spot.fallback_share.value
    expected = instance.spot_price_per_hour + share * (
        instance.price_per_hour - instance.spot_price_per_hour
    )
    assert line.usd_per_hour == pytest.approx(expected)
    assert line.usd_per_month == pytest.approx(line.instances * expected * 730, rel=1e-6)
    rate = line.spot.monthly_interruption_rate
    assert share == pytest.approx(fallback_share(rate.high), abs=1e-6)
    assert line.spot.fallback == f"on-demand {instance.name}"
    assert line.spot.interruptions_per_month == pytest.approx(line.instances * rate.high)
    assert all(d.spot is None for d in plan.alternatives if d.pricing == "on_demand")


def test_spot_that_is_always_taken_back_costs_what_on_demand_costs(
    shipped: CatalogSnapshot,
) -> None:
    always = tuple(
        SpotInterruptionRecord(
            cloud="aws",
            device_kind=kind,
            monthly_rate_low=1.0,
            monthly_rate_high=1.0,
            basis="modeled",
            source="test: every spot instance interrupted at once",
        )
        for kind in ("gpu", "cpu")
    )
    lost = shipped.model_copy(update={"spot_interruptions": always})
    on_demand = make_plan(
        _targets().model_copy(update={"constraints": Constraints(clouds=("aws",))}), lost
    )
    with_spot = make_plan(_targets(), lost)
    assert with_spot.fleet[0].usd_per_month == pytest.approx(on_demand.fleet[0].usd_per_month)


def test_the_plan_command_shows_the_risk_and_the_catalog_lists_the_bands(
    tmp_path: Path, seeded_default_catalog: Path
) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "model: Llama-3.1-8B\n"
        "workload: {requests_per_s: 5, input_tokens: 512, output_tokens: 256}\n"
        "slos: {ttft_p95_ms: 2000, itl_p95_ms: 100}\n"
        "constraints: {spot_allowed: true, clouds: [aws]}\n"
    )
    shown = subprocess.run(
        [QUANTPLAN, "plan", "--targets", str(targets)], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "spot risk" in shown.stdout and "of instances interrupted a month" in shown.stdout
    assert "listed, its on-demand fallback counted" in shown.stdout
    listed = subprocess.run(
        [QUANTPLAN, "catalog", "list", "--kind", "spot_interruptions", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["rows"]
    assert {(r["instance_type"], r["monthly_rate_high"]) for r in rows} >= {
        ("p5.48xlarge", 0.2),
        ("p4d.24xlarge", 0.1),
    }
