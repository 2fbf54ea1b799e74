"""The benchmark math against hand-computed inputs."""

from __future__ import annotations

import pytest

from quantplan.agent.benchmark.metrics import (
    RequestSample,
    Slo,
    latency_stats,
    percentile,
    summarize,
)


def sample(
    start: float, ttft: float, gaps: list[float], out: int, prompt: int = 10
) -> RequestSample:
    end = start + ttft + sum(gaps)
    return RequestSample(
        ok=True,
        start_s=start,
        end_s=end,
        ttft_s=ttft,
        chunk_gaps_s=gaps,
        prompt_tokens=prompt,
        output_tokens=out,
    )


def failed(start: float) -> RequestSample:
    return RequestSample(ok=False, start_s=start, end_s=start + 0.5, error="HTTP 500: boom")


def test_percentile_interpolates_linearly() -> None:
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_latency_stats_in_milliseconds() -> None:
    stats = latency_stats([0.1, 0.2, 0.3])
    assert stats.count == 3
    assert stats.mean_ms == pytest.approx(200.0)
    assert stats.p50_ms == pytest.approx(200.0)
    assert stats.max_ms == pytest.approx(300.0)


def test_summary_of_known_run() -> None:
    # Two requests: TTFT 0.1 s and 0.3 s, 4 tokens each with 0.05 s gaps, over 2 s of wall time.
    samples = [sample(0.0, 0.1, [0.05] * 3, 4), sample(0.0, 0.3, [0.05] * 3, 4), failed(0.0)]
    metrics = summarize(samples, duration_s=2.0)
    assert metrics.requests == 3
    assert metrics.completed == 2
    assert metrics.failed == 1
    assert metrics.error_rate == pytest.approx(1 / 3)
    assert metrics.output_tokens == 8
    assert metrics.prompt_tokens == 20  # failed requests contribute no tokens
    assert metrics.output_tokens_per_s == pytest.approx(4.0)
    assert metrics.total_tokens_per_s == pytest.approx(14.0)
    assert metrics.requests_per_s == pytest.approx(1.0)
    assert metrics.ttft.p50_ms == pytest.approx(200.0)
    assert metrics.itl.count == 6
    assert metrics.itl.p50_ms == pytest.approx(50.0)
    # TPOT = (e2e - ttft) / (out - 1) = 0.15 / 3 = 50 ms for both.
    assert metrics.tpot.p95_ms == pytest.approx(50.0)
    assert metrics.e2e.max_ms == pytest.approx(450.0)
    assert metrics.errors == ["HTTP 500: boom"]


def test_goodput_counts_only_requests_within_slo() -> None:
    samples = [sample(0.0, 0.1, [0.05] * 3, 4), sample(0.0, 0.3, [0.05] * 3, 4)]
    metrics = summarize(samples, duration_s=2.0, slo=Slo(ttft_ms=200))
    assert metrics.goodput_requests_per_s == pytest.approx(0.5)
    # p95 of TTFT is 290 ms > 200 ms: the run as a whole breaks the SLO.
    assert metrics.slo_met is False
    assert summarize(samples, 2.0, slo=Slo(ttft_ms=400, tpot_ms=60)).slo_met is True


def test_zero_completed_requests_gives_zero_rates_not_a_crash() -> None:
    metrics = summarize([failed(0.0), failed(0.1)], duration_s=1.0, slo=Slo(ttft_ms=100))
    assert metrics.completed == 0
    assert metrics.error_rate == 1.0
    assert metrics.output_tokens_per_s == 0.0
    assert metrics.goodput_requests_per_s == 0.0
    assert metrics.slo_met is False
    assert metrics.ttft.p50_ms is None


def test_empty_run_and_zero_duration() -> None:
    metrics = summarize([], duration_s=0.0)
    assert metrics.requests == 0
    assert metrics.error_rate == 0.0
    assert metrics.requests_per_s == 0.0


def test_single_token_answer_has_no_tpot() -> None:
    assert sample(0.0, 0.1, [], 1).tpot_s is None


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError):
        summarize([], duration_s=-1.0)
