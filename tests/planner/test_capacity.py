"""The capacity report's numbers: curves, crossovers, headroom and spot sensitivity."""

from __future__ import annotations

import itertools

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.capacity import capacity_report
from quantplan.planner.decide import prepare
from quantplan.planner.targets import Slos, Targets, Workload


def _report(shipped: CatalogSnapshot):  # type: ignore[no-untyped-def]
    targets = Targets(
        model="Llama-3.2-1B",
        workload=Workload(tokens_per_day=2e6, input_tokens=300, output_tokens=150),
        slos=Slos(ttft_p95_ms=15000),
    )
    return capacity_report(prepare(targets, shipped))


def test_cost_curves_grow_with_traffic(shipped: CatalogSnapshot) -> None:
    report = _report(shipped)
    assert report.curves
    for curve in report.curves:
        costs = [p.usd_per_month for p in curve.points if p.usd_per_month is not None]
        assert all(b >= a - 1e-6 for a, b in itertools.pairwise(costs))


def test_cpu_stops_being_cheapest_somewhere_as_traffic_grows(shipped: CatalogSnapshot) -> None:
    report = _report(shipped)
    assert report.crossovers
    first = report.crossovers[0]
    assert first.cheaper_below.endswith("on cpu")
    assert any(c.cheaper_above.endswith("on gpu") for c in report.crossovers)
    device = report.device_crossovers[0]
    assert (device.cheaper_below, device.cheaper_above) == ("cpu", "gpu")
    # The crossover lies where the cheapest series really changes.
    volumes = [p.tokens_per_day for p in report.curves[0].points]
    assert volumes[0] < first.tokens_per_day < volumes[-1]


def test_headroom_and_spot_views(shipped: CatalogSnapshot) -> None:
    report = _report(shipped)
    assert report.headroom_factor is not None and report.headroom_factor >= 1
    first = report.headroom[0]
    assert first.growth == 1.0 and first.fits_current_fleet
    spot_costs = [s.usd_per_month for s in report.spot if s.usd_per_month is not None]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(spot_costs))
    assert report.on_demand_usd_per_month is not None
    assert all(c <= report.on_demand_usd_per_month + 1e-6 for c in spot_costs)
