"""Capacity planning: the same maps re-solved across traffic volumes and spot prices.

A view-model (pydantic, JSON-able) the HTML/Markdown report and the TUI render: $/month vs
tokens/day for the best option of each (family, device kind), the volumes where the cheapest
one changes, the Pareto front, headroom against traffic growth and sensitivity to spot prices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from pydantic import Field

from quantplan.planner.decide import PlanningContext, plan_from_context
from quantplan.planner.deployment import build_deployment
from quantplan.planner.optimize import Evaluation, cheapest, evaluate
from quantplan.planner.plan import Deployment, Plan
from quantplan.planner.targets import Budget, StrictModel, Targets

VOLUME_SPAN = 100.0
"""Curves run from 1/100 to 100x the targets' traffic."""
VOLUME_POINTS = 25
GROWTH_FACTORS = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
SPOT_MULTIPLIERS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


class CurvePoint(StrictModel):
    """The cheapest option of one series at one traffic volume."""

    tokens_per_day: float = Field(description="Counted tokens per day (mean)")
    usd_per_month: float | None = Field(description="Fleet $/month; None = no feasible option")
    deployment: str | None = Field(default=None, description="What that option is")
    ttft_p95_ms: float | None = Field(
        default=None, description="That option's p95 TTFT at its operating point, ms"
    )


class CostCurve(StrictModel):
    """$/month vs tokens/day for one (family, device kind) series."""

    series: str = Field(description="e.g. 'gguf on cpu'")
    points: tuple[CurvePoint, ...]


class Crossover(StrictModel):
    """A volume where the cheapest series changes."""

    tokens_per_day: float = Field(description="Volume of the change (bisected)")
    cheaper_below: str = Field(description="Series cheapest just below")
    cheaper_above: str = Field(description="Series cheapest just above")


class HeadroomPoint(StrictModel):
    """Traffic growth against the chosen fleet and the re-planned optimum."""

    growth: float = Field(description="Traffic multiplier over the targets")
    fits_current_fleet: bool = Field(description="The planned fleet still carries it")
    replicas_of_choice: int | None = Field(description="Replicas of the chosen type needed")
    usd_per_month_replanned: float | None = Field(description="Cheapest plan at this traffic")
    replanned: str | None = Field(default=None, description="That plan")


class SpotPoint(StrictModel):
    """Cheapest plan when spot prices are scaled."""

    spot_price_multiplier: float = Field(description="Spot price x this factor")
    usd_per_month: float | None
    deployment: str | None = None
    uses_spot: bool = False


class CapacityReport(StrictModel):
    """Everything the capacity-planning report shows."""

    plan: Plan
    tokens_per_day: float = Field(description="The targets' own volume")
    curves: tuple[CostCurve, ...]
    crossovers: tuple[Crossover, ...] = Field(description="Where the cheapest series changes")
    device_crossovers: tuple[Crossover, ...] = Field(
        description="Where the cheapest device kind (cpu or gpu) changes"
    )
    pareto_front: tuple[Deployment, ...]
    headroom_factor: float | None = Field(description="Planned capacity over peak demand")
    headroom: tuple[HeadroomPoint, ...]
    on_demand_usd_per_month: float | None = Field(description="Best plan without spot")
    spot: tuple[SpotPoint, ...]


def _series_masks(ev: Evaluation) -> dict[str, np.ndarray]:
    space = ev.space
    masks: dict[str, np.ndarray] = {}
    kinds = np.array([h.kind for h in space.hardware])
    families = np.array([o.family for o in space.options])
    for family in sorted(set(families)):
        for kind in ("gpu", "cpu"):
            mask = (families == family)[:, None] & (kinds == kind)[None, :]
            if mask.any():
                masks[f"{family} on {kind}"] = np.broadcast_to(mask[:, :, None], ev.shape)
    return masks


def _at_volume(context: PlanningContext, tokens_per_day: float) -> Evaluation:
    workload = context.targets.workload.model_copy(
        update={"tokens_per_day": tokens_per_day, "requests_per_s": None}
    )
    targets = context.targets.model_copy(update={"workload": workload, "budget": Budget()})
    return evaluate(targets, context.space, context.perf, context.evaluation.points)


Costs = dict[str, tuple[float, str, float]]
"""Per series: the cheapest feasible option's $/month, label and p95 TTFT (ms)."""


def _series_costs(ev: Evaluation, masks: dict[str, np.ndarray]) -> Costs:
    """Cheapest option per series among those meeting every target, the latency SLOs
    included: a crossover is only where the cheaper side also meets them."""
    out = {}
    for name, mask in masks.items():
        best = cheapest(ev, ev.feasible & mask)
        if best is not None:
            deployment = build_deployment(ev, best)
            out[name] = (
                float(ev.usd_per_month[best]),
                deployment.label,
                deployment.metrics.ttft_p95_ms.value,
            )
    return out


Winner = Callable[[Costs], str | None]


def _cheapest_series(costs: Costs) -> str | None:
    return min(costs, key=lambda k: (costs[k][0], k)) if costs else None


def _cheapest_device(costs: Costs) -> str | None:
    """'cpu' or 'gpu': the device kind of the cheapest series."""
    best = _cheapest_series(costs)
    return best.rsplit(" ", 1)[-1] if best else None


def _crossovers(
    context: PlanningContext,
    masks: dict[str, np.ndarray],
    grid: np.ndarray,
    per_volume: list[Costs],
    winner: Winner,
) -> list[Crossover]:
    """Volumes where ``winner`` changes between grid points, bisected to 12 steps."""
    found = []
    winners = [winner(costs) for costs in per_volume]
    for k in range(1, len(grid)):
        below, above = winners[k - 1], winners[k]
        if below is None or above is None or below == above:
            continue
        low, high = float(grid[k - 1]), float(grid[k])
        for _ in range(12):
            mid = math.sqrt(low * high)
            if winner(_series_costs(_at_volume(context, mid), masks)) == below:
                low = mid
            else:
                high = mid
        found.append(
            Crossover(
                tokens_per_day=math.sqrt(low * high), cheaper_below=below, cheaper_above=above
            )
        )
    return found


def _counted_tokens_per_day(targets: Targets) -> float:
    w = targets.workload
    return w.mean_requests_per_s * w.counted_tokens_per_request * 86_400.0


def capacity_report(context: PlanningContext) -> CapacityReport:
    """Re-solve ``context`` across volumes, growth and spot prices (pure, no I/O)."""
    plan = plan_from_context(context)
    volume = _counted_tokens_per_day(context.targets)
    grid = np.geomspace(volume / VOLUME_SPAN, volume * VOLUME_SPAN, VOLUME_POINTS)
    masks = _series_masks(context.evaluation)
    per_volume = [_series_costs(_at_volume(context, float(v)), masks) for v in grid]
    curves = tuple(
        CostCurve(
            series=name,
            points=tuple(
                CurvePoint(
                    tokens_per_day=float(v),
                    usd_per_month=costs[name][0] if name in costs else None,
                    deployment=costs[name][1] if name in costs else None,
                    ttft_p95_ms=costs[name][2] if name in costs else None,
                )
                for v, costs in zip(grid, per_volume, strict=True)
            ),
        )
        for name in masks
    )
    crossovers = _crossovers(context, masks, grid, per_volume, _cheapest_series)
    device_crossovers = _crossovers(context, masks, grid, per_volume, _cheapest_device)

    headroom_factor = None
    choice = plan.choice
    if plan.fleet:
        capacity = sum(d.capacity_requests_per_s for d in plan.fleet)
        headroom_factor = capacity / context.targets.workload.peak_requests_per_s
    headroom = []
    for growth in GROWTH_FACTORS:
        ev = _at_volume(context, volume * growth)
        best = cheapest(ev)
        per_replica = choice.metrics.requests_per_s.value if choice else 0.0
        needed = (
            math.ceil(ev.targets.workload.peak_requests_per_s / per_replica * (1 - 1e-9))
            if per_replica > 0
            else None
        )
        headroom.append(
            HeadroomPoint(
                growth=growth,
                fits_current_fleet=headroom_factor is not None and growth <= headroom_factor,
                replicas_of_choice=needed,
                usd_per_month_replanned=float(ev.usd_per_month[best]) if best else None,
                replanned=build_deployment(ev, best).label if best else None,
            )
        )

    on_demand = context.targets.constraints.model_copy(update={"spot_allowed": False})
    base = context.targets.model_copy(update={"budget": Budget(), "constraints": on_demand})
    points = context.evaluation.points  # same request shape and SLOs: same operating points
    od_ev = evaluate(base, context.space, context.perf, points)
    od_best = cheapest(od_ev)
    spot_targets = base.model_copy(
        update={"constraints": on_demand.model_copy(update={"spot_allowed": True})}
    )
    spot = []
    for multiplier in SPOT_MULTIPLIERS:
        listed = context.space.price_spot_listed
        space = context.space.with_spot_prices(
            (context.space.price_spot if listed is None else listed) * multiplier
        )
        ev = evaluate(spot_targets, space, context.perf, points)
        best = cheapest(ev)
        spot.append(
            SpotPoint(
                spot_price_multiplier=multiplier,
                usd_per_month=float(ev.usd_per_month[best]) if best else None,
                deployment=build_deployment(ev, best).label if best else None,
                uses_spot=bool(best and best[2] == 1),
            )
        )
    return CapacityReport(
        plan=plan,
        tokens_per_day=volume,
        curves=curves,
        crossovers=tuple(crossovers),
        device_crossovers=tuple(device_crossovers),
        pareto_front=plan.pareto_front,
        headroom_factor=headroom_factor,
        headroom=tuple(headroom),
        on_demand_usd_per_month=float(od_ev.usd_per_month[od_best]) if od_best else None,
        spot=tuple(spot),
    )
