"""The report's charts as a reader sees them: matplotlib SVG with round, people-formatted tick
labels, no axis repeating one label, the chosen plan marked, latency along the cost curves,
the Pareto axis not below zero, and (with chromium installed) the page rendered by a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.capacity import CapacityReport, capacity_report
from quantplan.planner.charts import people
from quantplan.planner.decide import prepare
from quantplan.planner.report import render_html
from quantplan.planner.targets import Slos, Targets, Workload

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def report(shipped: CatalogSnapshot) -> CapacityReport:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=10),
        slos=Slos(ttft_p95_ms=800),
    )
    return capacity_report(prepare(targets, shipped))


@pytest.fixture(scope="module")
def html(report: CapacityReport) -> str:
    return render_html(report, today=date(2026, 12, 2))


def test_numbers_are_written_for_people() -> None:
    assert people(6875.16) == "6.88k"
    assert people(1.33e9) == "1.33B"
    assert people(1_330_000, "$") == "$1.33M"
    assert people(500) == "500" and people(0.089) == "0.089" and people(2.0, "x") == "2x"
    assert people(0) == "0" and people(-1500, "$") == "-$1.5k"


def _axis_labels(svg: str) -> dict[str, list[str]]:
    """Tick label texts per axis group id (matplotlib names them xtick_N / ytick_N)."""
    root = ElementTree.fromstring(svg)
    out: dict[str, list[str]] = {}
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id", "")
        match = re.fullmatch(r"(matplotlib\.axis_\d+)", gid)
        if match:
            texts = [t.text or "" for t in group.iter(f"{SVG}text") if (t.text or "").strip()]
            out[gid] = texts
    return out


def test_tick_labels_are_round_distinct_and_plain(html: str) -> None:
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 4
    for svg in svgs:
        for axis, labels in _axis_labels(svg).items():
            ticks = [t for t in labels if not re.search(r"[a-z]{4,}", t)]  # not the axis title
            assert len(ticks) == len(set(ticks)), (axis, ticks)  # no degenerate axis
            for tick in ticks:
                assert "e+" not in tick and "e-" not in tick, tick
                digits = re.sub(r"[^0-9]", "", tick).lstrip("0")
                assert len(digits) <= 3, tick  # round ticks, not 6.87516k


def test_the_plan_is_marked_and_latency_follows_the_curves(
    report: CapacityReport, html: str
) -> None:
    assert report.plan.feasible
    assert html.count("plan: $") == 1  # the cost chart's legend names the plan's cost
    assert "p95 TTFT at that cost" in html and "TTFT target 800 ms" in html
    for curve in report.curves:
        for point in curve.points:
            if point.usd_per_month is not None:
                # Under the plan's latency target: no point of a curve (nor a crossover
                # between them) rests on an option slower than the target.
                assert point.ttft_p95_ms is not None and point.ttft_p95_ms <= 800 * 1.0001


def test_pareto_axis_does_not_run_below_zero(html: str) -> None:
    pareto = re.findall(r"<svg.*?</svg>", html, flags=re.S)[1]
    labels = [t for texts in _axis_labels(pareto).values() for t in texts]
    assert not any(label.startswith("-") for label in labels), labels


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_a_browser_renders_the_charts(html: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(html)
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert dom.count("<svg") == 4
    assert "Cost and latency of the best option per family and device" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1100,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 20_000  # a page with drawn charts, not a blank one
