"""Where each replica should run: the busiest load that still meets the SLOs.

A replica at concurrency ``b`` spends ``prefill`` seconds per request plus ``output x step / b``
decoding it, so it saturates at ``1 / (prefill + output x step / b)`` requests/s. It is planned
at a utilization ``u`` of that (at most :data:`TARGET_UTILIZATION`); p95 TTFT adds the M/M/1 p95
queueing delay for the prefill of a new request at that load, so a tight TTFT objective is met
by loading replicas less. p95 ITL is the decode step times a jitter factor. Every (``b``, ``u``)
on the grids is tried; the one carrying the most requests/s inside the SLOs wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from quantplan.planner.estimate import CONCURRENCY_GRID, PerformanceMap
from quantplan.planner.targets import Slos, Workload

TARGET_UTILIZATION = 0.85
"""Highest share of a replica's saturated throughput it is planned to carry at peak."""
UTILIZATION_LEVELS = (0.85, 0.7, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05)
"""Loads tried, highest first; lower loads shorten the prefill queue (TTFT)."""
ITL_P95_FACTOR = 1.2
"""p95 over mean decode step: prefills interleaved into the batch stretch some steps."""
ASSUMPTIONS: tuple[str, ...] = (
    f"replicas carry peak load at up to {TARGET_UTILIZATION:.0%} of saturated throughput "
    "(less when needed for the TTFT objective)",
    f"p95 ITL = {ITL_P95_FACTOR} x decode step; p95 TTFT = prefill + M/M/1 p95 wait for the "
    "prefill queue at that load + one decode step",
)


def p95_ttft_ms(prefill_s: np.ndarray, decode_s: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """p95 TTFT: prefill, the M/M/1 p95 wait of the prefill queue at ``rate``, one step."""
    rho = np.minimum(rate * prefill_s, 0.999)
    wait = np.where(rho > 0.05, prefill_s / (1 - rho) * np.log(np.maximum(rho, 0.05) / 0.05), 0.0)
    return (prefill_s + wait + decode_s) * 1000


@dataclass(frozen=True)
class OperatingPoints:
    """Per option x instance: the chosen concurrency and what a replica then does."""

    ok: np.ndarray  # (S, I) some concurrency fits memory and meets the SLOs
    concurrency: np.ndarray  # (S, I) chosen concurrency (0 when not ok)
    grid_index: np.ndarray  # (S, I) index into CONCURRENCY_GRID
    requests_per_s: np.ndarray  # (S, I) planned requests/s per replica (0 when not ok)
    output_tokens_per_s: np.ndarray  # (S, I)
    ttft_p95_ms: np.ndarray  # (S, I)
    itl_p95_ms: np.ndarray  # (S, I)
    best_ttft_p95_ms: np.ndarray  # (S, I) lowest TTFT over concurrencies that fit memory
    best_itl_p95_ms: np.ndarray  # (S, I) lowest ITL over concurrencies that fit memory


def select_operating_points(
    perf: PerformanceMap, workload: Workload, slos: Slos
) -> OperatingPoints:
    """For each option x instance, the (concurrency, load) with the most requests/s in SLOs."""
    decode = perf.decode_step_s
    prefill = perf.prefill_s[..., None]
    saturated = 1.0 / (prefill + workload.output_tokens * decode / CONCURRENCY_GRID)
    itl_ms = decode * ITL_P95_FACTOR * 1000
    fits = perf.max_sequences[..., None] >= CONCURRENCY_GRID
    base_valid = fits if slos.itl_p95_ms is None else fits & (itl_ms <= slos.itl_p95_ms)
    shape = perf.prefill_s.shape
    best_rate = np.zeros(shape)
    best_k = np.zeros(shape, dtype=np.int64)
    best_ttft = np.full(shape, np.inf)
    lowest_ttft = np.full(shape, np.inf)
    for level in UTILIZATION_LEVELS:
        rate = level * saturated
        ttft_ms = p95_ttft_ms(prefill, decode, rate)
        lowest_ttft = np.minimum(lowest_ttft, np.where(fits, ttft_ms, np.inf).min(axis=-1))
        valid = (
            base_valid if slos.ttft_p95_ms is None else base_valid & (ttft_ms <= slos.ttft_p95_ms)
        )
        masked = np.where(valid, rate, -1.0)
        k = np.argmax(masked, axis=-1)
        found = np.take_along_axis(masked, k[..., None], axis=-1)[..., 0]
        better = found > best_rate  # ties keep the higher load tried first
        best_rate = np.where(better, found, best_rate)
        best_k = np.where(better, k, best_k)
        best_ttft = np.where(
            better, np.take_along_axis(ttft_ms, k[..., None], -1)[..., 0], best_ttft
        )
    ok = best_rate > 0
    chosen_itl = np.take_along_axis(itl_ms, best_k[..., None], axis=-1)[..., 0]
    return OperatingPoints(
        ok=ok,
        concurrency=np.where(ok, CONCURRENCY_GRID[best_k], 0).astype(np.int64),
        grid_index=best_k,
        requests_per_s=best_rate,
        output_tokens_per_s=best_rate * workload.output_tokens,
        ttft_p95_ms=best_ttft,
        itl_p95_ms=chosen_itl,
        best_ttft_p95_ms=lowest_ttft,
        best_itl_p95_ms=np.where(fits, itl_ms, np.inf).min(axis=-1),
    )
