"""The capacity report's charts, drawn by matplotlib as inline SVG.

matplotlib picks round ticks (1, 2, 5 x 10^k on linear axes, decades on log axes); the tick
labels go through :func:`people` so an axis reads "$10k" or "3M", never "6.87516k" or
"1.33e+03 M". Text stays text in the SVG (``svg.fonttype: none``), so a browser can find the
labels and the page stays small. Only the report imports this module: matplotlib never loads
at CLI start or in the planner.
"""

from __future__ import annotations

import io
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

    from quantplan.planner.capacity import CapacityReport

PALETTE = (  # matplotlib's tab10: ten colours told apart on screen and in print
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
SIZE = (8.0, 4.0)  # inches; at 72 dpi an SVG of 576 x 288 pt
PLAN_MARK = {"marker": "*", "markersize": 16, "color": "#111", "zorder": 5, "linestyle": "none"}

Point = tuple[float, float]


def people(value: float, unit: str = "") -> str:
    """A number as people write it: 3 significant digits at most, k/M/B suffixes, no exponent.
    ``unit`` "$" prefixes a dollar sign; any other unit is appended."""
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    for suffix, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= size:
            text = f"{_significant(magnitude / size)}{suffix}"
            break
    else:
        text = _significant(magnitude)
    if unit == "$":
        return f"{sign}${text}"
    return f"{sign}{text}{unit}"


def _significant(value: float) -> str:
    """At most three significant digits, fixed-point, trailing zeros dropped."""
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(value)))
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _figure(rows: int = 1, height: float = SIZE[1]) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(SIZE[0], height), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, list(axes)


def _format_axis(axis: Axis, unit: str) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: people(value, unit)))
    axis.set_minor_formatter(NullFormatter())  # minor log ticks unlabelled: no overprinting


def _svg(figure: Figure, title: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "quantplan", "font.size": 9}
    ):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Title": title})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # inline: drop the XML declaration and doctype
    # The RDF metadata names vocabularies by URL; the page needs none of it.
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


def _legend(axes: Axes) -> None:
    handles, _ = axes.get_legend_handles_labels()
    if handles:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def cost_curves_svg(report: CapacityReport) -> str:
    """$/month and p95 TTFT vs tokens/day for the best option of each (family, device), the
    plan marked, the targets' volume and the CPU/GPU crossovers as vertical lines."""
    from matplotlib.ticker import LogLocator

    plan = report.plan
    figure, (cost, latency) = _figure(rows=2, height=6.0)
    families = sorted({curve.series.rsplit(" on ", 1)[0] for curve in report.curves})
    for curve in report.curves:
        # One colour per family; CPU dashed, GPU solid, so the two devices read apart.
        family, _, device = curve.series.rpartition(" on ")
        color = PALETTE[families.index(family) % len(PALETTE)]
        style = "--" if device == "cpu" else "-"
        points = [p for p in curve.points if p.usd_per_month]
        if not points:
            continue
        cost.plot(
            [p.tokens_per_day for p in points],
            [p.usd_per_month or 0.0 for p in points],  # all set: filtered above
            color=color,
            linestyle=style,
            label=curve.series,
        )
        timed = [p for p in points if p.ttft_p95_ms]
        latency.plot(
            [p.tokens_per_day for p in timed],
            [p.ttft_p95_ms or 0.0 for p in timed],  # all set: filtered above
            color=color,
            linestyle=style,
            marker=".",
        )
    if plan.fleet_usd_per_month:
        cost.plot(
            [report.tokens_per_day],
            [plan.fleet_usd_per_month],
            label=f"plan: {people(plan.fleet_usd_per_month, '$')}/month",
            **PLAN_MARK,  # type: ignore[arg-type]
        )
        ttft = max(d.metrics.ttft_p95_ms.value for d in plan.fleet)
        latency.plot([report.tokens_per_day], [ttft], **PLAN_MARK)  # type: ignore[arg-type]
    for axes in (cost, latency):
        axes.axvline(report.tokens_per_day, color="#555", linestyle=":", linewidth=1)
        for crossing in report.device_crossovers:
            axes.axvline(crossing.tokens_per_day, color="#999", linestyle="--", linewidth=1)
    if report.device_crossovers:
        cost.plot([], [], color="#999", linestyle="--", label="CPU/GPU crossover")
    cost.plot([], [], color="#555", linestyle=":", label="targets' volume")
    target = plan.targets.slos.ttft_p95_ms
    if target is not None and target >= MIN_CHARTED_MS:
        latency.axhline(target, color="#d62728", linestyle="-.", linewidth=1)
        latency.plot(
            [], [], color="#d62728", linestyle="-.", label=f"TTFT target {people(target)} ms"
        )
    # A log axis needs positive data: an infeasible plan's chart may hold no point at all.
    # (Reference lines do not count: an axvline's y data are axes fractions, not values.)
    plotted_y: dict[object, list[float]] = {cost: [], latency: []}
    for curve in report.curves:
        for p in curve.points:
            plotted_y[cost].append(p.usd_per_month or 0.0)
            plotted_y[latency].append(p.ttft_p95_ms or 0.0)
    plotted_y[cost].append(plan.fleet_usd_per_month or 0.0)
    for axes, unit in ((cost, "$"), (latency, " ms")):
        axes.set_xscale("log")  # tokens/day: the targets' volume is always positive
        if _has_positive([plotted_y[axes]]):
            axes.set_yscale("log")
        _format_axis(axes.xaxis, "")
        _format_axis(axes.yaxis, unit)
        axes.grid(True, which="major", color="#ddd", linewidth=0.6)
    # 1-2-5 steps: a latency range inside one decade still gets several labelled ticks.
    if latency.get_yscale() == "log":
        latency.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    cost.set_ylabel("$/month")
    latency.set_ylabel("p95 TTFT at that cost")
    latency.set_xlabel("tokens/day (mean)")
    cost.set_title("Cost and latency of the best option per family and device")
    _legend(cost)
    _legend(latency)
    return _svg(figure, "cost vs traffic")


# A target below a microsecond cannot sit on a latency axis of real measurements (it would
# stretch a log axis over hundreds of decades); the report's tables still state it.
MIN_CHARTED_MS = 1e-3


def _has_positive(series: Iterable[Iterable[object]]) -> bool:
    """Whether any plotted value is a positive finite number (what a log axis can show)."""
    for values in series:
        for value in values:
            if isinstance(value, numbers.Real) and math.isfinite(value) and float(value) > 0:
                return True
    return False


def pareto_svg(report: CapacityReport) -> str:
    """$/month vs perplexity increase of the Pareto front, by method, the choice marked."""
    figure, (axes,) = _figure()
    by_method: dict[str, list[Point]] = {}
    for d in report.pareto_front:
        ppl = d.metrics.perplexity_increase_pct
        if ppl is not None:
            by_method.setdefault(d.method, []).append((d.usd_per_month, ppl.value))
    for k, (method, points) in enumerate(sorted(by_method.items())):
        xs, ys = zip(*points, strict=True)
        axes.scatter(xs, ys, color=PALETTE[k % len(PALETTE)], label=method, s=24)
    choice = report.plan.choice
    if choice is not None and choice.metrics.perplexity_increase_pct is not None:
        axes.plot(
            [choice.usd_per_month],
            [choice.metrics.perplexity_increase_pct.value],
            label="plan",
            **PLAN_MARK,  # type: ignore[arg-type]
        )
    values = [y for points in by_method.values() for _, y in points]
    _non_degenerate(axes, values, floor=0.0)
    axes.set_xscale("log")
    _format_axis(axes.xaxis, "$")
    _format_axis(axes.yaxis, "%")
    axes.grid(True, which="major", color="#ddd", linewidth=0.6)
    axes.set_xlabel("$/month")
    axes.set_ylabel("perplexity increase")
    axes.set_title("Pareto front: cost vs quality")
    _legend(axes)
    return _svg(figure, "pareto front")


def line_svg(
    title: str,
    points: Sequence[Point],
    *,
    x_label: str,
    y_label: str,
    mark: Point | None = None,
    x_unit: str = "",
) -> str:
    """One series of $/month against a factor (traffic growth, spot price), ``mark`` starred."""
    figure, (axes,) = _figure(height=3.2)
    if points:
        xs, ys = zip(*points, strict=True)
        axes.plot(xs, ys, color=PALETTE[0], marker=".", label="cheapest plan")
        _non_degenerate(axes, list(ys), floor=0.0)
    if mark is not None:
        axes.plot([mark[0]], [mark[1]], label="today's plan", **PLAN_MARK)  # type: ignore[arg-type]
    _format_axis(axes.xaxis, x_unit)
    _format_axis(axes.yaxis, "$")
    axes.grid(True, which="major", color="#ddd", linewidth=0.6)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)
    _legend(axes)
    return _svg(figure, title)


def _non_degenerate(axes: Axes, values: Sequence[float], floor: float | None) -> None:
    """Limits that show the data: a flat series gets a band around it instead of an axis whose
    ticks all print the same label; quantities that cannot be negative start at ``floor``."""
    if not values:
        return
    low, high = min(values), max(values)
    span = high - low
    pad = span * 0.1 if span > 0 else max(abs(high) * 0.1, 1e-3)
    bottom = low - pad
    if floor is not None and low >= floor:
        bottom = max(bottom, floor)
    axes.set_ylim(bottom, high + pad)
