"""Turning one solved candidate into a :class:`Deployment` with estimates, bases and bands."""

from __future__ import annotations

import numpy as np
from quantplan.planner.cost import PRICINGS, cost_per_million_tokens, monthly_cost
from quantplan.planner.estimate import BAND_WIDTH, BASIS_NAMES, BASIS_NOTES
from quantplan.planner.optimize import Evaluation, Index
from quantplan.planner.plan import Deployment, Estimate, InstanceRef, PredictedMetrics


def _speed_estimate(value: float, code: int) -> Estimate:
    """An estimate with the uncertainty band of its basis."""
    width = BAND_WIDTH[code]
    return Estimate(
        value=round(value, 6),
        low=round(max(value * (1 - width), 0.0), 6),
        high=round(value * (1 + width), 6),
        basis=BASIS_NAMES[code],  # type: ignore[arg-type]
        note=BASIS_NOTES[code],
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
    usd_month = monthly_cost(rented, price)
    k = int(points.grid_index[s, i])
    code = int(perf.basis[s, i, k])
    concurrency = int(points.concurrency[s, i])
    memory = float(perf.weights_gb[s] + concurrency * perf.kv_gb_per_sequence)
    metrics = PredictedMetrics(
        ttft_p95_ms=_speed_estimate(float(points.ttft_p95_ms[s, i]), code),
        itl_p95_ms=_speed_estimate(float(points.itl_p95_ms[s, i]), code),
        output_tokens_per_s=_speed_estimate(float(points.output_tokens_per_s[s, i]), code),
        requests_per_s=_speed_estimate(float(points.requests_per_s[s, i]), code),
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
        pricing=PRICINGS[p],  # type: ignore[arg-type]
        replicas=count,
        instances=rented,
        replicas_per_instance=per_instance,
        usd_per_hour=price,
        price_date=instance.price_date,
        price_source=instance.price_source
        + (f"; spot: {instance.spot_statistic}" if p == 1 and instance.spot_statistic else ""),
        usd_per_month=round(usd_month, 4),
        on_demand_usd_per_month=round(monthly_cost(rented, float(space.price_on_demand[i])), 4),
        spot_usd_per_month=(
            round(monthly_cost(rented, float(space.price_spot[i])), 4)
            if np.isfinite(space.price_spot[i])
            else None
        ),
        usd_per_million_tokens=round(cost_per_million_tokens(usd_month, ev.targets.workload), 6),
        capacity_requests_per_s=round(count * float(points.requests_per_s[s, i]), 6),
        metrics=metrics,
    )
