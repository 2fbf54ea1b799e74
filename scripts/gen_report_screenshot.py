"""Rewrite docs/screenshots/report-cost-curves.svg, the README's picture of the capacity report:
its cost and latency chart for Llama-3.1-8B at 10 requests/s under an 800 ms p95 TTFT, on the
catalog shipped with this checkout (a fresh embedded copy)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from quantplan.catalog.db import open_catalog
from quantplan.catalog.snapshot import load_snapshot
from quantplan.planner.capacity import capacity_report
from quantplan.planner.charts import cost_curves_svg
from quantplan.planner.decide import prepare
from quantplan.planner.targets import Slos, Targets, Workload

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "report-cost-curves.svg"

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = load_snapshot(open_catalog(f"sqlite:///{Path(tmp) / 'catalog.db'}"))
    targets = Targets(
        model="Llama-3.1-8B", workload=Workload(requests_per_s=10), slos=Slos(ttft_p95_ms=800)
    )
    OUT.write_text(cost_curves_svg(capacity_report(prepare(targets, snapshot))) + "\n")
    print(f"wrote {OUT}")
