"""Where each replica should run: the busiest load that still meets the SLOs.

A replica at concurrency ``b`` spends ``prefill`` seconds per request plus ``output x step / b``
decoding it, so it saturates at ``1 / (prefill + output x step / b)`` requests/s. It is planned
at a utilization ``u`` of that (at most :data:`TARGET_UTILIZATION`); p95 TTFT adds the p95 wait
for the replica's prefill capacity at that load (planner/queueing.py: M/D/1, the workload's
prompts having one length), so a tight TTFT objective is met by loading replicas less.
p95 ITL is the decode step stretched by the prefills interleaved into the running batch at that
load (``step / (1 - rate x prefill)``, the same time sharing the saturated throughput assumes)
times a jitter factor. Every (``b``, ``u``) on the grids is tried; the one carrying the most
requests/s inside the SLOs wins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from quantplan.planner.estimate import CONCURRENCY_GRID, PerformanceMap
from quantplan.planner.queueing import itl_under_load_s, p95_ttft_s
from quantplan.planner.targets import Slos, Workload
from quantplan.planner.uncertainty import ConfidenceFactors

TARGET_UTILIZATION = 0.85
"""Highest share of a replica's saturated throughput it is planned to carry at peak."""
UTILIZATION_LEVELS = (0.85, 0.7, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05)
"""Loads tried, highest first; lower loads shorten the prefill queue (TTFT) and interleave
fewer prefills into the running decodes (ITL)."""
ITL_P95_FACTOR = 1.2
"""p95 over mean inter-token gap: step-to-step jitter (the mean gap already counts the
prefills interleaved at the planned load)."""
ASSUMPTIONS: tuple[str, ...] = (
    f"replicas carry peak load at up to {TARGET_UTILIZATION:.0%} of saturated throughput "
    "(less when needed for the TTFT or ITL objective)",
    f"p95 ITL = {ITL_P95_FACTOR} x decode step / (1 - prefill utilization at that load); "
    "p95 TTFT = what a request holds the engine for before its first token (a fixed overhead "
    "plus the prefill, both fitted per engine and device kind from profiles' TTFT at one "
    "request, apart from the decode calibration) + p95 wait for that queue at that load "
    "(M/D/1: Poisson arrivals, one prompt length) + one decode step",
    "SLOs hold at the pessimistic edge of the band at the targets' confidence (TTFT and ITL "
    "high); replicas are counted at the low edge of their requests/s",
)


def p95_ttft_ms(prefill_s: np.ndarray, decode_s: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """p95 TTFT: prefill, the p95 wait of the prefill queue at ``rate`` (M/D/1), one step."""
    return p95_ttft_s(prefill_s, decode_s, rate) * 1000


def p95_itl_ms(prefill_s: np.ndarray, decode_s: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """p95 ITL: the decode step stretched by interleaved prefills at ``rate``, with jitter."""
    return itl_under_load_s(decode_s, prefill_s, rate) * ITL_P95_FACTOR * 1000


@dataclass(frozen=True)
class OperatingPoints:
    """Per option x instance: the chosen concurrency and what a replica then does."""

    ok: np.ndarray  # (S, I) some concurrency fits memory and meets the SLOs
    concurrency: np.ndarray  # (S, I) chosen concurrency (0 when not ok)
    grid_index: np.ndarray  # (S, I) index into CONCURRENCY_GRID
    requests_per_s: np.ndarray  # (S, I) planned requests/s per replica (0 when not ok)
    assured_requests_per_s: np.ndarray  # (S, I) the same at the band's low edge (sizes fleets)
    output_tokens_per_s: np.ndarray  # (S, I)
    ttft_p95_ms: np.ndarray  # (S, I)
    itl_p95_ms: np.ndarray  # (S, I)
    best_ttft_p95_ms: np.ndarray  # (S, I) lowest TTFT over concurrencies that fit memory
    best_itl_p95_ms: np.ndarray  # (S, I) lowest ITL over concurrencies that fit memory


def _meets(
    service: np.ndarray,
    prefill: np.ndarray,
    decode: np.ndarray,
    rate: np.ndarray,
    ttft_limit_ms: np.ndarray,
    itl_limit_ms: np.ndarray,
) -> np.ndarray:
    """Whether p95 TTFT and p95 ITL at ``rate`` are both within the cells' limits.
    ``service``: what each request holds the engine for before its first token (its request
    overhead and prefill: the TTFT queue's service time); ``prefill``: what the running
    decodes share their steps with."""
    return (p95_ttft_ms(service, decode, rate) <= ttft_limit_ms) & (
        p95_itl_ms(prefill, decode, rate) <= itl_limit_ms
    )


def _highest_valid_level(
    service: np.ndarray,
    prefill: np.ndarray,
    decode: np.ndarray,
    saturated: np.ndarray,
    ttft_limit_ms: np.ndarray,
    itl_limit_ms: np.ndarray,
) -> np.ndarray:
    """Per cell (1-D arrays): index of the highest load whose p95 TTFT and p95 ITL are within
    the cell's limits (the objectives over the cell's pessimistic factors; inf: none), or the
    number of levels when none is.

    TTFT and ITL only grow with load, so this equals trying every level. Most cells meet it at the
    highest load or miss it at the lowest, so those two are tested first and only the cells
    in between are binary-searched.
    """
    levels = np.array(UTILIZATION_LEVELS)
    count = len(levels)
    result = np.full(decode.shape, count, dtype=np.int64)
    top = _meets(service, prefill, decode, levels[0] * saturated, ttft_limit_ms, itl_limit_ms)
    result[top] = 0
    rest = np.flatnonzero(~top)
    bottom = _meets(
        service[rest],
        prefill[rest],
        decode[rest],
        levels[-1] * saturated[rest],
        ttft_limit_ms[rest],
        itl_limit_ms[rest],
    )
    middle = rest[bottom]  # meets the lowest load, misses the highest
    low = np.ones(middle.size, dtype=np.int64)
    high = np.full(middle.size, count - 1, dtype=np.int64)  # count - 1 is known to meet it
    serv, pre, dec, sat = service[middle], prefill[middle], decode[middle], saturated[middle]
    ttft_limit, itl_limit = ttft_limit_ms[middle], itl_limit_ms[middle]
    while (low < high).any():
        mid = (low + high) // 2
        meets = _meets(serv, pre, dec, levels[mid] * sat, ttft_limit, itl_limit)
        searching = low < high
        high = np.where(searching & meets, mid, high)
        low = np.where(searching & ~meets, mid + 1, low)
    result[middle] = high
    return result


def _search(
    decode: np.ndarray,
    prefill: np.ndarray,
    first_token: np.ndarray,
    max_sequences: np.ndarray,
    workload: Workload,
    slos: Slos,
    factors: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, ...]:
    """Best (rate, assured rate, grid index, TTFT, ITL, lowest TTFT, lowest ITL) per row
    (rows x K). ``factors`` (speed low, TTFT high, ITL high; rows x K) put each objective at
    the pessimistic edge of the band; the best cell carries the most requests/s there."""
    speed_low, ttft_high, itl_high = factors
    service = first_token[:, None]
    prefill = prefill[:, None]
    saturated = 1.0 / (prefill + workload.output_tokens * decode / CONCURRENCY_GRID)
    unloaded_itl_ms = decode * ITL_P95_FACTOR * 1000  # ITL only grows with load
    fits = max_sequences[:, None] >= CONCURRENCY_GRID
    valid = (
        fits if slos.itl_p95_ms is None else fits & (unloaded_itl_ms * itl_high <= slos.itl_p95_ms)
    )
    prefill_k = np.broadcast_to(prefill, decode.shape)
    service_k = np.broadcast_to(service, decode.shape)
    rate = np.full(decode.shape, -1.0)
    cells = np.flatnonzero(valid)  # search only where memory and ITL allow
    if slos.ttft_p95_ms is None and slos.itl_p95_ms is None:
        rate.ravel()[cells] = UTILIZATION_LEVELS[0] * saturated.ravel()[cells]
    else:
        cell_saturated = saturated.ravel()[cells]
        ttft_limit = (
            np.full(cells.size, np.inf)
            if slos.ttft_p95_ms is None
            else slos.ttft_p95_ms / ttft_high.ravel()[cells]
        )
        itl_limit = (
            np.full(cells.size, np.inf)
            if slos.itl_p95_ms is None
            else slos.itl_p95_ms / itl_high.ravel()[cells]
        )
        level = _highest_valid_level(
            service_k.ravel()[cells],
            prefill_k.ravel()[cells],
            decode.ravel()[cells],
            cell_saturated,
            ttft_limit,
            itl_limit,
        )
        levels = np.array(UTILIZATION_LEVELS)
        found = levels[np.minimum(level, len(levels) - 1)] * cell_saturated
        rate.ravel()[cells] = np.where(level < len(levels), found, -1.0)
    rows = np.arange(decode.shape[0])
    assured = np.where(rate > 0, rate * speed_low, rate)
    best_k = np.argmax(assured, axis=-1)
    best_rate = np.maximum(rate[rows, best_k], 0.0)
    best_assured = np.maximum(assured[rows, best_k], 0.0)
    pick = (rows, best_k)
    best_ttft = p95_ttft_ms(service[:, 0], decode[pick], best_rate)
    best_itl = p95_itl_ms(prefill[:, 0], decode[pick], best_rate)
    # TTFT and ITL only grow with load, so the lowest reachable ones are at the lowest load.
    fitting = np.flatnonzero(fits)
    quietest_rate = UTILIZATION_LEVELS[-1] * saturated.ravel()[fitting]
    lowest = []
    for latency, first in ((p95_ttft_ms, service_k), (p95_itl_ms, prefill_k)):
        quietest = np.full(decode.shape, np.inf)
        quietest.ravel()[fitting] = latency(
            first.ravel()[fitting], decode.ravel()[fitting], quietest_rate
        )
        lowest.append(quietest.min(axis=-1))
    return best_rate, best_assured, best_k, best_ttft, best_itl, lowest[0], lowest[1]


def select_operating_points(
    perf: PerformanceMap,
    workload: Workload,
    slos: Slos,
    live: np.ndarray | None = None,
    factors: ConfidenceFactors | None = None,
) -> OperatingPoints:
    """For each option x instance, the (concurrency, load) with the most requests/s in SLOs.

    ``live`` (S, I) limits the search to candidates worth it (e.g. compatible ones); the rest
    report no operating point. ``factors`` check the SLOs at the pessimistic edge of each
    cell's band (None: at the central estimate).
    """
    shape = perf.prefill_s.shape
    usable = perf.max_sequences >= 1
    rows = np.flatnonzero(usable if live is None else usable & live)
    k_count = len(CONCURRENCY_GRID)
    if factors is None:
        ones = np.ones((rows.size, k_count))
        row_factors = (ones, ones, ones)
    else:
        row_factors = factors.for_rows(rows)
    found = _search(
        perf.decode_step_s.reshape(-1, k_count)[rows], perf.prefill_s.reshape(-1)[rows],
        perf.first_token_s.reshape(-1)[rows], perf.max_sequences.reshape(-1)[rows],
        workload, slos, row_factors,
    )  # fmt: skip
    fills = (0.0, 0.0, 0, np.inf, np.inf, np.inf, np.inf)
    full = []
    for values, fill in zip(found, fills, strict=True):
        array = np.full(shape[0] * shape[1], fill, dtype=values.dtype)
        array[rows] = values
        full.append(array.reshape(shape))
    rate, assured, grid_index, ttft, itl, lowest_ttft, lowest_itl = full
    ok = rate > 0
    return OperatingPoints(
        ok=ok,
        concurrency=np.where(ok, CONCURRENCY_GRID[grid_index], 0).astype(np.int64),
        grid_index=grid_index,
        requests_per_s=rate,
        assured_requests_per_s=assured,
        output_tokens_per_s=rate * workload.output_tokens,
        ttft_p95_ms=ttft,
        itl_p95_ms=itl,
        best_ttft_p95_ms=lowest_ttft,
        best_itl_p95_ms=lowest_itl,
    )


def restrict_points(points: OperatingPoints, live: np.ndarray) -> OperatingPoints:
    """``points`` (selected over some cells) as if only ``live`` (S, I) of them had been
    searched: elsewhere no operating point, with the fills :func:`select_operating_points`
    gives. The search is cell by cell, so this equals searching ``live`` alone."""
    rate = np.where(live, points.requests_per_s, 0.0)
    ok = rate > 0
    return OperatingPoints(
        ok=ok,
        concurrency=np.where(ok, points.concurrency, 0),
        grid_index=np.where(live, points.grid_index, 0),
        requests_per_s=rate,
        assured_requests_per_s=np.where(live, points.assured_requests_per_s, 0.0),
        output_tokens_per_s=np.where(live, points.output_tokens_per_s, 0.0),
        ttft_p95_ms=np.where(live, points.ttft_p95_ms, np.inf),
        itl_p95_ms=np.where(live, points.itl_p95_ms, np.inf),
        best_ttft_p95_ms=np.where(live, points.best_ttft_p95_ms, np.inf),
        best_itl_p95_ms=np.where(live, points.best_itl_p95_ms, np.inf),
    )


def points_key(workload: Workload, slos: Slos) -> tuple[object, ...]:
    """What operating points depend on besides the time map: the request's output length and
    the SLOs a replica must meet, at their confidence. Not the volume, budget, quality caps
    or prices (nor ``min_output_tokens_per_s``, a fleet-level target)."""
    return (workload.output_tokens, slos.ttft_p95_ms, slos.itl_p95_ms, slos.confidence)


class OperatingPointsMemo:
    """Operating points of one candidate space and time map, per :func:`points_key`: a server
    asked about the same model at other volumes, and the what-ifs that drop one SLO, select
    them once per SLO set instead of once per evaluation.

    ``select(workload, slos)`` selects over every candidate worth searching; a narrower
    search (``live``) is that result restricted (:func:`restrict_points`), which is what
    searching the narrower set gives. Safe to share between threads: a race only selects
    twice.
    """

    def __init__(
        self, select: Callable[[Workload, Slos], OperatingPoints], capacity: int = 16
    ) -> None:
        self._select = select
        self._capacity = capacity
        self._points: OrderedDict[tuple[object, ...], OperatingPoints] = OrderedDict()
        self._lock = threading.Lock()

    def points(
        self, workload: Workload, slos: Slos, live: np.ndarray | None = None
    ) -> OperatingPoints:
        key = points_key(workload, slos)
        with self._lock:
            found = self._points.get(key)
            if found is not None:
                self._points.move_to_end(key)
        if found is None:
            found = self._select(workload, slos)
            with self._lock:
                self._points[key] = found
                while len(self._points) > self._capacity:
                    self._points.popitem(last=False)
        return found if live is None else restrict_points(found, live)
