"""Benchmark metric math: samples of streamed requests in, one summary out.

Pure functions over plain data (no clock, no I/O), so every definition here is pinned by unit
tests against hand-computed inputs. The definitions follow vLLM's serving benchmark so that the
two can be compared side by side:

- TTFT: request sent -> first streamed token.
- ITL: gaps between consecutive streamed token chunks (the first token excluded).
- TPOT: (e2e - TTFT) / (output tokens - 1), per request.
- Throughput: completed requests' tokens over the wall time of the whole run.
- Goodput: completed requests that met every SLO bound, per second.

Failed requests never contribute latencies or tokens; they only count towards the error rate.
With zero completed requests every rate is 0 and every latency is None (never a division by 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantplan.catalog.vocabulary import LatencyMs
from quantplan.errors import QuantplanError


class RequestSample(BaseModel):
    """What one streamed request did, as seen by the client. Times are seconds."""

    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="True when the stream finished without an error")
    start_s: float = Field(description="Monotonic time the request was sent")
    end_s: float = Field(description="Monotonic time the last byte arrived (or the error)")
    ttft_s: float | None = Field(default=None, description="Time to the first token chunk")
    chunk_gaps_s: list[float] = Field(
        default_factory=list, description="Gaps between consecutive token chunks after the first"
    )
    prompt_tokens: int = Field(default=0, ge=0, description="Prompt tokens (server's usage)")
    output_tokens: int = Field(default=0, ge=0, description="Generated tokens (server's usage)")
    error: str | None = Field(default=None, description="Why the request failed, if it did")

    @property
    def e2e_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first; None for a single-token answer."""
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


class Slo(BaseModel):
    """Service-level bounds a request must meet to count towards goodput (milliseconds)."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: LatencyMs | None = Field(default=None, description="Max time to first token")
    tpot_ms: LatencyMs | None = Field(default=None, description="Max time per output token")
    e2e_ms: LatencyMs | None = Field(default=None, description="Max end-to-end latency")
    percentile: float = Field(
        default=95.0, gt=0, le=100, description="Percentile of TTFT/TPOT the run must meet"
    )

    def met_by(self, sample: RequestSample) -> bool:
        """Whether one completed request met every bound that is set."""
        if not sample.ok:
            return False
        if self.ttft_ms is not None and (
            sample.ttft_s is None or sample.ttft_s * 1000 > self.ttft_ms
        ):
            return False
        tpot = sample.tpot_s
        if self.tpot_ms is not None and tpot is not None and tpot * 1000 > self.tpot_ms:
            return False
        return not (self.e2e_ms is not None and sample.e2e_s * 1000 > self.e2e_ms)


SLO_FLAGS = {"ttft_ms": "--slo-ttft-ms", "tpot_ms": "--slo-tpot-ms"}


def slo_from_flags(ttft_ms: float | None, tpot_ms: float | None = None) -> Slo | None:
    """The Slo of the --slo-* flags, None without any; a bad value (0, NaN, a year) is refused
    in one line naming its flag."""
    if ttft_ms is None and tpot_ms is None:
        return None
    try:
        return Slo(ttft_ms=ttft_ms, tpot_ms=tpot_ms)
    except ValidationError as error:
        first = error.errors()[0]
        flag = SLO_FLAGS.get(str(first["loc"][0]), str(first["loc"][0]))
        raise QuantplanError(
            f"{flag}: {first['msg']}",
            hint="a latency objective is a finite number of milliseconds above 0, at most a day",
        ) from None


class LatencyStats(BaseModel):
    """Distribution of one latency in milliseconds; None fields when there were no values."""

    model_config = ConfigDict(extra="forbid")

    count: int = 0
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class BenchMetrics(BaseModel):
    """The summary of one benchmark run at one load level."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(ge=0)
    requests: int = Field(ge=0, description="Requests sent")
    completed: int = Field(ge=0)
    failed: int = Field(ge=0)
    error_rate: float = Field(ge=0, le=1)
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    requests_per_s: float = Field(ge=0)
    output_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float = Field(ge=0)
    goodput_requests_per_s: float | None = Field(
        default=None, ge=0, description="Completed requests meeting the SLO, per second"
    )
    slo_met: bool | None = Field(
        default=None, description="Whether the run's TTFT/TPOT percentiles met the SLO"
    )
    ttft: LatencyStats
    tpot: LatencyStats
    itl: LatencyStats
    e2e: LatencyStats
    errors: list[str] = Field(default_factory=list, description="Distinct error messages")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation (numpy's default, as vLLM uses)."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def latency_stats(values_s: Sequence[float]) -> LatencyStats:
    """Summary of latencies given in seconds, reported in milliseconds."""
    if not values_s:
        return LatencyStats()
    ms = [v * 1000.0 for v in values_s]
    return LatencyStats(
        count=len(ms),
        mean_ms=float(np.mean(ms)),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms),
    )


def _rate(amount: float, duration_s: float) -> float:
    return amount / duration_s if duration_s > 0 else 0.0


def _slo_met(slo: Slo, ttft: LatencyStats, tpot: LatencyStats, e2e: LatencyStats) -> bool:
    """Run-level check: the SLO percentile of each bounded latency is within its bound."""

    def within(stats: LatencyStats, bound_ms: float | None, values_ms: float | None) -> bool:
        if bound_ms is None:
            return True
        return stats.count > 0 and values_ms is not None and values_ms <= bound_ms

    return (
        within(ttft, slo.ttft_ms, _pick(ttft, slo.percentile))
        and within(tpot, slo.tpot_ms, _pick(tpot, slo.percentile))
        and within(e2e, slo.e2e_ms, _pick(e2e, slo.percentile))
    )


def _pick(stats: LatencyStats, q: float) -> float | None:
    # Only the percentiles we keep can be checked; round to the nearest kept one upward.
    if q <= 50:
        return stats.p50_ms
    if q <= 95:
        return stats.p95_ms
    if q <= 99:
        return stats.p99_ms
    return stats.max_ms


def summarize(
    samples: Sequence[RequestSample], duration_s: float, slo: Slo | None = None
) -> BenchMetrics:
    """Summarize one run: ``duration_s`` is the wall time from the first send to the last end."""
    if duration_s < 0 or math.isnan(duration_s):
        raise ValueError(f"duration must be a non-negative number, got {duration_s}")
    done = [s for s in samples if s.ok]
    failed = len(samples) - len(done)
    prompt_tokens = sum(s.prompt_tokens for s in done)
    output_tokens = sum(s.output_tokens for s in done)
    ttft = latency_stats([s.ttft_s for s in done if s.ttft_s is not None])
    tpot = latency_stats([t for s in done if (t := s.tpot_s) is not None])
    itl = latency_stats([gap for s in done for gap in s.chunk_gaps_s])
    e2e = latency_stats([s.e2e_s for s in done])
    goodput = slo_met = None
    if slo is not None:
        goodput = _rate(sum(1 for s in done if slo.met_by(s)), duration_s)
        slo_met = bool(done) and _slo_met(slo, ttft, tpot, e2e)
    return BenchMetrics(
        duration_s=duration_s,
        requests=len(samples),
        completed=len(done),
        failed=failed,
        error_rate=failed / len(samples) if samples else 0.0,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        requests_per_s=_rate(len(done), duration_s),
        output_tokens_per_s=_rate(output_tokens, duration_s),
        total_tokens_per_s=_rate(prompt_tokens + output_tokens, duration_s),
        goodput_requests_per_s=goodput,
        slo_met=slo_met,
        ttft=ttft,
        tpot=tpot,
        itl=itl,
        e2e=e2e,
        errors=sorted({s.error for s in samples if s.error})[:20],
    )
