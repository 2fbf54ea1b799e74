"""Turning one solved candidate into a :class:`Deployment` with estimates, bases and bands."""

from __future__ import annotations

import math

import numpy as np

from quantplan.planner.cost import PRICINGS, cost_per_million_tokens, monthly_cost
from quantplan.planner.estimate import BASIS_NAMES, BASIS_NOTES
from quantplan.planner.offload import output_layer_gb
from quantplan.planner.optimize import Evaluation, Index
from quantplan.planner.plan import (
    Deployment,
    Estimate,
    InstanceRef,
    PredictedMetrics,
    SpotFallback,
)
from quantplan.planner.spot import SpotTerms
from quantplan.planner.uncertainty import TTFT_CATEGORY, shipped_band, speed_category


def _speed_estimate(
    value: float, code: int, engine: str, category: str, confidence: float, inverse: bool = False
) -> Estimate:
    """An estimate with the band its basis earned on held-out profiles of ``category`` at
    ``confidence``. ``inverse``: the value is a time per token, the band one of speeds."""
    ratios = shipped_band(engine, code, category, confidence)
    low, high = (1 / ratios.high, 1 / ratios.low) if inverse else (ratios.low, ratios.high)
    evidence = (
        f"{confidence:.0%} band from {ratios.points} held-out residuals ({ratios.group})"
        if ratios.points
        else f"{confidence:.0%} band: stated prior width (no held-out residuals of this basis)"
    )
    return Estimate(
        value=round(value, 6),
        low=round(max(value * low, 0.0), 6),
        high=round(value * high, 6),
        basis=BASIS_NAMES[code],
        note=f"{BASIS_NOTES[code]}; {evidence}",
    )


def spot_fallback(terms: SpotTerms, listed: float, instance_name: str, rented: int) -> SpotFallback:
    """A spot line's risk in the plan: the band it was priced with, and the fallback."""
    row = terms.row
    source = row.source + (f" (as of {row.as_of})" if row.as_of else "")
    return SpotFallback(
        listed_usd_per_hour=round(listed, 6),
        fallback=f"on-demand {instance_name}",
        monthly_interruption_rate=Estimate(
            value=row.monthly_rate_high,
            low=row.monthly_rate_low,
            high=row.monthly_rate_high,
            basis=row.basis,
            note=source,
        ),
        fallback_share=Estimate(
            value=round(terms.share_high, 6),
            low=round(terms.share_low, 6),
            high=round(terms.share_high, 6),
            basis="modeled",
            note="an interrupted replica's on-demand stand-in serves the rest of the month "
            "(constant hazard over the band; planner/spot.py)",
        ),
        interruptions_per_month=round(rented * row.monthly_rate_high, 4),
    )


def build_deployment(ev: Evaluation, index: Index, instances: int | None = None) -> Deployment:
    """The Deployment for candidate ``index``; ``instances`` fills that many instances (mixed
    fleets) instead of the replicas the evaluation needs."""
    s, i, p = index
    space, points, perf = ev.space, ev.points, ev.perf
    option, instance = space.options[s], space.instances[i]
    hardware, machine = space.hardware[i], space.machines[i]
    per_instance = machine.replicas_per_instance
    if instances is None:
        count = int(ev.replicas[s, i])
        rented = int(ev.instances[s, i])
    else:
        count, rented = instances * per_instance, instances
    price = float(space.price_on_demand[i] if p == 0 else space.price_spot[i])
    listed = space.price_spot if space.price_spot_listed is None else space.price_spot_listed
    usd_month = monthly_cost(rented, price)
    k = int(points.grid_index[s, i])
    code = int(perf.basis[s, i, k])
    concurrency = int(points.concurrency[s, i])
    memory = float(perf.weights_gb[s] + concurrency * perf.kv_gb_per_sequence)
    gpu_layers = int(perf.gpu_layers[s, i]) or None
    if gpu_layers:  # split by layers: the GPU holds its layers' weights and KV cache, and the
        # host the output layer (planner/offload.py)
        blocks = float(perf.weights_gb[s]) - output_layer_gb(space.shape, option.scheme)
        share = gpu_layers / space.shape.layers
        memory = share * (blocks + concurrency * perf.kv_gb_per_sequence)
    engine, confidence, speed = option.engine, ev.targets.slos.confidence, speed_category(k)
    metrics = PredictedMetrics(
        ttft_p95_ms=_speed_estimate(
            float(points.ttft_p95_ms[s, i]), code, engine, TTFT_CATEGORY, confidence
        ),
        itl_p95_ms=_speed_estimate(
            float(points.itl_p95_ms[s, i]), code, engine, speed, confidence, inverse=True
        ),
        output_tokens_per_s=_speed_estimate(
            float(points.output_tokens_per_s[s, i]), code, engine, speed, confidence
        ),
        requests_per_s=_speed_estimate(
            float(points.requests_per_s[s, i]), code, engine, speed, confidence
        ),
        speed_evidence=perf.evidence.get((s, i), ""),
        concurrency=max(concurrency, 1),
        memory_gb=round(memory, 3),
        memory_capacity_gb=round(float(perf.usable_memory_gb[s, i]), 3),
        perplexity_increase_pct=space.ppl[s],
        kl_divergence=space.kl[s],
        recovery_pct=space.recovery[s] if space.recovery else None,
    )
    return Deployment(
        model=space.shape.name,
        method=option.family,
        scheme=option.scheme.name,
        engine=option.engine,
        instance=InstanceRef(cloud=instance.cloud, name=instance.name, region=instance.region),
        hardware=hardware.name,
        accelerator_count=machine.accelerator_count,
        gpu_layers=gpu_layers,
        total_layers=space.shape.layers if gpu_layers else None,
        pricing=PRICINGS[p],
        replicas=count,
        instances=rented,
        replicas_per_instance=per_instance,
        usd_per_hour=price,
        price_date=instance.price_date,
        price_source=instance.price_source
        + (f"; spot: {instance.spot_statistic}" if p == 1 and instance.spot_statistic else ""),
        spot=spot_fallback(space.spot_terms[i], float(listed[i]), instance.name, rented)
        if p == 1
        else None,
        usd_per_month=round(usd_month, 4),
        on_demand_usd_per_month=round(monthly_cost(rented, float(space.price_on_demand[i])), 4),
        spot_usd_per_month=(
            round(monthly_cost(rented, float(space.price_spot[i])), 4)
            if np.isfinite(space.price_spot[i])
            else None
        ),
        usd_per_million_tokens=round(cost_per_million_tokens(usd_month, ev.targets.workload), 6),
        # At the band's low edge: the capacity the fleet was sized with.
        capacity_requests_per_s=round(count * float(points.assured_requests_per_s[s, i]), 6),
        metrics=metrics,
    )


def with_scaling_bounds(
    fleet: list[Deployment],
    mean_requests_per_s: float,
    hourly_load: tuple[float, ...] | None = None,
) -> list[Deployment]:
    """The fleet with each line's floor for scaling with load and what scaling costs.

    The floor is the replicas the line's share of the mean load needs. A line's share is its
    part of the fleet's planned capacity (the router spreads requests that way), so at a load
    of ``f`` times the mean it needs ``ceil(replicas x f x mean / fleet capacity)``, at least
    one and at most ``replicas``; the floor is that at ``f = 1``. ``hourly_load`` (the day's
    load over the mean, hour by hour) prices a day of such scaling: each hour the instances
    its replicas need, kept at the floor below the mean as the endpoint's autoscaler does."""
    capacity = sum(d.capacity_requests_per_s for d in fleet)

    def replicas_at(deployment: Deployment, load: float, floor: int) -> int:
        needed = deployment.replicas * load * mean_requests_per_s / capacity if capacity else 0.0
        # A hair under an integer is that integer (capacities are rounded to 6 places).
        return min(deployment.replicas, max(floor, math.ceil(needed - 1e-9)))

    def monthly(deployment: Deployment, replicas: int) -> float:
        instances = math.ceil(replicas / deployment.replicas_per_instance)
        return monthly_cost(instances, deployment.usd_per_hour)

    bounded = []
    for deployment in fleet:
        floor = replicas_at(deployment, 1.0, 1)
        expected = None
        if hourly_load:
            hours = [monthly(deployment, replicas_at(deployment, f, floor)) for f in hourly_load]
            expected = round(sum(hours) / len(hours), 4)
        update = {
            "min_replicas": floor,
            "floor_usd_per_month": round(monthly(deployment, floor), 4),
            "expected_usd_per_month": expected,
        }
        bounded.append(deployment.model_copy(update=update))
    return bounded
