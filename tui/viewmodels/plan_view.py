"""What the advisor shows of a Plan: ranked option rows, Pareto points and "why not" lines.

Pure functions over the planner's :class:`~quantplan.planner.plan.Plan`; every number shown is one
the planner computed, carried with its basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from quantplan.planner.plan import Deployment, Estimate, Plan
from quantplan.planner.price_age import DEFAULT_MAX_PRICE_AGE_DAYS, describe_price
from quantplan.planner.spot import describe_spot_risk

BASIS_SHORT = {"measured": "meas", "interpolated": "interp", "modeled": "model", "published": "pub"}


@dataclass(frozen=True)
class OptionRow:
    """One ranked deployment option."""

    key: str
    rank: int
    chosen: bool
    method: str
    scheme: str
    engine: str
    instance: str
    pricing: str
    replicas: int
    usd_per_month: float
    usd_per_million_tokens: float
    ttft_p95_ms: Estimate
    quality_delta_pct: Estimate | None
    throughput: Estimate
    on_pareto_front: bool
    deployment: Deployment

    @property
    def basis(self) -> str:
        """Where the speed and quality numbers come from, compactly (T=TTFT, Q=quality)."""
        quality = _quality_short(self.quality_delta_pct)
        return f"T:{BASIS_SHORT[self.ttft_p95_ms.basis]} Q:{quality}"


def _quality_short(estimate: Estimate | None) -> str:
    """meas/pub for the model's own figure; brw for a borrowed one, prior for none at all."""
    if estimate is None:
        return "-"
    if estimate.evidence in ("same-family", "other-family"):
        return "brw"
    if estimate.evidence == "prior":
        return "prior"
    return BASIS_SHORT[estimate.basis]


@dataclass(frozen=True)
class WhyNotRow:
    family: str
    stage: str
    reason: str
    cost_ratio: float | None


@dataclass(frozen=True)
class ParetoPoint:
    usd_per_month: float
    quality_delta_pct: float
    label: str
    chosen: bool


def deployment_key(deployment: Deployment) -> str:
    """A stable row key: the same deployment gets the same key in every plan."""
    return (
        f"{deployment.scheme}|{deployment.engine}|{deployment.instance}|"
        f"{deployment.pricing}|{deployment.replicas}"
    )


def option_rows(plan: Plan) -> list[OptionRow]:
    """The choice, the alternatives and the Pareto members, cheapest first (Help says so); on
    equal cost the choice comes first."""
    front = {deployment_key(d) for d in plan.pareto_front}
    ordered: list[Deployment] = []
    seen: set[str] = set()
    candidates = [plan.choice] if plan.choice is not None else []
    candidates += [*plan.alternatives, *plan.pareto_front]
    for deployment in candidates:
        key = deployment_key(deployment)
        if key not in seen:
            seen.add(key)
            ordered.append(deployment)
    chosen_key = deployment_key(plan.choice) if plan.choice is not None else None
    # The alternatives list the best of each other family first, so it is not sorted by cost.
    ordered.sort(key=lambda d: (d.usd_per_month, deployment_key(d) != chosen_key))
    return [
        OptionRow(
            key=deployment_key(d),
            rank=rank,
            chosen=deployment_key(d) == chosen_key,
            method=d.method,
            scheme=d.scheme,
            engine=d.engine,
            instance=d.instance.name,
            pricing=d.pricing,
            replicas=d.replicas,
            usd_per_month=d.usd_per_month,
            usd_per_million_tokens=d.usd_per_million_tokens,
            ttft_p95_ms=d.metrics.ttft_p95_ms,
            quality_delta_pct=d.metrics.perplexity_increase_pct,
            throughput=d.metrics.output_tokens_per_s,
            on_pareto_front=deployment_key(d) in front,
            deployment=d,
        )
        for rank, d in enumerate(ordered, start=1)
    ]


def pareto_points(plan: Plan) -> list[ParetoPoint]:
    """Cost vs quality of the Pareto front (deployments without a quality figure are left out)."""
    chosen_key = deployment_key(plan.choice) if plan.choice is not None else None
    points = [
        ParetoPoint(
            usd_per_month=d.usd_per_month,
            quality_delta_pct=d.metrics.perplexity_increase_pct.value,
            label=f"{d.scheme} {d.instance.name}",
            chosen=deployment_key(d) == chosen_key,
        )
        for d in plan.pareto_front
        if d.metrics.perplexity_increase_pct is not None
    ]
    return sorted(points, key=lambda p: p.usd_per_month)


def why_not_rows(plan: Plan) -> list[WhyNotRow]:
    return [
        WhyNotRow(family=r.family, stage=r.stage, reason=r.reason, cost_ratio=r.cost_ratio)
        for r in plan.rejected
    ]


def format_estimate(estimate: Estimate | None, unit: str = "", digits: int = 0) -> str:
    """``value unit [low-high] basis`` for the details panel."""
    if estimate is None:
        return "no evidence"
    value = f"{estimate.value:,.{digits}f}{unit}"
    band = f"{estimate.low:,.{digits}f}-{estimate.high:,.{digits}f}"
    note = f" -- {estimate.note}" if estimate.note else ""
    return f"{value} [{band}] {estimate.basis}{note}"


def format_quality(estimate: Estimate | None) -> str:
    """A quality figure with what it rests on (the source model and scheme of a borrowed one),
    its band and its note."""
    from quantplan.planner.quality import describe_quality

    if estimate is None:
        return "no evidence"
    band = f"{estimate.low:,.2f}-{estimate.high:,.2f}%"
    note = f" -- {estimate.note}" if estimate.note else ""
    return f"{describe_quality(estimate)} [{band}]{note}"


def option_details(
    row: OptionRow, *, today: date, max_price_age_days: int = DEFAULT_MAX_PRICE_AGE_DAYS
) -> list[tuple[str, str]]:
    """Label/value lines for the highlighted option: every number with its basis and band, and
    the price's date (STALE when older than ``max_price_age_days`` on ``today``) and source."""
    d = row.deployment
    metrics = d.metrics
    return [
        ("deployment", d.label),
        ("instance", f"{d.instance} ({d.hardware}, {d.pricing}, ${d.usd_per_hour:.3f}/h)"),
        ("cost", f"${d.usd_per_month:,.0f}/month, ${d.usd_per_million_tokens:.3f}/M tokens"),
        ("price", describe_price(d, max_price_age_days, today)),
        *([("spot risk", describe_spot_risk(d.spot))] if d.spot else []),
        ("p95 TTFT", format_estimate(metrics.ttft_p95_ms, " ms")),
        ("p95 ITL", format_estimate(metrics.itl_p95_ms, " ms", 1)),
        ("tok/s/replica", format_estimate(metrics.output_tokens_per_s, "")),
        ("req/s/replica", format_estimate(metrics.requests_per_s, "", 2)),
        ("quality (ppl)", format_quality(metrics.perplexity_increase_pct)),
        ("memory", f"{metrics.memory_gb:.1f} of {metrics.memory_capacity_gb:.1f} GB"),
        ("concurrency", str(metrics.concurrency)),
    ]


def plan_headline(plan: Plan) -> str:
    """One line for the top of the results."""
    if plan.feasible and plan.choice is not None:
        c = plan.choice
        return (
            f"Deploy {c.scheme} on {c.engine}, {c.instance.name} x{c.replicas}: "
            f"${c.usd_per_month:,.0f}/month, ${c.usd_per_million_tokens:.3f}/M tokens "
            f"({plan.candidates_evaluated} options evaluated)"
        )
    binding = ", ".join(b.constraint for b in plan.binding_constraints)
    return "No plan meets every target" + (f" -- binding: {binding}" if binding else "")
