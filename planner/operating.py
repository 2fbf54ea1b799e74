"""Where each replica should run: the busiest concurrency that still meets the SLOs.

A replica at concurrency ``b`` spends ``prefill`` seconds per request plus ``output x step / b``
decoding it, so it carries ``1 / (prefill + output x step / b)`` requests/s at full load; it is
planned at :data:`TARGET_UTILIZATION` of that. p95 TTFT adds an M/M/1 p95 queueing delay for
the prefill of a new request at that load; p95 ITL is the decode step times a jitter factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from quantplan.planner.estimate import CONCURRENCY_GRID, PerformanceMap
from quantplan.planner.targets import Slos, Workload

TARGET_UTILIZATION = 0.85
"""Share of a replica's saturated throughput it is planned to carry at peak."""
ITL_P95_FACTOR = 1.2
"""p95 over mean decode step: prefills interleaved into the batch stretch some steps."""
ASSUMPTIONS: tuple[str, ...] = (
    f"replicas are sized to carry peak load at {TARGET_UTILIZATION:.0%} of saturated throughput",
    f"p95 ITL = {ITL_P95_FACTOR} x decode step; p95 TTFT = prefill + M/M/1 p95 wait for the "
    "prefill queue at that load + one decode step",
)


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


def _latencies(perf: PerformanceMap, workload: Workload) -> tuple[np.ndarray, ...]:
    decode = perf.decode_step_s
    prefill = perf.prefill_s[..., None]
    service = prefill + workload.output_tokens * decode / CONCURRENCY_GRID
    rate = TARGET_UTILIZATION / service
    rho = np.minimum(rate * prefill, 0.999)
    wait = np.where(rho > 0.05, prefill / (1 - rho) * np.log(np.maximum(rho, 0.05) / 0.05), 0.0)
    ttft_ms = (prefill + wait + decode) * 1000
    itl_ms = decode * ITL_P95_FACTOR * 1000
    return rate, ttft_ms, itl_ms


def select_operating_points(
    perf: PerformanceMap, workload: Workload, slos: Slos
) -> OperatingPoints:
    """For each option x instance, the concurrency with the most throughput inside the SLOs."""
    rate, ttft_ms, itl_ms = _latencies(perf, workload)
    fits = perf.max_sequences[..., None] >= CONCURRENCY_GRID
    valid = fits.copy()
    if slos.ttft_p95_ms is not None:
        valid &= ttft_ms <= slos.ttft_p95_ms
    if slos.itl_p95_ms is not None:
        valid &= itl_ms <= slos.itl_p95_ms
    masked = np.where(valid, rate, -1.0)
    best = np.argmax(masked, axis=-1)
    ok = np.take_along_axis(masked, best[..., None], axis=-1)[..., 0] > 0

    def pick(array: np.ndarray) -> np.ndarray:
        return np.take_along_axis(array, best[..., None], axis=-1)[..., 0]

    requests = np.where(ok, pick(rate), 0.0)
    return OperatingPoints(
        ok=ok,
        concurrency=np.where(ok, CONCURRENCY_GRID[best], 0).astype(np.int64),
        grid_index=best,
        requests_per_s=requests,
        output_tokens_per_s=requests * workload.output_tokens,
        ttft_p95_ms=pick(ttft_ms),
        itl_p95_ms=pick(itl_ms),
        best_ttft_p95_ms=np.where(fits, ttft_ms, np.inf).min(axis=-1),
        best_itl_p95_ms=np.where(fits, itl_ms, np.inf).min(axis=-1),
    )
