"""Cost per token, latency reduction and roofline math against known inputs."""

from __future__ import annotations

import pytest

from quantplan.agent.costs import (
    cost_figures,
    kv_bytes_per_position,
    latency_reduction_pct,
    roofline_figures,
    usd_per_million_tokens,
)


def test_cost_per_million_tokens() -> None:
    # $3.60/h at 1000 tok/s = 3.6M tokens per hour -> $1 per million.
    assert usd_per_million_tokens(3.6, 1000.0) == pytest.approx(1.0)
    assert usd_per_million_tokens(3.6, 0.0) is None
    with pytest.raises(ValueError):
        usd_per_million_tokens(-1.0, 10.0)


def test_blended_cost_is_lower_than_output_cost() -> None:
    figures = cost_figures(1.0, output_tokens_per_s=100.0, total_tokens_per_s=300.0, source="x")
    assert figures.usd_per_million_output_tokens == pytest.approx(1e6 / 360000)
    assert figures.usd_per_million_tokens_blended == pytest.approx(1e6 / 1080000)


def test_latency_reduction() -> None:
    assert latency_reduction_pct(200.0, 150.0) == pytest.approx(25.0)
    assert latency_reduction_pct(100.0, 120.0) == pytest.approx(-20.0)
    assert latency_reduction_pct(0.0, 10.0) is None
    assert latency_reduction_pct(None, 10.0) is None


def test_kv_bytes_per_position_smollm2() -> None:
    # 30 layers, 3 KV heads, head_dim 64, bf16: 2 * 30 * 3 * 64 * 2 = 23040 bytes.
    assert kv_bytes_per_position(30, 3, 64, 2) == 23040


def test_roofline_memory_bound() -> None:
    # 1 GB of weights, batch 2, no KV: 0.5 GB per token; 100 GB/s -> 200 tok/s bound.
    figures = roofline_figures(
        output_tokens_per_s=50.0,
        concurrency=2,
        weight_bytes=1e9,
        peak_bandwidth_gbps=100.0,
        peak_bandwidth_source="test",
    )
    assert figures.bytes_per_token == pytest.approx(5e8)
    assert figures.memory_bound_tokens_per_s == pytest.approx(200.0)
    assert figures.achieved_bandwidth_gbps == pytest.approx(25.0)
    assert figures.bandwidth_utilization == pytest.approx(0.25)
    assert figures.fraction_of_roofline == pytest.approx(0.25)


def test_roofline_compute_bound_when_lower() -> None:
    # 1e9 params at 1 TFLOPS: 500 tok/s compute bound, below a 1000 tok/s memory bound.
    figures = roofline_figures(
        output_tokens_per_s=250.0,
        concurrency=10,
        weight_bytes=1e9,
        peak_bandwidth_gbps=100.0,
        peak_bandwidth_source="test",
        parameters=1e9,
        peak_tflops=1.0,
    )
    assert figures.roofline_tokens_per_s == pytest.approx(500.0)
    assert figures.fraction_of_roofline == pytest.approx(0.5)
