"""What a spot price costs once interruptions are counted.

A spot replica the cloud takes back is replaced by an on-demand one of the same instance type
(the plan's fallback), and the stand-in serves until the plan is applied again: the fleet does
not move it back to spot on its own. So a spot line pays the spot price until its interruption
and the on-demand price after it. The catalog's ``spot_interruptions`` rows give the share of
spot instances interrupted in a month, as the band a cloud publishes; with a constant hazard
that is a rate of ``-ln(1 - r)`` per month, and the expected share of a month spent on the
stand-in is ``1 - r / -ln(1 - r)`` (about ``r / 2`` for small ``r``). The planner prices the
band's high edge, as it sizes capacity at the band's pessimistic edge.

A cloud without rows gets a ``modeled`` default spanning every published band (>20 % taken as
25 %), named as such in the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from quantplan.catalog.records import InstanceRecord, SpotInterruptionRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.catalog.vocabulary import DeviceKind
from quantplan.planner.plan import SpotFallback

DEFAULT_MONTHLY_RATE = (0.0, 0.25)
Price = TypeVar("Price", float, np.ndarray)


def default_spot_interruption(cloud: str, kind: DeviceKind) -> SpotInterruptionRecord:
    """The band a cloud without rows gets: every published band, marked modeled."""
    low, high = DEFAULT_MONTHLY_RATE
    return SpotInterruptionRecord(
        cloud=cloud,
        device_kind=kind,
        monthly_rate_low=low,
        monthly_rate_high=high,
        basis="modeled",
        source=f"no spot_interruptions row for {cloud} {kind.upper()} instances: the span of "
        "AWS's published bands (<5 % to >20 % a month, the top one taken as 25 %)",
    )


def spot_interruption(
    snapshot: CatalogSnapshot, instance: InstanceRecord, kind: DeviceKind
) -> SpotInterruptionRecord:
    """The instance type's own row, else its cloud's row for the device kind, else the default."""
    rows = snapshot.spot_interruption_by_key
    return (
        rows.get((instance.cloud, kind, instance.name))
        or rows.get((instance.cloud, kind, ""))
        or default_spot_interruption(instance.cloud, kind)
    )


def fallback_share(monthly_rate: float) -> float:
    """Expected share of a month a spot replica runs on its on-demand stand-in, when a share
    ``monthly_rate`` of spot instances is interrupted in a month (constant hazard)."""
    if monthly_rate <= 0:
        return 0.0
    if monthly_rate >= 1:
        return 1.0
    return 1.0 - monthly_rate / -math.log1p(-monthly_rate)


def expected_spot_price(spot: Price, on_demand: Price, share: Price) -> Price:
    """$/h of a spot slot that spends ``share`` of the month on an on-demand stand-in (scalars
    or arrays alike)."""
    return spot + share * np.maximum(on_demand - spot, 0.0)


@dataclass(frozen=True)
class SpotTerms:
    """One instance's spot risk, as the planner prices it."""

    row: SpotInterruptionRecord
    share_low: float  # on the stand-in, at the band's low edge
    share_high: float  # ... and its high edge (priced)

    @classmethod
    def of(cls, row: SpotInterruptionRecord) -> SpotTerms:
        return cls(row, fallback_share(row.monthly_rate_low), fallback_share(row.monthly_rate_high))


def describe_spot_risk(fallback: SpotFallback) -> str:
    """One line for a spot line: its interruption band, its basis and what replaces it."""
    rate = fallback.monthly_interruption_rate
    share = fallback.fallback_share
    return (
        f"{rate.low:.0%}-{rate.high:.0%} of instances interrupted a month ({rate.basis}); "
        f"about {fallback.interruptions_per_month:.2g} interruption(s) a month across the "
        f"line, each replaced by {fallback.fallback} for the rest of the month: "
        f"{share.high:.1%} of the month on on-demand, priced in"
    )
