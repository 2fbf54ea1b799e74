"""Render a :class:`CapacityReport` as self-contained HTML (inline SVG) and as Markdown."""

from __future__ import annotations

from datetime import date
from html import escape

from quantplan.planner.capacity import CapacityReport
from quantplan.planner.plan import Deployment, Plan
from quantplan.planner.price_age import (
    DEFAULT_MAX_PRICE_AGE_DAYS,
    REFRESH_HINT,
    describe_price,
    excluded_price_notes,
    price_age_days,
)
from quantplan.planner.quality import describe_quality
from quantplan.planner.spot import describe_spot_risk


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def _volume(value: float) -> str:
    from quantplan.planner.charts import people

    return people(value)


def _deployment_row(d: Deployment) -> list[str]:
    ppl = d.metrics.perplexity_increase_pct
    return [
        d.scheme,
        d.engine,
        str(d.instance),
        d.pricing,
        str(d.replicas),
        _money(d.usd_per_month),
        f"{d.usd_per_million_tokens:.4f}",
        f"{d.metrics.ttft_p95_ms.value:,.0f} ({d.metrics.ttft_p95_ms.basis})",
        describe_quality(ppl),
    ]


DEPLOYMENT_HEADER = [
    "scheme", "engine", "instance", "pricing", "replicas", "$/month", "$/M tok", "p95 TTFT ms",
    "ppl +% (evidence)",
]  # fmt: skip


def _price_section(
    report: CapacityReport, today: date, max_age_days: int
) -> tuple[str, list[str], list[list[str]], str]:
    """The price behind every deployment the report shows: its date (flagged when stale or
    unknown) and source, and the flagged prices the plan left out."""
    plan: Plan = report.plan
    shown: dict[str, Deployment] = {}
    for d in (*plan.fleet, *plan.alternatives, *plan.pareto_front):
        shown.setdefault(f"{d.label} ({d.pricing})", d)
    ages = [price_age_days(d.price_date, today) for d in shown.values()]
    stale = sum(1 for age in ages if age is not None and age > max_age_days)
    undated = sum(1 for age in ages if age is None)
    notes = []
    if stale or undated:
        parts = [f"{stale} older than {max_age_days} days"] if stale else []
        parts += [f"{undated} without a date"] if undated else []
        notes.append(
            f"Of the {len(shown)} prices below, {' and '.join(parts)} (as of {today}); "
            f"refresh them: {REFRESH_HINT}."
        )
    elif shown:
        notes.append(f"Every price below is at most {max_age_days} days old (as of {today}).")
    notes += [f"Flagged prices: {note}." for note in excluded_price_notes(plan)]
    rows = [
        [
            label,
            describe_price(d, max_age_days, today)
            + (
                f". Spot risk: {describe_spot_risk(d.spot)}; band: "
                f"{d.spot.monthly_interruption_rate.note}"
                if d.spot
                else ""
            ),
        ]
        for label, d in shown.items()
    ]
    return ("Prices: date and source", ["deployment", "price"], rows, " ".join(notes))


def _speed_evidence_section(report: CapacityReport) -> tuple[str, list[str], list[list[str]], str]:
    """The profiles each shown deployment's speed estimates rest on."""
    plan: Plan = report.plan
    shown: dict[str, Deployment] = {}
    for d in (*plan.fleet, *plan.alternatives):
        shown.setdefault(f"{d.label} ({d.pricing})", d)
    rows = [
        [
            label,
            f"{d.metrics.output_tokens_per_s.basis}: "
            + (d.metrics.speed_evidence or "no profile (default efficiencies)"),
        ]
        for label, d in shown.items()
    ]
    note = (
        "Where no profile stands behind a number it is the roofline with the engine's default "
        "efficiencies, and its band is what held-out validation measured for such estimates."
    )
    return ("Speed estimates: the profiles they rest on", ["deployment", "evidence"], rows, note)


def _sections(
    report: CapacityReport, today: date, max_age_days: int
) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) per table, shared by both renderings."""
    plan = report.plan
    out = [
        ("Plan", DEPLOYMENT_HEADER, [_deployment_row(d) for d in plan.fleet], plan.summary),
        _price_section(report, today, max_age_days),
        _speed_evidence_section(report),
        ("Alternatives", DEPLOYMENT_HEADER, [_deployment_row(d) for d in plan.alternatives], ""),
        (
            "Why other families lost",
            ["family", "stage", "reason"],
            [[r.family, r.stage, r.reason] for r in plan.rejected],
            "",
        ),
        (
            "Binding targets",
            ["target", "effect"],
            [[b.constraint, b.detail] for b in plan.binding_constraints],
            "",
        ),
    ]
    if plan.relaxations:
        out.append(
            (
                "Nearest plans with one target relaxed",
                ["target", "now", "needed", "plan", "$/month"],
                [
                    [r.constraint, r.current, r.needed, r.deployment.label,
                     _money(r.deployment.usd_per_month)]
                    for r in plan.relaxations
                ],
                "",
            )
        )  # fmt: skip
    out.append(
        (
            "CPU or GPU: where the cheaper device kind changes with traffic",
            ["tokens/day", "cheaper below", "cheaper above"],
            [
                [_volume(c.tokens_per_day), c.cheaper_below, c.cheaper_above]
                for c in report.device_crossovers
            ],
            "No change of device kind in the range shown." if not report.device_crossovers else "",
        )
    )
    out.append(
        (
            "Where the cheapest option changes with traffic",
            ["tokens/day", "cheaper below", "cheaper above"],
            [
                [_volume(c.tokens_per_day), c.cheaper_below, c.cheaper_above]
                for c in report.crossovers
            ],
            "No crossover in the range shown." if not report.crossovers else "",
        )
    )
    out.append(("Pareto front (cost, quality, TTFT)", DEPLOYMENT_HEADER,
                [_deployment_row(d) for d in report.pareto_front], ""))  # fmt: skip
    headroom_note = (
        f"The planned fleet carries {report.headroom_factor:.2f}x the peak demand."
        if report.headroom_factor
        else "No feasible fleet, so no headroom."
    )
    out.append(
        (
            "Headroom against traffic growth",
            ["growth", "fits planned fleet", "replicas of choice", "re-planned $/month", "plan"],
            [
                [f"{h.growth:g}x", "yes" if h.fits_current_fleet else "no",
                 str(h.replicas_of_choice or "-"), _money(h.usd_per_month_replanned),
                 h.replanned or "-"]
                for h in report.headroom
            ],
            headroom_note,
        )
    )  # fmt: skip
    out.append(
        (
            "Sensitivity to spot prices",
            ["spot price x", "$/month", "uses spot", "plan"],
            [
                [f"{s.spot_price_multiplier:g}", _money(s.usd_per_month),
                 "yes" if s.uses_spot else "no", s.deployment or "-"]
                for s in report.spot
            ],
            f"On-demand only: {_money(report.on_demand_usd_per_month)}/month. Spot capacity can "
            "be reclaimed; see constraints.max_spot_fraction for mixed fleets.",
        )
    )  # fmt: skip
    return out


def _charts(report: CapacityReport) -> list[str]:
    """The report's figures as inline SVG (matplotlib, imported only here)."""
    from quantplan.planner.charts import cost_curves_svg, line_svg, pareto_svg

    plan = report.plan
    growth = [(h.growth, h.usd_per_month_replanned) for h in report.headroom
              if h.usd_per_month_replanned]  # fmt: skip
    spot = [(s.spot_price_multiplier, s.usd_per_month) for s in report.spot if s.usd_per_month]
    today = (1.0, plan.fleet_usd_per_month) if plan.fleet_usd_per_month else None
    return [
        cost_curves_svg(report),
        pareto_svg(report),
        line_svg("Cost of the re-planned fleet vs traffic growth", growth,
                 x_label="traffic growth", y_label="$/month", mark=today, x_unit="x"),
        line_svg("Cheapest plan vs spot price", spot, x_label="spot price multiplier",
                 y_label="$/month", x_unit="x"),
    ]  # fmt: skip


def render_html(
    report: CapacityReport, *, today: date, max_price_age_days: int = DEFAULT_MAX_PRICE_AGE_DAYS
) -> str:
    """One self-contained HTML page: no scripts, no external resources. ``today`` (the
    caller's clock) decides which prices are stale."""
    plan = report.plan
    body = [
        f"<h1>Capacity plan: {escape(plan.model)}</h1>",
        f"<p><b>{'Feasible' if plan.feasible else 'Infeasible'}.</b> {escape(plan.summary)}</p>",
        f"<p>Traffic: {_volume(report.tokens_per_day)} tokens/day "
        f"({plan.targets.workload.token_accounting.replace('_', ' ')}), peak x"
        f"{plan.targets.workload.peak_to_mean:g}.</p>",
    ]
    body += [f"<figure>{svg}</figure>" for svg in _charts(report)]
    for title, header, rows, note in _sections(report, today, max_price_age_days):
        body.append(f"<h2>{escape(title)}</h2>")
        if note:
            body.append(f"<p>{escape(note)}</p>")
        if rows:
            head = "".join(f"<th>{escape(h)}</th>" for h in header)
            lines = "".join(
                "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                for row in rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>")
    body.append("<h2>Assumptions</h2><ul>")
    body += [f"<li>{escape(a)}</li>" for a in plan.assumptions]
    body.append("</ul>")
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;"
        "padding:3px 6px;font-size:12px}th{background:#f4f4f4}figure{margin:1em 0}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>quantplan capacity report: {escape(plan.model)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def render_markdown(
    report: CapacityReport, *, today: date, max_price_age_days: int = DEFAULT_MAX_PRICE_AGE_DAYS
) -> str:
    """The same report as Markdown tables (charts as their data)."""
    plan = report.plan
    lines = [
        f"# Capacity plan: {plan.model}",
        "",
        f"**{'Feasible' if plan.feasible else 'Infeasible'}.** {plan.summary}",
        "",
        f"Traffic: {_volume(report.tokens_per_day)} tokens/day, peak x"
        f"{plan.targets.workload.peak_to_mean:g}.",
        "",
        "## $/month vs tokens/day (best option per family and device)",
        "",
        "| tokens/day | " + " | ".join(c.series for c in report.curves) + " |",
        "|---" * (len(report.curves) + 1) + "|",
    ]
    if report.curves:
        for k, point in enumerate(report.curves[0].points):
            cells = [_money(c.points[k].usd_per_month) for c in report.curves]
            lines.append(f"| {_volume(point.tokens_per_day)} | " + " | ".join(cells) + " |")
    for title, header, rows, note in _sections(report, today, max_price_age_days):
        lines += ["", f"## {title}", ""]
        if note:
            lines += [note, ""]
        if rows:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|---" * len(header) + "|")
            lines += [
                "| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows
            ]
    lines += ["", "## Assumptions", ""] + [f"- {a}" for a in plan.assumptions]
    return "\n".join(lines) + "\n"
