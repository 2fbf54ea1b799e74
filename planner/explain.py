"""Why: what each rejected family lost on, which targets bind, and the nearest relaxed plans.

Everything is read off an :class:`Evaluation`'s per-target masks; relaxing an SLO re-selects the
operating points, so those re-evaluate the (cheap) last step with that SLO dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quantplan.planner.candidates import CandidateSpace
from quantplan.planner.deployment import build_deployment
from quantplan.planner.estimate import PerformanceMap
from quantplan.planner.operating import OperatingPointsMemo
from quantplan.planner.optimize import STAGES, Evaluation, Index, cheapest, evaluate
from quantplan.planner.plan import (
    BindingConstraint,
    Deployment,
    InstanceRef,
    PredictedMetrics,
    Rejection,
)
from quantplan.planner.targets import Slos, Targets

FIXED = {"pricing.available", "compatibility", "memory", "slos.latency"}
"""Masks that are facts of the catalog, not targets a user could relax."""
SLO_TARGETS = ("slos.ttft_p95_ms", "slos.itl_p95_ms", "slos.min_output_tokens_per_s")


def label(ev: Evaluation, index: Index) -> str:
    s, i, p = index
    option, instance = ev.space.options[s], ev.space.instances[i]
    spot = " (spot)" if p == 1 else ""
    machine = ev.space.machines[i]
    split = (
        f" ({machine.accelerator_count} GPU/replica)" if machine.replicas_per_instance > 1 else ""
    )
    return f"{option.family.upper()} {option.scheme.name} on {instance.name}{split}{spot}"


def _index_of(flat_position: np.intp, shape: tuple[int, ...]) -> Index:
    """The (option, instance, pricing) index of a flat position in an (S, I, 2) array."""
    s, i, p = np.unravel_index(flat_position, shape)
    return (int(s), int(i), int(p))


def _money(value: float) -> str:
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def _describe_stage(
    ev: Evaluation, stage: str, names: tuple[str, ...], reached: np.ndarray
) -> tuple[str, Index | None]:
    """Why no candidate in ``reached`` (S, I, 2) gets through ``stage``, with numbers, and the
    candidate that came closest (None when the stage is about filters)."""
    t, space, points = ev.targets, ev.space, ev.points
    pairs = np.asarray(reached.any(axis=2))

    def at(flat_position: np.intp) -> Index:
        s, i = np.unravel_index(flat_position, pairs.shape)
        return (int(s), int(i), 0)

    if stage == "constraints":
        if reached.size == 0:
            return "the catalog has no instance types (with known hardware) to run it on", None
        culprits = [n for n in names if not (reached & ev.passes[n]).any()]
        return "excluded by " + ", ".join(culprits or names), None
    if stage == "compatibility":
        codes = space.compat_reason[pairs]
        return space.reasons[int(np.bincount(codes).argmax())], None
    if stage == "memory":
        index = at(np.argmax(np.where(pairs, ev.perf.usable_memory_gb, -1)))
        s, i, _ = index
        need = ev.perf.weights_gb[s] + ev.perf.kv_gb_per_sequence
        return (
            f"needs {need:.1f} GB (weights {ev.perf.weights_gb[s]:.1f} GB + one sequence's KV) "
            f"> {ev.perf.usable_memory_gb[s, i]:.1f} GB usable on the largest allowed "
            f"({space.instances[i].name})"
        ), index
    if stage == "slo":
        ttft = np.where(pairs, points.best_ttft_p95_ms, np.inf)
        itl = np.where(pairs, points.best_itl_p95_ms, np.inf)
        if t.slos.ttft_p95_ms is not None and ttft.min() > t.slos.ttft_p95_ms:
            index = at(np.argmin(ttft))
            return (
                f"best p95 TTFT {ttft.min():,.0f} ms > {t.slos.ttft_p95_ms:,.0f} ms "
                f"({label(ev, index)})"
            ), index
        index = at(np.argmin(itl))
        if t.slos.itl_p95_ms is not None and itl.min() > t.slos.itl_p95_ms:
            return (
                f"best p95 ITL {itl.min():,.1f} ms > {t.slos.itl_p95_ms:,.1f} ms "
                f"({label(ev, index)})"
            ), index
        return (
            f"no concurrency meets the TTFT and ITL objectives at the pessimistic edge of the "
            f"{t.slos.confidence:.0%} band (central best: p95 TTFT {ttft.min():,.0f} ms, "
            f"ITL {itl.min():,.1f} ms; --confidence sets the share)"
        ), index
    if stage == "quality":
        return _describe_quality(ev, reached, pairs)
    if stage == "replicas":
        index = at(np.argmin(np.where(pairs, ev.replicas, np.inf)))
        need = ev.replicas[index[0], index[1]]
        return (
            f"needs {need:.0f} replicas > max {t.constraints.max_replicas} ({label(ev, index)})"
        ), index
    costs = np.where(reached, ev.usd_per_month, np.inf)
    best = _index_of(np.argmin(costs), costs.shape)
    if t.budget.max_usd_per_month is not None and costs.min() > t.budget.max_usd_per_month:
        return (
            f"cheapest {label(ev, best)} costs {_money(costs.min())}/month > budget "
            f"{_money(t.budget.max_usd_per_month)}"
        ), best
    per_million = np.where(reached, ev.usd_per_million_tokens, np.inf)
    best = _index_of(np.argmin(per_million), per_million.shape)
    return (
        f"cheapest {label(ev, best)} costs {_money(per_million.min())}/M tokens > cap "
        f"${t.budget.max_usd_per_million_tokens}"
    ), best


def _describe_quality(ev: Evaluation, reached: np.ndarray, pairs: np.ndarray) -> tuple[str, Index]:
    """Why the quality targets rule a family out: the figure (with what it rests on) of its
    closest option against the cap, or the evidence policy that does not accept its figure."""
    from quantplan.planner.quality import checked_value, describe_quality, policy_allows

    space, q = ev.space, ev.targets.quality
    options = np.flatnonzero(pairs.any(axis=1))
    s = int(options[0])
    reason = "no quality figure meets the targets"
    recovery = space.recovery or (None,) * len(space.options)
    checks = (
        ("quality.max_perplexity_increase_pct", space.ppl, q.max_perplexity_increase_pct, "%"),
        ("quality.max_kl_divergence", space.kl, q.max_kl_divergence, ""),
        ("quality.min_recovery_pct", recovery, q.min_recovery_pct, "%"),
    )
    for name, estimates, cap, unit in checks:
        if (reached & ev.passes[name]).any():
            reached = reached & ev.passes[name]
            continue
        if not any(policy_allows(estimates[o], q.evidence) for o in options):
            reason = (
                f"no figure the evidence policy '{q.evidence}' accepts "
                f"({space.options[s].scheme.name}: "
                f"{describe_quality(space.ppl[s])}); allow borrowing with --quality-evidence"
            )
            break
        higher = name == "quality.min_recovery_pct"
        still = np.flatnonzero(reached.any(axis=(1, 2)))
        known = {
            int(o): figure
            for o in still
            if (figure := estimates[o]) is not None and policy_allows(figure, q.evidence)
        }
        if not known:
            reason = f"no {q.recovery_benchmark} figure for any option of this family"
            break
        s = max(known, key=lambda o: checked_value(known[o], higher) * (1 if higher else -1))
        e = known[s]
        assert cap is not None
        what = (
            {"%": "perplexity", "": "KL"}[unit]
            if not higher
            else f"{q.recovery_benchmark} recovery"
        )
        digits = 4 if unit == "" else 2
        reason = (
            f"{what} {describe_quality(e, unit, digits)} on {space.options[s].scheme.name} "
            f"{'<' if higher else '>'} {'' if higher or unit == '' else '+'}{cap:g}{unit} "
            f"{'required' if higher else 'allowed'}"
        )
        break
    return reason, (s, int(np.argmax(pairs[s])), 0)


def _quality_versus(ev: Evaluation, s: int, c: int) -> str:
    """Two options' perplexity figures side by side, each with what it rests on."""
    from quantplan.planner.quality import describe_quality

    return f"perplexity {describe_quality(ev.space.ppl[s])} vs {describe_quality(ev.space.ppl[c])}"


def _rejection(
    ev: Evaluation, family: str, stage: str, reason: str, index: Index | None
) -> Rejection:
    if index is None:
        return Rejection(family=family, stage=stage, reason=reason)
    s, i, _ = index
    instance = ev.space.instances[i]
    return Rejection(
        family=family,
        stage=stage,
        reason=reason,
        scheme=ev.space.options[s].scheme.name,
        engine=ev.space.options[s].engine,
        instance=InstanceRef(cloud=instance.cloud, name=instance.name, region=instance.region),
    )


def family_rejections(ev: Evaluation, choice: Index | None) -> list[Rejection]:
    """For each family other than the chosen one: the first requirement it failed, or its cost."""
    families = sorted({o.family for o in ev.space.options})
    family_of = np.array([o.family for o in ev.space.options])
    chosen_family = ev.space.options[choice[0]].family if choice else None
    out: list[Rejection] = []
    for family in families:
        if family == chosen_family:
            continue
        reached = np.broadcast_to((family_of == family)[:, None, None], ev.shape).copy()
        for stage, names in STAGES:
            passed = reached.copy()
            for name in names:
                passed &= ev.passes[name]
            if not passed.any():
                reason, closest = _describe_stage(ev, stage, names, reached)
                out.append(_rejection(ev, family, stage, f"{family.upper()}: {reason}", closest))
                break
            reached = passed
        else:
            best = cheapest(ev, reached)
            if best is None or choice is None:
                continue
            ratio = float(ev.usd_per_month[best] / ev.usd_per_month[choice])
            s, c = best[0], choice[0]
            quality = _quality_versus(ev, s, c)
            if abs(ratio - 1) < 1e-9:
                ttft = ev.points.ttft_p95_ms
                reason = (
                    f"{label(ev, best)}: same cost as {label(ev, choice)}, no better "
                    f"({quality}; p95 TTFT {ttft[best[:2]]:,.0f} vs {ttft[choice[:2]]:,.0f} ms)"
                )
            else:
                reason = (
                    f"{label(ev, best)}: {ratio:.2f}x the cost of {label(ev, choice)} ({quality})"
                )
            rejection = _rejection(ev, family, "cost", reason, best)
            out.append(rejection.model_copy(update={"cost_ratio": round(ratio, 4)}))
    return out


def _without_slo(targets: Targets, name: str) -> Targets:
    field = name.split(".", 1)[1]
    slos = targets.slos.model_copy(update={field: None})
    return targets.model_copy(update={"slos": slos})


Relaxed = tuple[str, Evaluation, Index]


def relaxed_optima(
    ev: Evaluation,
    space: CandidateSpace,
    perf: PerformanceMap,
    reference: float = np.inf,
    memo: OperatingPointsMemo | None = None,
) -> list[Relaxed]:
    """For every target a user set: the cheapest candidate if only that target were dropped.

    With a finite ``reference`` (the chosen plan's $/month) the SLO what-ifs only look at
    candidates that could undercut it -- exact for every result cheaper than ``reference``,
    which is all that binding-constraint analysis needs. ``memo`` (over ``space`` and
    ``perf``) lends the what-ifs operating points already selected for their SLOs.
    """
    out: list[Relaxed] = []
    for name in ev.passes:
        if name in FIXED or ev.passes[name].all():
            continue
        best = cheapest(ev, ev.mask_without(name))
        if best is not None:
            out.append((name, ev, best))
    # Only candidates meeting every target that does not depend on the SLOs can win.
    independent = np.asarray(ev.mask_without(
        "slos.latency", "constraints.max_replicas", "budget.max_usd_per_month",
        "budget.max_usd_per_million_tokens",
    ).any(axis=2))  # fmt: skip
    if np.isfinite(reference) and any(getattr(ev.targets.slos, n[5:]) for n in SLO_TARGETS):
        # No latency objective at all gives each candidate its lowest possible cost.
        free = ev.targets.model_copy(update={"slos": Slos()})
        floor = evaluate(free, space, perf, live=independent, memo=memo).usd_per_month
        independent &= np.nan_to_num(floor, nan=np.inf).min(axis=2) < reference * (1 - 1e-9)
    for name in SLO_TARGETS:
        if getattr(ev.targets.slos, name.split(".", 1)[1]) is None:
            continue
        relaxed = evaluate(_without_slo(ev.targets, name), space, perf, live=independent, memo=memo)
        best = cheapest(relaxed)
        if best is not None:
            out.append((name, relaxed, best))
    return out


def _policy_needed(m: PredictedMetrics) -> str:
    """The evidence policy that accepts a deployment's perplexity figure."""
    kind = m.perplexity_increase_pct.evidence if m.perplexity_increase_pct else None
    return "any" if kind in ("other-family", "prior") else "same-family"


def _current_and_needed(name: str, t: Targets, deployment: Deployment) -> tuple[str, str, float]:
    """The target's value in ``t`` (the user's, not the relaxed one), the value the relaxed
    plan needs, and how big a change that is (needed over current, >= 1; inf: not a number)."""
    from quantplan.planner.quality import checked_value

    m = deployment.metrics
    fleet_tokens = m.output_tokens_per_s.value * deployment.replicas

    def ratio(current: float | None, needed: float, floor: bool = False) -> float:
        if not current or needed <= 0:
            return np.inf
        return current / needed if floor else needed / current

    b, q, s, c = t.budget, t.quality, t.slos, t.constraints
    ppl, kl = m.perplexity_increase_pct, m.kl_divergence
    table: dict[str, Callable[[], tuple[object, object, float]]] = {
        "budget.max_usd_per_month": lambda: (
            f"{_money(b.max_usd_per_month or 0)}/month",
            f"{_money(deployment.usd_per_month)}/month",
            ratio(b.max_usd_per_month, deployment.usd_per_month),
        ),
        "budget.max_usd_per_million_tokens": lambda: (
            f"${b.max_usd_per_million_tokens:g}/M tokens",
            f"${deployment.usd_per_million_tokens:.4f}/M tokens",
            ratio(b.max_usd_per_million_tokens, deployment.usd_per_million_tokens),
        ),
        "quality.max_perplexity_increase_pct": lambda: (
            f"+{q.max_perplexity_increase_pct:g}%",
            f"+{checked_value(ppl):.2f}%" if ppl else "?",
            ratio(q.max_perplexity_increase_pct, checked_value(ppl)) if ppl else np.inf,
        ),
        "quality.max_kl_divergence": lambda: (
            f"{q.max_kl_divergence:g}",
            f"{kl.value:.4f}" if kl else "?",
            ratio(q.max_kl_divergence, kl.value) if kl else np.inf,
        ),
        "quality.min_recovery_pct": lambda: (
            f"{q.min_recovery_pct}% on {q.recovery_benchmark}",
            f"{m.recovery_pct.low:.2f}%" if m.recovery_pct else "no figure",
            ratio(m.recovery_pct.low, q.min_recovery_pct or 0) if m.recovery_pct else np.inf,
        ),
        "quality.evidence": lambda: (q.evidence, _policy_needed(m), np.inf),
        "slos.ttft_p95_ms": lambda: (
            f"{s.ttft_p95_ms:,g} ms",
            f"{m.ttft_p95_ms.value:,.0f} ms",
            ratio(s.ttft_p95_ms, m.ttft_p95_ms.value),
        ),
        "slos.itl_p95_ms": lambda: (
            f"{s.itl_p95_ms:,g} ms",
            f"{m.itl_p95_ms.value:,.1f} ms",
            ratio(s.itl_p95_ms, m.itl_p95_ms.value),
        ),
        "slos.min_output_tokens_per_s": lambda: (
            f"{s.min_output_tokens_per_s:,g} tok/s",
            f"{fleet_tokens:,.0f} tok/s",
            ratio(s.min_output_tokens_per_s, fleet_tokens, floor=True),
        ),
        "constraints.max_replicas": lambda: (
            c.max_replicas,
            deployment.replicas,
            ratio(c.max_replicas, deployment.replicas),
        ),
        "constraints.spot_allowed": lambda: ("false", "true", np.inf),
        "constraints.device": lambda: (
            c.device,
            "gpu" if deployment.accelerator_count else "cpu",
            np.inf,
        ),
        "constraints.clouds": lambda: (",".join(c.clouds), deployment.instance.cloud, np.inf),
        "constraints.regions": lambda: (
            ",".join(c.regions),
            deployment.instance.region,
            np.inf,
        ),
        "constraints.families": lambda: (",".join(c.families), deployment.method, np.inf),
        "constraints.engines": lambda: (",".join(c.engines), deployment.engine, np.inf),
    }
    if name in table:
        current, needed, change = table[name]()
    else:  # instance/accelerator allow and deny lists, and anything added later
        listed = getattr(c, name.split(".", 1)[1], ())
        uses = deployment.hardware if "accelerator" in name else deployment.instance.name
        verb = "add" if name.endswith("_allow") else "remove"
        current, needed, change = ",".join(listed) or "(none)", f"{verb} {uses}", np.inf
    return str(current), str(needed), float(change)


def _round_up(value: float) -> float:
    """``value`` rounded up to two significant digits: a target a person would write."""
    if value <= 0 or not np.isfinite(value):
        return value
    step = 10.0 ** (np.floor(np.log10(value)) - 1)
    return float(np.ceil(value / step - 1e-9) * step)


def smallest_slo_relaxation(
    name: str, targets: Targets, space: CandidateSpace, perf: PerformanceMap
) -> Relaxed | None:
    """The least relaxation of one latency SLO that gives a feasible plan, and the cheapest
    plan under it -- not the cheapest plan with that SLO dropped, whose latency can be any
    size (a 39,000 s TTFT "needed" for a 5 s target when 72 s would do)."""
    field = name.split(".", 1)[1]
    if field not in ("ttft_p95_ms", "itl_p95_ms"):
        return None
    dropped = evaluate(_without_slo(targets, name), space, perf)
    reachable = dropped.feasible.any(axis=2)
    if not reachable.any():
        return None
    best = dropped.points.best_ttft_p95_ms if field == "ttft_p95_ms" else (
        dropped.points.best_itl_p95_ms
    )  # fmt: skip
    lowest = float(np.where(reachable, best, np.inf).min())
    # The lowest latency on its own may need more replicas than allowed; step up until a
    # plan fits (a few steps of 25 % at most before settling for the dropped SLO).
    needed = _round_up(lowest)
    for _ in range(12):
        slos = targets.slos.model_copy(update={field: needed})
        relaxed = evaluate(targets.model_copy(update={"slos": slos}), space, perf)
        index = cheapest(relaxed)
        if index is not None:
            return (name, relaxed, index)
        needed = _round_up(needed * 1.25)
    return None


def _least_change(name: str, ev: Evaluation) -> Index | None:
    """For a cap checked by a mask (replicas, quality): among candidates meeting every other
    target, the one needing the least of it, cheapest on ties; None for other targets."""
    metric = {
        "constraints.max_replicas": lambda: np.broadcast_to(ev.replicas[:, :, None], ev.shape),
        "quality.max_perplexity_increase_pct": lambda: np.broadcast_to(
            ev.ppl[:, None, None], ev.shape
        ),
        "quality.max_kl_divergence": lambda: np.broadcast_to(ev.kl[:, None, None], ev.shape),
    }.get(name)
    if metric is None:
        return None
    mask = ev.mask_without(name) & np.isfinite(ev.usd_per_month)
    if not mask.any():
        return None
    values = np.where(mask, metric(), np.inf)
    least = values.min()
    tied = mask & (values <= least * (1 + 1e-9))
    return cheapest(ev, tied)


def describe_relaxations(
    relaxed: list[Relaxed],
    targets: Targets,
    space: CandidateSpace | None = None,
    perf: PerformanceMap | None = None,
) -> list[tuple[str, str, str, Deployment]]:
    """(target, current value, needed value, deployment), smallest relative change first.

    ``targets`` are the user's: a relaxed evaluation's own targets no longer hold the value
    being relaxed. With ``space`` and ``perf``, latency SLOs are relaxed by the least amount
    that works (see :func:`smallest_slo_relaxation`) instead of being dropped.
    """
    rows = []
    for name, ev, index in relaxed:
        if space is not None and perf is not None and name in SLO_TARGETS:
            least = smallest_slo_relaxation(name, targets, space, perf)
            if least is not None:
                _, ev, index = least
        elif space is not None:
            index = _least_change(name, ev) or index
        deployment = build_deployment(ev, index)
        current, needed, change = _current_and_needed(name, targets, deployment)
        rows.append((change, deployment.usd_per_month, name, current, needed, deployment))
    rows.sort(key=lambda row: (row[0], row[1], row[2]))
    return [(name, current, needed, d) for _, _, name, current, needed, d in rows]


def binding_constraints(
    ev: Evaluation, choice: Index | None, relaxed: list[Relaxed]
) -> list[BindingConstraint]:
    """Targets whose removal gives a cheaper plan (feasible) or any plan (infeasible)."""
    out: list[BindingConstraint] = []
    reference = float(ev.usd_per_month[choice]) if choice is not None else np.inf
    for name, rev, index in relaxed:
        cost = float(rev.usd_per_month[index])
        if cost < reference * (1 - 1e-9):
            if choice is None:
                detail = f"without it, {label(rev, index)} would work at {_money(cost)}/month"
            else:
                saving = 1 - cost / reference
                detail = (
                    f"without it, {label(rev, index)} at {_money(cost)}/month "
                    f"({saving:.0%} cheaper)"
                )
            out.append(
                BindingConstraint(constraint=name, detail=detail, usd_per_month_without=cost)
            )
    if choice is None and not out:
        for _stage, names in STAGES:
            for name in names:
                failing = int((~ev.passes[name]).sum())
                if failing and name not in FIXED:
                    out.append(
                        BindingConstraint(
                            constraint=name,
                            detail=f"rules out {failing} of {ev.feasible.size} candidates; "
                            "no single target relaxed alone makes a plan feasible",
                        )
                    )
    return sorted(out, key=lambda b: (b.usd_per_month_without or np.inf, b.constraint))
