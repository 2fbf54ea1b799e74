"""The planner's front door: targets + catalog snapshot in, a new Plan out.

``make_plan`` builds the candidate space, its time map and cost map, then solves and explains.
``prepare`` exposes the intermediate maps for the report and the TUI, which re-solve them under
other traffic volumes or prices without touching the catalog again.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from quantplan import __version__
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.catalog.vocabulary import DeviceKind
from quantplan.planner import estimate, hardware, offload, operating, uncertainty
from quantplan.planner.candidates import CandidateSpace, build_candidate_space
from quantplan.planner.defaults import assumed_defaults, with_latency_defaults
from quantplan.planner.deployment import build_deployment, with_scaling_bounds
from quantplan.planner.estimate import (
    NO_FIRST_TOKEN_EVIDENCE,
    PerformanceMap,
    estimate_performance,
)
from quantplan.planner.explain import (
    binding_constraints,
    describe_relaxations,
    family_rejections,
    label,
    relaxed_optima,
)
from quantplan.planner.fleet import FleetSolution, FleetType, prune_dominated, solve_mixed_fleet
from quantplan.planner.names import canonical_targets
from quantplan.planner.operating import OperatingPointsMemo
from quantplan.planner.optimize import (
    Evaluation,
    Index,
    cheapest,
    evaluate,
    pareto_front,
    points_memo,
    ranked,
)
from quantplan.planner.plan import Deployment, Plan, PlanProvenance, Relaxation
from quantplan.planner.targets import HOURS_PER_MONTH, Targets
from quantplan.planner.traits import trait_notes

ASSUMPTIONS = (
    hardware.ASSUMPTIONS
    + estimate.ASSUMPTIONS
    + operating.ASSUMPTIONS
    + (uncertainty.provenance(),)
)


@dataclass(frozen=True)
class PlanningContext:
    """The maps one plan is solved over: candidates, their timings, and their evaluation."""

    targets: Targets
    snapshot: CatalogSnapshot
    space: CandidateSpace
    perf: PerformanceMap
    evaluation: Evaluation
    memo: OperatingPointsMemo | None = field(default=None, compare=False, repr=False)
    """Operating points of ``space`` and ``perf`` per SLO set, shared by every context made
    from this one with :meth:`with_targets` (volume, budget and quality do not change them)."""

    def with_targets(self, targets: Targets) -> PlanningContext:
        """A context for other targets, reusing the maps when only volume, SLOs, quality caps
        or budget changed (see ``map_key``)."""
        new = with_latency_defaults(targets)
        if map_key(new) != map_key(self.targets):
            return prepare(new, self.snapshot)
        memo = self.memo or points_memo(self.space, self.perf)
        evaluation = evaluate(new, self.space, self.perf, memo=memo)
        return PlanningContext(new, self.snapshot, self.space, self.perf, evaluation, memo)


def map_key(targets: Targets) -> str:
    """What the candidate space and time map depend on: the model, the constraints, the
    request shape and the recovery benchmark whose evidence the space carries."""
    return "|".join(
        (
            targets.model if isinstance(targets.model, str) else targets.model.model_dump_json(),
            targets.constraints.model_dump_json(),
            str(targets.workload.input_tokens),
            str(targets.workload.output_tokens),
            str(targets.quality.recovery_benchmark),
        )
    )


class ContextCache:
    """The last few planning contexts of one catalog snapshot, so that a server answering
    many questions about the same model (only the rate, SLOs or budget differ) builds the
    candidate space and time map once: about two thirds of a plan's time.

    Only the newest snapshot's contexts are kept: a new snapshot (the catalog was read
    again) empties the cache, so memory stays at one snapshot and its maps.
    """

    def __init__(self, capacity: int = 16) -> None:
        self._capacity = capacity
        self._snapshot: CatalogSnapshot | None = None
        self._contexts: OrderedDict[str, PlanningContext] = OrderedDict()
        self._lock = threading.Lock()

    def context(self, targets: Targets, snapshot: CatalogSnapshot) -> PlanningContext:
        """The context ``prepare(targets, snapshot)`` gives, from the cache where it can."""
        wanted = with_latency_defaults(canonical_targets(targets, snapshot))
        key = map_key(wanted)
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot = snapshot
                self._contexts.clear()
            cached = self._contexts.get(key)
            if cached is not None:
                self._contexts.move_to_end(key)
        if cached is not None:
            return cached.with_targets(wanted)
        context = prepare(wanted, snapshot)
        with self._lock:
            if snapshot is not self._snapshot:  # a newer snapshot arrived meanwhile
                return context
            self._contexts[key] = context
            while len(self._contexts) > self._capacity:
                self._contexts.popitem(last=False)
        return context


def prepare(targets: Targets, snapshot: CatalogSnapshot) -> PlanningContext:
    """Build the candidate space, the time map and the evaluation for ``targets`` (names in
    them spelled as the catalog spells them)."""
    targets = with_latency_defaults(canonical_targets(targets, snapshot))
    space = build_candidate_space(targets, snapshot)
    perf = estimate_performance(space, snapshot, targets.workload)
    memo = points_memo(space, perf)
    evaluation = evaluate(targets, space, perf, memo=memo)
    return PlanningContext(targets, snapshot, space, perf, evaluation, memo)


def fleet_types(ev: Evaluation) -> list[FleetType]:
    """Deployment types a mixed fleet may use: every per-replica target met."""
    fleet_level = (
        "constraints.max_replicas",
        "budget.max_usd_per_month",
        "budget.max_usd_per_million_tokens",
        "constraints.spot_allowed",
    )
    mask = ev.mask_without(*fleet_level) & np.isfinite(ev.usd_per_month)
    if not ev.targets.constraints.spot_allowed:
        mask[:, :, 1] = False
    types = []
    for s, i, p in zip(*np.nonzero(mask), strict=True):
        price = ev.space.price_on_demand[i] if p == 0 else ev.space.price_spot[i]
        per_instance = int(ev.space.replicas_per_instance[i])
        types.append(
            FleetType(
                key=(int(s), int(i), int(p)),
                usd_per_hour=float(price),
                requests_per_s=per_instance * float(ev.points.assured_requests_per_s[s, i]),
                spot=bool(p == 1),
                replicas=per_instance,
                engine=ev.space.options[s].engine,
            )
        )
    return types


def solve_fleet(ev: Evaluation) -> FleetSolution | None:
    """The cheapest mixed fleet under ``ev``'s targets (MILP), or None."""
    t = ev.targets
    demand = t.workload.peak_requests_per_s
    if t.slos.min_output_tokens_per_s is not None:
        demand = max(demand, t.slos.min_output_tokens_per_s / t.workload.output_tokens)
    caps = []
    if t.budget.max_usd_per_month is not None:
        caps.append(t.budget.max_usd_per_month / HOURS_PER_MONTH)
    if t.budget.max_usd_per_million_tokens is not None:
        tokens_m = t.workload.counted_tokens_per_month / 1e6
        caps.append(t.budget.max_usd_per_million_tokens * tokens_m / HOURS_PER_MONTH)
    required = t.constraints.required_engines
    return solve_mixed_fleet(
        prune_dominated(fleet_types(ev), per_engine=bool(required)),
        demand,
        required_engines=required,
        max_replicas=t.constraints.max_replicas,
        max_types=t.constraints.max_fleet_types,
        max_spot_fraction=t.constraints.max_spot_fraction if t.constraints.spot_allowed else 0.0,
        max_usd_per_hour=min(caps) if caps else None,
    )


def _alternatives(ev: Evaluation, choice: Index | None, limit: int) -> list[Index]:
    """Best option of every other family first, then the next cheapest distinct options."""

    def key(index: Index) -> tuple[str, str, str, int]:
        option = ev.space.options[index[0]]
        machine = ev.space.machines[index[1]]
        name = ev.space.instances[index[1]].name
        return (option.scheme.name, option.engine, f"{name}/{machine.accelerator_count}", index[2])

    picked: list[Index] = []
    seen = {key(choice)} if choice else set()
    families = {ev.space.options[choice[0]].family} if choice else set()
    pool = ranked(ev, limit=500)
    for index in pool:
        family = ev.space.options[index[0]].family
        if family not in families:
            families.add(family)
            picked.append(index)
            seen.add(key(index))
    for index in pool:
        if len(picked) >= limit:
            break
        if key(index) not in seen:
            picked.append(index)
            seen.add(key(index))
    return picked[:limit]


def fleet_quality(fleet: list[Deployment]) -> str:
    from quantplan.planner.quality import fleet_quality as describe

    return describe(fleet)


def _summary(ev: Evaluation, fleet: list[Deployment], relaxations: list[Relaxation]) -> str:
    model = ev.space.shape.name
    if fleet:
        total = sum(d.usd_per_month for d in fleet)
        parts = "; ".join(
            f"{d.instances} x {d.instance.name} ({d.pricing.replace('_', '-')}"
            + (
                f", {d.replicas} replicas on {d.accelerator_count} GPU each"
                if d.replicas_per_instance > 1
                else ""
            )
            + f") with {d.scheme} on {d.engine}"
            for d in fleet
        )
        quality = fleet_quality(fleet)
        # A mixed fleet is as slow as its slowest deployment: quote the worst of each.
        ttft = max(d.metrics.ttft_p95_ms.value for d in fleet)
        itl = max(d.metrics.itl_p95_ms.value for d in fleet)
        bases = sorted({d.metrics.ttft_p95_ms.basis for d in fleet})
        if len(fleet) > 1:
            replicas = sum(d.replicas for d in fleet)
            parts = f"a mixed fleet of {replicas} replicas in {len(fleet)} deployments ({parts})"
        latency = "p95 TTFT up to" if len(fleet) > 1 else "p95 TTFT"
        itl_words = "p95 ITL up to" if len(fleet) > 1 else "p95 ITL"
        return (
            f"Serve {model} with {parts}: ${total:,.0f}/month, "
            f"${sum(d.usd_per_million_tokens for d in fleet):.4f}/M tokens; {latency} "
            f"~{ttft:,.0f} ms, {itl_words} ~{itl:,.1f} ms ({', '.join(bases)}), {quality}."
        )
    text = f"No deployment of {model} meets every target."
    if not ev.space.options or not ev.space.instances:
        missing = "quantization schemes" if not ev.space.options else "instance types"
        return f"{text} The catalog has no {missing}: import some with `quantplan catalog`."
    if relaxations:
        r = relaxations[0]
        text += (
            f" Nearest: relax {r.constraint} from {r.current} to {r.needed} -> "
            f"{r.deployment.label} at ${r.deployment.usd_per_month:,.0f}/month."
        )
    return text


def _missing_engines_summary(ev: Evaluation, required: tuple[str, ...]) -> str | None:
    """Why a fleet that must run ``required`` engines found none: the engines with no
    deployment meeting every per-replica target, if that is the reason."""
    engines = {t.engine for t in fleet_types(ev)}
    missing = [e for e in required if e not in engines]
    if not missing:
        return None
    return (
        f"No fleet of {ev.space.shape.name} can include {', '.join(missing)}: no deployment on "
        f"{'that engine' if len(missing) == 1 else 'those engines'} meets every per-replica "
        "target (SLOs, quality, memory, hardware support). Drop it from required_engines or "
        "relax those targets."
    )


_last_fingerprint: tuple[weakref.ref[CatalogSnapshot], str] | None = None


def catalog_fingerprint(snapshot: CatalogSnapshot) -> str:
    """A short content hash of the snapshot: two plans with the same one saw the same catalog.

    The snapshot's JSON, hashed: over a millisecond for the shipped catalog, so the last
    snapshot's is kept (by identity: snapshots are frozen) for a server planning against it.
    """
    global _last_fingerprint
    last = _last_fingerprint
    if last is not None and last[0]() is snapshot:
        return last[1]
    fingerprint = hashlib.sha256(snapshot.model_dump_json().encode()).hexdigest()[:16]
    _last_fingerprint = (weakref.ref(snapshot), fingerprint)
    return fingerprint


def plan_provenance(
    snapshot: CatalogSnapshot, fleet: list[Deployment], catalog_revision: str | None
) -> PlanProvenance:
    """What the plan was made with: this quantplan, the catalog, and the dates of the prices
    of the instances it deploys (read from the snapshot, never from a clock)."""
    dates: list[str] = []
    undated: list[str] = []
    by_key = {(i.cloud, i.name, i.region): i for i in snapshot.instances}
    for deployment in fleet:
        ref = deployment.instance
        record = by_key.get((ref.cloud, ref.name, ref.region))
        if record is not None and record.price_date:
            dates.append(record.price_date)
        else:
            undated.append(str(ref))
    return PlanProvenance(
        quantplan_version=__version__,
        catalog_revision=catalog_revision,
        catalog_fingerprint=catalog_fingerprint(snapshot),
        oldest_price_date=min(dates) if dates else None,
        newest_price_date=max(dates) if dates else None,
        undated_prices=tuple(sorted(set(undated))),
    )


def plan_from_context(
    context: PlanningContext, *, alternatives: int = 5, catalog_revision: str | None = None
) -> Plan:
    """Solve and explain a prepared context. ``catalog_revision`` (the catalog database's
    schema revision, read by the caller) is recorded in the plan's provenance."""
    ev = context.evaluation
    choice = cheapest(ev)
    chosen = build_deployment(ev, choice) if choice is not None else None
    fleet: list[Deployment] = [chosen] if chosen is not None else []
    required = context.targets.constraints.required_engines
    if context.targets.constraints.allow_mixed_fleet:
        solution = solve_fleet(ev)
        single = float(ev.usd_per_month[choice]) if choice else np.inf
        cheaper = solution is not None and solution.usd_per_hour * HOURS_PER_MONTH < single * (
            1 - 1e-9
        )
        # With engines required the fleet decides even when dearer: one type runs one engine.
        if required or cheaper:
            fleet = [] if solution is None else [
                build_deployment(ev, t.key, instances=n) for t, n in solution.counts
            ]  # fmt: skip
    mean_rate = context.targets.workload.mean_requests_per_s
    hourly = context.targets.workload.hourly_load

    def alone(deployment: Deployment) -> Deployment:
        """A deployment as the whole fleet: its floor for scaling carries all the mean load."""
        return with_scaling_bounds([deployment], mean_rate, hourly)[0]

    fleet = with_scaling_bounds(fleet, mean_rate, hourly)
    chosen = alone(chosen) if chosen is not None else None
    reference = float(ev.usd_per_month[choice]) if choice is not None else np.inf
    relaxed = relaxed_optima(ev, context.space, context.perf, reference, context.memo)
    feasible = bool(fleet)
    # Relaxations are shown for infeasible plans only; there each latency SLO is relaxed by
    # the least that works (a few more evaluations), ordered by the smallest change.
    explained = (
        describe_relaxations(relaxed, context.targets)
        if feasible
        else describe_relaxations(relaxed, context.targets, context.space, context.perf)
    )
    relaxations = [
        Relaxation(constraint=name, current=current, needed=needed, deployment=deployment)
        for name, current, needed, deployment in explained
    ]
    summary = _summary(ev, fleet, relaxations)
    if required and not feasible:
        summary = _missing_engines_summary(ev, required) or summary
    settings: list[tuple[str, DeviceKind, str, bool]] = [
        (d.engine, "gpu" if d.accelerator_count else "cpu", d.method, bool(d.gpu_layers))
        for d in fleet
    ]
    return Plan(
        targets=context.targets,
        model=context.space.shape.name,
        feasible=feasible,
        summary=summary,
        choice=chosen,
        fleet=tuple(fleet),
        fleet_usd_per_month=round(sum(d.usd_per_month for d in fleet), 4) if fleet else None,
        alternatives=tuple(
            alone(build_deployment(ev, x)) for x in _alternatives(ev, choice, alternatives)
        ),
        pareto_front=tuple(alone(build_deployment(ev, x)) for x in pareto_front(ev)),
        rejected=tuple(family_rejections(ev, choice)),
        binding_constraints=tuple(binding_constraints(ev, choice, relaxed)),
        relaxations=tuple(relaxations[:5]) if not feasible else (),
        assumptions=ASSUMPTIONS
        + (offload.ASSUMPTIONS if any(d.gpu_layers for d in fleet) else ())
        + trait_notes(context.snapshot, settings)
        + _first_token_notes(context.perf, settings)
        + context.space.price_notes,
        assumed=assumed_defaults(context.targets),
        candidates_evaluated=int(ev.feasible.size),
        provenance=plan_provenance(context.snapshot, fleet, catalog_revision),
    )


def _first_token_notes(
    perf: PerformanceMap, settings: list[tuple[str, DeviceKind, str, bool]]
) -> tuple[str, ...]:
    """What each deployment's TTFT rests on, once per engine and device kind (``settings`` as
    :func:`trait_notes` takes them)."""
    kinds = dict.fromkeys((engine, kind) for engine, kind, _, _ in settings)
    return tuple(
        estimate.first_token_note(
            engine, kind, perf.first_token_fits.get((engine, kind), NO_FIRST_TOKEN_EVIDENCE)
        )
        for engine, kind in kinds
    )


def make_plan(
    targets: Targets,
    snapshot: CatalogSnapshot,
    *,
    alternatives: int = 5,
    catalog_revision: str | None = None,
) -> Plan:
    """The cheapest plan meeting every target, with alternatives, Pareto front and reasons."""
    return plan_from_context(
        prepare(targets, snapshot), alternatives=alternatives, catalog_revision=catalog_revision
    )


__all__ = [
    "ContextCache",
    "PlanningContext",
    "label",
    "make_plan",
    "map_key",
    "plan_from_context",
    "prepare",
]
