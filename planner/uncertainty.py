"""Uncertainty bands from the model's held-out residuals, and SLOs checked at a confidence.

``bench/prediction_accuracy.py`` predicts every seed profile from a catalog without its source
and writes the residuals ``ln(measured / predicted)`` per engine, basis and category to
:mod:`residual_bands` (with the commit and date it ran at). A band at confidence ``c`` is
``[predicted x exp(r_low), predicted x exp(r_high)]``, where ``r_high`` is the
``ceil((n + 1) c)``-th smallest of the group's ``n`` residuals and ``r_low`` as far from the other
end (split-conformal ranks): each edge is a one-sided bound that a new point, exchangeable with
the held-out ones, stays within with probability at least ``c``. Plain sample quantiles promise
that only as ``n`` grows; on the small groups most vLLM and TTFT evidence sits in they held for
74 % of held-out points where 80 % was stated. An SLO is met at confidence
``c`` when it holds at the pessimistic edge (TTFT and ITL high, throughput low), so a replica's
capacity is counted at the low edge and the fleet gets the headroom that implies.

Three rules keep small samples from flattering a plan or its band: an edge never lies on the
optimistic side of the central estimate (a model that over-predicted TTFT on three points earns
no discount); the optimistic edge reaches at least as far as the pessimistic one, mirrored in
log space (residuals from a few sources lean whichever way those sources erred, and the next
source may err the other way; the pessimistic edge, the one SLOs are checked at, stays as
fitted); and a group states an edge at confidence ``c`` only with at least :data:`MIN_POINTS`
residuals and enough of them for that rank (``ceil((n + 1) c) <= n``: 9 at 0.9, 19 at 0.95);
with fewer, the lookup widens (both modeled bases pooled, then every engine, then every
category of the basis), and with none enough it falls back to the stated prior width of the
basis, marked ``prior``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from quantplan.planner import residual_bands
from quantplan.planner.estimate import BAND_WIDTH

MIN_POINTS = 3
"""Fewest held-out residuals a group needs before its edges are trusted, at any confidence."""
PRIOR_WIDTH = BAND_WIDTH
"""Relative half-width per basis code when no held-out residual covers it (stated, not fitted)."""
BASIS_GROUP = ("default", "calibrated", "same-setting", "same-setting", "same-setting")
"""Residual group of each basis code of :mod:`estimate` (interpolated, measured and published
estimates all rest on profiles of the same setting)."""
MODELED_GROUPS = ("default", "calibrated")
SPEED_CATEGORIES = ("batch1_decode", "throughput_at_concurrency")
TTFT_CATEGORY = "ttft_under_load"
OPTIMISTIC_HIGH = SPEED_CATEGORIES
"""Categories whose high edge is the optimistic one (speeds); for TTFT it is the low edge."""
Residuals = Mapping[tuple[str, str, str], Sequence[float]]


@dataclass(frozen=True)
class BandRatios:
    """Measured-over-predicted ratios at the two edges of a band, and what they rest on."""

    low: float  # <= 1
    high: float  # >= 1
    points: int  # residuals behind it; 0 = the prior width
    group: str  # e.g. "vllm / modeled / ttft_under_load", or "prior"


def _lookup_keys(engine: str, code: int, category: str) -> list[tuple[str, str, str]]:
    group = BASIS_GROUP[code]
    pooled = ["modeled"] if group in MODELED_GROUPS else []
    keys = [(engine, group, category)] + [(engine, g, category) for g in pooled]
    keys += [("*", group, category)] + [("*", g, category) for g in pooled]
    return [*keys, ("*", group, "*")]


def conformal_rank(n: int, confidence: float) -> int | None:
    """The rank (1-based, from the low end) of the residual that bounds a new point from above
    with probability at least ``confidence``: ``ceil((n + 1) c)``; None when ``n`` residuals are
    too few to say that at ``c``."""
    rank = math.ceil((n + 1) * confidence - 1e-9)  # the epsilon: 10 x 0.9 is 9, not 9.000..1
    return max(rank, 1) if rank <= n else None


def band_ratios(
    engine: str,
    code: int,
    category: str,
    confidence: float,
    residuals: Residuals | None = None,
) -> BandRatios:
    """The band edges (as measured / predicted ratios) for one engine, basis code, category.

    A group too small for the rank still bounds the band: its most extreme residuals are edges
    the wider group's may not be inside of (else asking for more confidence could narrow a band,
    when the pooled group erred less than this engine's own points did)."""
    table = residual_bands.RESIDUALS if residuals is None else residuals
    lowest, highest = 0.0, 0.0  # log ratios: the extremes of the groups passed over
    for key in _lookup_keys(engine, code, category):
        found = sorted(table.get(key, ()))
        rank = conformal_rank(len(found), confidence)
        if len(found) < MIN_POINTS or rank is None:
            if found:
                lowest, highest = min(lowest, found[0]), max(highest, found[-1])
            continue
        low = math.exp(min(found[len(found) - rank], lowest))
        high = math.exp(max(found[rank - 1], highest))
        if category in OPTIMISTIC_HIGH:
            high = max(high, 1 / low)
        else:
            low = min(low, 1 / high)
        return BandRatios(min(low, 1.0), max(high, 1.0), len(found), " / ".join(key))
    width = PRIOR_WIDTH[code]
    low, high = min(1 - width, math.exp(lowest)), max(1 + width, math.exp(highest))
    return BandRatios(max(low, 0.0), high, 0, "prior")


@lru_cache(maxsize=256)
def _cached(engine: str, code: int, category: str, confidence: float) -> BandRatios:
    return band_ratios(engine, code, category, confidence)


def shipped_band(engine: str, code: int, category: str, confidence: float) -> BandRatios:
    """:func:`band_ratios` over the checked-in table (cached: plans ask the same few)."""
    return _cached(engine, int(code), category, float(confidence))


def speed_category(grid_index: int) -> str:
    """Decode at one request is its own category; every larger batch is throughput."""
    return SPEED_CATEGORIES[0] if grid_index == 0 else SPEED_CATEGORIES[1]


@dataclass(frozen=True)
class ConfidenceFactors:
    """Pessimistic over central, at one confidence, for the cells of a time map: small
    tables per (engine, basis code[, category]) looked up only for the rows asked (a plan at
    scale searches a fraction of its option x instance pairs)."""

    speed_table: np.ndarray  # (E, codes, 2) low edge of speed, batch 1 / larger batches
    ttft_table: np.ndarray  # (E, codes) high edge of TTFT
    engine_index: np.ndarray  # (S,) row of each option in the tables
    basis: np.ndarray  # (S, I, K) basis codes of the time map

    def for_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(speed low, TTFT high, ITL high), each (len(rows), K), for flat (S x I) ``rows``."""
        _, i_count, k = self.basis.shape
        codes = self.basis.reshape(-1, k)[rows].astype(np.int64)
        engines = self.engine_index[rows // max(i_count, 1)][:, None]
        category = (np.arange(k) > 0).astype(np.int64)[None, :]
        speed_low = self.speed_table[engines, codes, category]
        # ITL is the inverse of decode speed: a model that over-predicts speed under-predicts
        # ITL by the same ratio.
        return speed_low, self.ttft_table[engines, codes], 1.0 / np.maximum(speed_low, 1e-9)

    def at(self, s: int, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same for one (option, instance) pair, each (K,)."""
        row = np.array([s * self.basis.shape[1] + i])
        speed_low, ttft_high, itl_high = self.for_rows(row)
        return speed_low[0], ttft_high[0], itl_high[0]


def confidence_factors(
    engines: Sequence[str], basis: np.ndarray, confidence: float
) -> ConfidenceFactors:
    """Factors for the cells of a time map whose basis codes are ``basis`` (S, I, K)."""
    names = sorted(set(engines))
    codes = len(PRIOR_WIDTH)
    speed = np.ones((max(len(names), 1), codes, 2))
    ttft = np.ones((max(len(names), 1), codes))
    for e, engine in enumerate(names):
        for code in range(codes):
            for c, category in enumerate(SPEED_CATEGORIES):
                speed[e, code, c] = shipped_band(engine, code, category, confidence).low
            ttft[e, code] = shipped_band(engine, code, TTFT_CATEGORY, confidence).high
    engine_index = np.array([names.index(e) for e in engines], dtype=np.int64)
    return ConfidenceFactors(speed, ttft, engine_index, basis)


def provenance() -> str:
    """Where the residual table came from, for plan assumptions."""
    source = residual_bands.SOURCE
    return (
        f"bands and SLO checks at a confidence use held-out residuals of "
        f"{source['points']} profiles from {source['sources']} sources "
        f"({source['bench']} at commit {source['commit']}, {source['date']}); an edge is never "
        "on the optimistic side of the estimate; an edge at confidence c is the "
        "ceil((n + 1) c)-th of a group's n residuals, and groups too small for that rank "
        "widen to pooled groups (their extremes still bounding the band), else the stated "
        "prior width of the basis"
    )
