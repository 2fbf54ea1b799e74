"""What each candidate costs: replicas for peak load, $/month and $/million tokens.

Two pricings per instance: on-demand and spot (NaN where the catalog has no spot price).
Costs are arrays ``[option, instance, pricing]``; infeasible capacity gives ``inf``.
"""

from __future__ import annotations

import numpy as np

from quantplan.planner.targets import HOURS_PER_MONTH, Slos, Workload

PRICINGS = ("on_demand", "spot")
CAPACITY_TOLERANCE = 1e-9
"""Relative slack when comparing capacity with demand, so float noise never adds a replica."""


def replicas_needed(
    requests_per_s: np.ndarray, output_tokens_per_s: np.ndarray, workload: Workload, slos: Slos
) -> np.ndarray:
    """Replicas (float array, ``inf`` where a replica carries nothing) to carry peak load."""
    demand = workload.peak_requests_per_s * (1 - CAPACITY_TOLERANCE)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(requests_per_s > 0, np.ceil(demand / requests_per_s), np.inf)
        if slos.min_output_tokens_per_s is not None:
            floor = slos.min_output_tokens_per_s * (1 - CAPACITY_TOLERANCE)
            by_throughput = np.where(
                output_tokens_per_s > 0, np.ceil(floor / output_tokens_per_s), np.inf
            )
            needed = np.maximum(needed, by_throughput)
    return np.maximum(needed, 1.0)


def price_table(price_on_demand: np.ndarray, price_spot: np.ndarray) -> np.ndarray:
    """Prices per hour, shape (I, 2): on-demand and spot."""
    return np.stack([price_on_demand, price_spot], axis=-1)


def instances_needed(replicas: np.ndarray, replicas_per_instance: np.ndarray) -> np.ndarray:
    """Instances to rent for ``replicas`` (S, I) when each holds ``replicas_per_instance`` (I,)."""
    return np.ceil(replicas / replicas_per_instance[None, :])


def fleet_costs(
    instances: np.ndarray, prices: np.ndarray, workload: Workload
) -> tuple[np.ndarray, np.ndarray]:
    """$/month and $/million counted tokens, shape (S, I, 2); NaN/inf where not priced."""
    usd_per_month = instances[..., None] * prices[None, :, :] * HOURS_PER_MONTH
    usd_per_million = usd_per_month / (workload.counted_tokens_per_month / 1e6)
    return usd_per_month, usd_per_million


def monthly_cost(instances: int, usd_per_hour: float) -> float:
    """$/month of ``instances`` at ``usd_per_hour`` each."""
    return instances * usd_per_hour * HOURS_PER_MONTH


def cost_per_million_tokens(usd_per_month: float, workload: Workload) -> float:
    """$ per million counted tokens at the mean rate."""
    return usd_per_month / (workload.counted_tokens_per_month / 1e6)
