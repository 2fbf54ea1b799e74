"""Solving over the cost and time maps: feasibility masks, the cheapest plan, the Pareto front.

:func:`evaluate` turns the candidate space and its time map into one pass/fail mask per target
(keyed by the target's dotted path) and the fleet cost of every candidate; everything after that
is array selection. Keeping one mask per target is what lets :mod:`explain` say which target
binds and what relaxing it would give, without re-deriving anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from quantplan.planner.candidates import CandidateSpace
from quantplan.planner.cost import fleet_costs, instances_needed, price_table, replicas_needed
from quantplan.planner.estimate import PerformanceMap
from quantplan.planner.operating import (
    OperatingPoints,
    OperatingPointsMemo,
    select_operating_points,
)
from quantplan.planner.targets import Slos, Targets, Workload
from quantplan.planner.uncertainty import confidence_factors

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "constraints",
        (
            "constraints.device",
            "constraints.clouds",
            "constraints.regions",
            "constraints.instance_allow",
            "constraints.instance_deny",
            "constraints.accelerator_allow",
            "constraints.accelerator_deny",
            "constraints.families",
            "constraints.engines",
            "constraints.spot_allowed",
            "pricing.available",
        ),
    ),
    ("compatibility", ("compatibility",)),
    ("memory", ("memory",)),
    ("slo", ("slos.latency",)),
    (
        "quality",
        (
            "quality.max_perplexity_increase_pct",
            "quality.max_kl_divergence",
            "quality.min_recovery_pct",
        ),
    ),
    ("replicas", ("constraints.max_replicas",)),
    ("budget", ("budget.max_usd_per_month", "budget.max_usd_per_million_tokens")),
)
"""Requirements in the order a candidate meets them; a rejection names the first it fails."""


@dataclass(frozen=True)
class Evaluation:
    """Every candidate ``[option, instance, pricing]`` under one set of targets."""

    targets: Targets
    space: CandidateSpace
    perf: PerformanceMap
    points: OperatingPoints
    replicas: np.ndarray  # (S, I) float, inf where a replica cannot meet the SLOs
    instances: np.ndarray  # (S, I) instances to rent for those replicas
    usd_per_month: np.ndarray  # (S, I, 2)
    usd_per_million_tokens: np.ndarray  # (S, I, 2)
    passes: Mapping[str, np.ndarray]  # target path -> (S, I, 2)
    feasible: np.ndarray  # (S, I, 2)
    ppl: np.ndarray  # (S,) perplexity increase estimate, %
    kl: np.ndarray  # (S,) KL estimate

    @property
    def shape(self) -> tuple[int, int, int]:
        s, i, p = self.usd_per_month.shape
        return (s, i, p)

    def mask_without(self, *names: str) -> np.ndarray:
        """Feasibility if the named targets were dropped."""
        mask = np.ones(self.shape, dtype=bool)
        for name, passed in self.passes.items():
            if name not in names:
                mask &= passed
        return mask


def _select_points(
    space: CandidateSpace, perf: PerformanceMap, workload: Workload, slos: Slos, search: np.ndarray
) -> OperatingPoints:
    factors = confidence_factors([o.engine for o in space.options], perf.basis, slos.confidence)
    return select_operating_points(perf, workload, slos, search, factors)


def points_memo(space: CandidateSpace, perf: PerformanceMap) -> OperatingPointsMemo:
    """A memo of the operating points :func:`evaluate` selects over ``space`` and ``perf``,
    to pass to it (and to the what-ifs) when the same map is evaluated many times."""
    return OperatingPointsMemo(
        lambda workload, slos: _select_points(space, perf, workload, slos, space.compatible)
    )


def _spread(mask: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``mask`` broadcast to ``shape`` as a contiguous read-only array. A broadcast view has
    zero strides, and numpy then loops over its last axis (two pricings) one cell at a time:
    every AND, ``any`` and ``all`` over such a view ran some 20x slower than over a copy. The
    copy is written one pricing plane at a time, for the same reason."""
    mask = mask.reshape((1,) * (len(shape) - mask.ndim) + mask.shape)
    spread = np.empty(shape, dtype=bool)
    for plane in range(shape[-1]):
        spread[..., plane] = mask[..., plane if mask.shape[-1] > 1 else 0]
    spread.flags.writeable = False
    return spread


def evaluate(
    targets: Targets,
    space: CandidateSpace,
    perf: PerformanceMap,
    points: OperatingPoints | None = None,
    live: np.ndarray | None = None,
    memo: OperatingPointsMemo | None = None,
) -> Evaluation:
    """Masks and costs of every candidate under ``targets`` (SLOs pick operating points).

    ``points`` may be passed when only the volume, budget, quality or pricing differ from the
    targets they were selected for (operating points depend on the request shape and SLOs).
    ``live`` (S, I) restricts the operating-point search to those candidates (others are then
    infeasible) -- for what-if solves that only need the optimum. ``memo`` (from
    :func:`points_memo` over the same ``space`` and ``perf``) gives the points when none are
    passed: the same points, selected once per SLO set.
    """
    n_s, n_i = len(space.options), len(space.instances)
    full = (n_s, n_i, 2)
    if points is None and memo is not None:
        points = memo.points(targets.workload, targets.slos, live)
    elif points is None:
        search = space.compatible if live is None else space.compatible & live
        points = _select_points(space, perf, targets.workload, targets.slos, search)
    # Replicas are counted at the low edge of their band: the fleet meets peak load at the
    # targets' confidence, not only when the central estimate is right.
    assured = points.assured_requests_per_s
    replicas = replicas_needed(
        assured, assured * targets.workload.output_tokens, targets.workload, targets.slos
    )
    replicas = np.where(points.ok, replicas, np.inf)
    prices = price_table(space.price_on_demand, space.price_spot)
    instances = instances_needed(replicas, space.replicas_per_instance)
    usd_month, usd_million = fleet_costs(instances, prices, targets.workload)
    ppl = np.array([e.value for e in space.ppl], dtype=float)
    kl = np.array([e.value for e in space.kl], dtype=float)

    def per_option(mask: np.ndarray) -> np.ndarray:
        return _spread(mask[:, None, None], full)

    def per_instance(mask: np.ndarray) -> np.ndarray:
        return _spread(mask[None, :, None], full)

    def per_pair(mask: np.ndarray) -> np.ndarray:
        return _spread(mask[:, :, None], full)

    c, b = targets.constraints, targets.budget
    spot_ok = c.spot_allowed and c.max_spot_fraction >= 1.0
    passes: dict[str, np.ndarray] = {}
    for name, mask in space.instance_masks.items():
        passes[name] = per_instance(mask)
    for name, mask in space.option_masks.items():
        passes[name] = per_option(mask)
    passes["constraints.spot_allowed"] = _spread(np.array([True, spot_ok]), full)
    passes["pricing.available"] = _spread(np.isfinite(prices)[None, :, :], full)
    passes["compatibility"] = per_pair(space.compatible)
    passes["memory"] = per_pair(perf.max_sequences >= 1)
    passes["slos.latency"] = per_pair(points.ok)
    for name, mask in quality_passes(space, targets).items():
        passes[name] = per_option(mask)
    passes["constraints.max_replicas"] = per_pair(replicas <= c.max_replicas)
    with np.errstate(invalid="ignore"):
        passes["budget.max_usd_per_month"] = (
            usd_month <= b.max_usd_per_month * (1 + 1e-12)
            if b.max_usd_per_month is not None
            else np.ones(full, bool)
        )
        passes["budget.max_usd_per_million_tokens"] = (
            usd_million <= b.max_usd_per_million_tokens * (1 + 1e-12)
            if b.max_usd_per_million_tokens is not None
            else np.ones(full, bool)
        )
    feasible = np.ones(full, dtype=bool)
    for mask in passes.values():
        feasible &= mask
    feasible &= np.isfinite(usd_month)
    return Evaluation(
        targets=targets,
        space=space,
        perf=perf,
        points=points,
        replicas=replicas,
        instances=instances,
        usd_per_month=usd_month,
        usd_per_million_tokens=usd_million,
        passes=MappingProxyType(passes),
        feasible=feasible,
        ppl=ppl,
        kl=kl,
    )


def quality_passes(space: CandidateSpace, targets: Targets) -> dict[str, np.ndarray]:
    """(S,) masks of the quality targets. A cap is checked against the option's own figure, or
    the pessimistic end of the band of a borrowed or modeled one; each cap fails
    options whose figure the evidence policy does not accept, for each cap that is set."""
    from quantplan.planner.quality import checked_value, policy_allows

    q, n_s = targets.quality, len(space.options)
    capped = [
        (q.max_perplexity_increase_pct, space.ppl, False),
        (q.max_kl_divergence, space.kl, False),
        (q.min_recovery_pct, space.recovery or (None,) * n_s, True),
    ]
    out: dict[str, np.ndarray] = {}
    names = (
        "quality.max_perplexity_increase_pct",
        "quality.max_kl_divergence",
        "quality.min_recovery_pct",
    )
    for name, (cap, estimates, higher) in zip(names, capped, strict=True):
        if cap is None:
            out[name] = np.ones(n_s, bool)
            continue
        values = [
            checked_value(e, higher)
            if e is not None and policy_allows(e, q.evidence)
            else (-np.inf if higher else np.inf)  # no figure the evidence policy accepts
            for e in estimates
        ]
        arr = np.array(values, dtype=float)
        out[name] = arr >= cap - 1e-12 if higher else arr <= cap + 1e-12
    return out


Index = tuple[int, int, int]


def _order(ev: Evaluation, flat: np.ndarray) -> np.ndarray:
    """Positions of ``flat`` cheapest first; ties go to the smaller quality loss, then the
    lower p95 TTFT, then catalog order, so answers are deterministic."""
    s, i, _ = np.unravel_index(flat, ev.shape)
    cost = ev.usd_per_month.ravel()[flat]
    return np.lexsort((flat, ev.points.ttft_p95_ms[s, i], ev.ppl[s], cost))


def _as_indices(ev: Evaluation, flat: np.ndarray) -> list[Index]:
    s, i, p = np.unravel_index(flat, ev.shape)
    return list(zip(s.tolist(), i.tolist(), p.tolist(), strict=True))


def _cheapest_first(ev: Evaluation, flat: np.ndarray, count: int | None) -> np.ndarray:
    """``flat`` sorted as :func:`_order` says, keeping at least the ``count`` cheapest (all
    candidates tied with the last kept one included); None keeps everything."""
    if count is not None and flat.size > count:
        costs = ev.usd_per_month.ravel()[flat]
        threshold = np.partition(costs, count - 1)[count - 1]
        flat = flat[costs <= threshold]
    return flat[_order(ev, flat)]


def ranked(ev: Evaluation, mask: np.ndarray | None = None, limit: int | None = None) -> list[Index]:
    """Candidates in ``mask`` (default: feasible), cheapest first (see :func:`_order`)."""
    chosen = ev.feasible if mask is None else mask & np.isfinite(ev.usd_per_month)
    ordered = _cheapest_first(ev, np.flatnonzero(chosen), limit)
    return _as_indices(ev, ordered[:limit])


def cheapest(ev: Evaluation, mask: np.ndarray | None = None) -> Index | None:
    """The cheapest candidate in ``mask`` (default: every target met), or None."""
    chosen = ev.feasible if mask is None else mask & np.isfinite(ev.usd_per_month)
    costs = np.where(chosen, ev.usd_per_month, np.inf).ravel()
    lowest = costs.min() if costs.size else np.inf
    if not np.isfinite(lowest):
        return None
    ties = np.flatnonzero(costs == lowest)  # usually one; ordered like ranked()
    return _as_indices(ev, ties[_order(ev, ties)[:1]])[0]


def pareto_front(ev: Evaluation, limit: int = 15) -> list[Index]:
    """The ``limit`` cheapest feasible candidates no other beats on $/month, quality loss and
    p95 TTFT at once."""
    everything = np.flatnonzero(ev.feasible)
    # A candidate can only be dominated by one that costs no more, so the cheapest front
    # points are found among the cheapest candidates; widen only if too few turn up.
    for count in (2000, None):
        front = _front(ev, _cheapest_first(ev, everything, count), limit)
        if len(front) >= limit or count is None or everything.size <= count:
            return front
    return front


def _front(ev: Evaluation, flat: np.ndarray, limit: int) -> list[Index]:
    """The Pareto front of ``flat`` (already cheapest first), its ``limit`` cheapest points."""
    s, i, _ = np.unravel_index(flat, ev.shape)
    ttft = ev.points.ttft_p95_ms[s, i]
    # Within one option quality is fixed: walking it cheapest first, keep only candidates
    # faster than every cheaper one. The 3-way filter then runs on that short list.
    keep = np.zeros(flat.size, dtype=bool)
    for option in np.unique(s):
        rows = np.flatnonzero(s == option)
        times = ttft[rows]
        faster_than_before = np.concatenate(([np.inf], np.minimum.accumulate(times)[:-1]))
        keep[rows[times < faster_than_before - 1e-9]] = True
    scored = sorted(
        (float(ev.usd_per_month[idx]), float(ev.ppl[idx[0]]), float(ttft_of), idx)
        for idx, ttft_of in zip(_as_indices(ev, flat[keep]), ttft[keep], strict=True)
    )
    front: list[tuple[float, float, float, Index]] = []
    for cost, ppl, time_ms, idx in scored:
        if all(
            not (c <= cost and q <= ppl and t <= time_ms) for c, q, t, _ in front
        ):  # neither dominated by nor equal to a point already on the front
            front.append((cost, ppl, time_ms, idx))
    return [idx for *_, idx in front[:limit]]
