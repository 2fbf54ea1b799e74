"""Exhaustive reference solvers: slow, plain loops, used to check the optimizer's answers.

``brute_force_cost`` walks every (option, instance, pricing, concurrency, replica count) with
scalar arithmetic and the targets read directly, sharing only the time map (per-candidate decode
and prefill seconds, and the band factors of each cell at the targets' confidence) with the
planner. ``brute_force_fleet`` enumerates every replica vector.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import prepare
from quantplan.planner.defaults import with_latency_defaults
from quantplan.planner.estimate import CONCURRENCY_GRID
from quantplan.planner.fleet import FleetType
from quantplan.planner.operating import ITL_P95_FACTOR, UTILIZATION_LEVELS
from quantplan.planner.plan import Estimate
from quantplan.planner.spot import expected_spot_price, fallback_share, spot_interruption
from quantplan.planner.targets import HOURS_PER_MONTH, Targets
from quantplan.planner.uncertainty import confidence_factors

if TYPE_CHECKING:
    import numpy as np

SLACK = 1 - 1e-9


def _instance_allowed(targets: Targets, instance: object, hardware: object) -> bool:
    c = targets.constraints
    checks = (
        c.device == "any" or hardware.kind == c.device,  # type: ignore[attr-defined]
        not c.clouds or instance.cloud in c.clouds,  # type: ignore[attr-defined]
        not c.regions or instance.region in c.regions,  # type: ignore[attr-defined]
        not c.instance_allow or instance.name in c.instance_allow,  # type: ignore[attr-defined]
        instance.name not in c.instance_deny,  # type: ignore[attr-defined]
        not c.accelerator_allow or hardware.name in c.accelerator_allow,  # type: ignore[attr-defined]
        hardware.name not in c.accelerator_deny,  # type: ignore[attr-defined]
    )
    return all(checks)


def _best_rate(
    targets: Targets,
    decode: Sequence[float],
    prefill: float,
    first_token: float,
    max_seq: int,
    factors: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> float:
    """The most requests/s one replica carries at the low edge of its band, every SLO met at
    the pessimistic edge (``factors``: speed low, TTFT high, ITL high per concurrency)."""
    slos, out = targets.slos, targets.workload.output_tokens
    speed_low, ttft_high, itl_high = factors
    best = 0.0
    for k, batch in enumerate(CONCURRENCY_GRID):
        if batch > max_seq:
            continue
        for level in UTILIZATION_LEVELS:
            rate = level * (1.0 / (prefill + out * decode[k] / batch))
            rho = min(rate * prefill, 0.999)
            # decode steps share the replica with the prefills at this rate
            itl_ms = decode[k] / (1 - rho) * ITL_P95_FACTOR * 1000 * itl_high[k]
            if slos.itl_p95_ms is not None and itl_ms > slos.itl_p95_ms:
                continue
            # M/D/1 p95 wait: half the M/M/1 conditional mean, exponential tail from rho; a
            # request holds the engine for its overhead and prefill before its first token.
            service = first_token
            busy = min(rate * service, 0.999)
            wait = service / (2 * (1 - busy)) * math.log(max(busy * 20.0, 1.0))
            ttft_ms = (service + wait + decode[k]) * 1000
            if slos.ttft_p95_ms is not None and ttft_ms * ttft_high[k] > slos.ttft_p95_ms:
                continue
            best = max(best, rate * speed_low[k])
    return best


def _quality_ok(caps: list[tuple[float | None, Estimate | None, bool]], policy: str) -> bool:
    """Every set cap met by an accepted figure: the pessimistic band end unless the model's own."""
    for cap, estimate, higher in caps:
        if cap is None:
            continue
        if estimate is None:
            return False
        kind = estimate.evidence or "same-model"
        accepted = {
            "same-model": {"baseline", "same-model"},
            "same-family": {"baseline", "same-model", "same-family"},
        }.get(policy or "same-family")
        if accepted is not None and kind not in accepted:
            return False
        own = kind in ("baseline", "same-model")
        if higher:
            value = estimate.value if own else estimate.low
            if value < cap - 1e-12:
                return False
        else:
            value = estimate.value if own else estimate.high
            if value > cap + 1e-12:
                return False
    return True


def brute_force_cost(targets: Targets, snapshot: CatalogSnapshot) -> float | None:
    """The cheapest single-type fleet's $/month by exhaustive search, or None if infeasible."""
    targets = with_latency_defaults(targets)
    context = prepare(targets, snapshot)
    space, perf = context.space, context.perf
    factors = confidence_factors(
        [o.engine for o in space.options], perf.basis, targets.slos.confidence
    )
    c, q, b, w = targets.constraints, targets.quality, targets.budget, targets.workload
    tokens_m = w.counted_tokens_per_month / 1e6
    peak = w.peak_requests_per_s
    best: float | None = None
    for s, option in enumerate(space.options):
        if c.families and option.family not in c.families:
            continue
        if c.engines and option.engine not in c.engines:
            continue
        caps = [
            (q.max_perplexity_increase_pct, space.ppl[s], False),
            (q.max_kl_divergence, space.kl[s], False),
            (q.min_recovery_pct, space.recovery[s] if space.recovery else None, True),
        ]
        if not _quality_ok(caps, q.evidence):
            continue
        for i, instance in enumerate(space.instances):
            if not _instance_allowed(targets, instance, space.hardware[i]):
                continue
            if not space.compatible[s, i] or perf.max_sequences[s, i] < 1:
                continue
            rate = _best_rate(
                targets, list(perf.decode_step_s[s, i]), float(perf.prefill_s[s, i]),
                float(perf.first_token_s[s, i]), int(perf.max_sequences[s, i]),
                factors.at(s, i),
            )  # fmt: skip
            if rate <= 0:
                continue
            prices = [instance.price_per_hour]
            if c.spot_allowed and c.max_spot_fraction >= 1 and instance.spot_price_per_hour:
                # The spot price with its on-demand fallback counted (planner/spot.py).
                row = spot_interruption(snapshot, instance, space.hardware[i].kind)
                share = fallback_share(row.monthly_rate_high)
                spot = instance.spot_price_per_hour
                prices.append(float(expected_spot_price(spot, instance.price_per_hour, share)))
            for price in prices:
                per_instance = space.machines[i].replicas_per_instance
                for n in range(1, c.max_replicas + 1):
                    if n * rate < peak * SLACK:
                        continue
                    floor = targets.slos.min_output_tokens_per_s
                    if floor is not None and n * rate * w.output_tokens < floor * SLACK:
                        continue
                    cost = math.ceil(n / per_instance) * price * HOURS_PER_MONTH
                    within_month = b.max_usd_per_month is None or cost <= b.max_usd_per_month * (
                        1 + 1e-12
                    )
                    per_m = b.max_usd_per_million_tokens
                    within_per_m = per_m is None or cost / tokens_m <= per_m * (1 + 1e-12)
                    if within_month and within_per_m and (best is None or cost < best):
                        best = cost
                    break  # more replicas of this type never cost less
    return best


def brute_force_fleet(
    types: Sequence[FleetType],
    demand: float,
    *,
    max_replicas: int,
    max_types: int,
    max_spot_fraction: float = 1.0,
    max_usd_per_hour: float | None = None,
    required_engines: Sequence[str] = (),
) -> float | None:
    """The cheapest hourly price over every replica vector, or None if none is feasible."""
    best: float | None = None
    for counts in itertools.product(range(max_replicas + 1), repeat=len(types)):
        replicas = sum(n * t.replicas for n, t in zip(counts, types, strict=True))
        if replicas > max_replicas or sum(1 for n in counts if n) > max_types:
            continue
        engines = {t.engine for n, t in zip(counts, types, strict=True) if n}
        if not set(required_engines) <= engines:
            continue
        capacity = sum(n * t.requests_per_s for n, t in zip(counts, types, strict=True))
        od = sum(n * t.requests_per_s for n, t in zip(counts, types, strict=True) if not t.spot)
        if capacity < demand * SLACK or od < (1 - max_spot_fraction) * demand * SLACK:
            continue
        price = sum(n * t.usd_per_hour for n, t in zip(counts, types, strict=True))
        if max_usd_per_hour is not None and price > max_usd_per_hour * (1 + 1e-12):
            continue
        if best is None or price < best:
            best = price
    return best
