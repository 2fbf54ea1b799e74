"""Cost per token and hardware-efficiency figures from a benchmark's numbers. Pure math.

- $/million tokens = price per hour / (tokens per second x 3600) x 1e6, for output tokens
  and for all tokens (prompt + output, "blended").
- Latency reduction vs a baseline on the same hardware, in percent (positive = faster).
- Memory-bandwidth utilization of decoding: each decode step reads the weights once for the
  whole batch plus every sequence's KV cache, so the bytes read per generated token are
  ``weight_bytes / concurrency + kv_bytes_per_token``; utilization = bytes per token x tokens/s
  / peak bandwidth.
- Roofline: the tokens/s the hardware allows at that batch, the lower of the memory bound
  (bandwidth / bytes per token) and, when the peak FLOP rate is known, the compute bound
  (FLOPs / (2 x parameters)). Fraction of roofline = measured / bound.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SECONDS_PER_HOUR = 3600.0


def usd_per_million_tokens(price_per_hour: float, tokens_per_s: float) -> float | None:
    """USD per million tokens at a sustained rate; None when nothing was produced."""
    if price_per_hour < 0:
        raise ValueError("price_per_hour must be >= 0")
    if tokens_per_s <= 0:
        return None
    return price_per_hour / (tokens_per_s * SECONDS_PER_HOUR) * 1e6


class CostFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price_per_hour: float = Field(ge=0, description="USD per hour of the machine")
    price_source: str = Field(description="catalog instance name, or 'given on the command line'")
    usd_per_million_output_tokens: float | None
    usd_per_million_tokens_blended: float | None = Field(description="Over prompt + output tokens")


def cost_figures(
    price_per_hour: float, output_tokens_per_s: float, total_tokens_per_s: float, source: str
) -> CostFigures:
    return CostFigures(
        price_per_hour=price_per_hour,
        price_source=source,
        usd_per_million_output_tokens=usd_per_million_tokens(price_per_hour, output_tokens_per_s),
        usd_per_million_tokens_blended=usd_per_million_tokens(price_per_hour, total_tokens_per_s),
    )


def latency_reduction_pct(baseline_ms: float | None, candidate_ms: float | None) -> float | None:
    """(baseline - candidate) / baseline x 100; None if either is missing or baseline is 0."""
    if baseline_ms is None or candidate_ms is None or baseline_ms <= 0:
        return None
    return (baseline_ms - candidate_ms) / baseline_ms * 100.0


def kv_bytes_per_position(layers: int, kv_heads: int, head_dim: int, dtype_bytes: float) -> float:
    """K and V for one token position across all layers."""
    return 2.0 * layers * kv_heads * head_dim * dtype_bytes


class RooflineFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bytes_per_token: float = Field(gt=0, description="Bytes read per generated token")
    achieved_bandwidth_gbps: float = Field(ge=0)
    bandwidth_utilization: float = Field(ge=0, description="Achieved / peak bandwidth")
    memory_bound_tokens_per_s: float = Field(gt=0)
    compute_bound_tokens_per_s: float | None = None
    roofline_tokens_per_s: float = Field(gt=0)
    fraction_of_roofline: float = Field(ge=0)
    peak_bandwidth_gbps: float = Field(gt=0)
    peak_bandwidth_source: str


def roofline_figures(
    *,
    output_tokens_per_s: float,
    concurrency: int,
    weight_bytes: float,
    peak_bandwidth_gbps: float,
    peak_bandwidth_source: str,
    kv_bytes_per_token: float = 0.0,
    parameters: float | None = None,
    peak_tflops: float | None = None,
) -> RooflineFigures:
    """Bandwidth utilization and fraction of the roofline for one operating point."""
    if concurrency < 1 or weight_bytes <= 0 or peak_bandwidth_gbps <= 0:
        raise ValueError("concurrency >= 1, weight_bytes > 0 and bandwidth > 0 are required")
    bytes_per_token = weight_bytes / concurrency + kv_bytes_per_token
    achieved = bytes_per_token * max(output_tokens_per_s, 0.0) / 1e9
    memory_bound = peak_bandwidth_gbps * 1e9 / bytes_per_token
    compute_bound = None
    if parameters and peak_tflops:
        compute_bound = peak_tflops * 1e12 / (2.0 * parameters)
    roofline = min(memory_bound, compute_bound) if compute_bound else memory_bound
    return RooflineFigures(
        bytes_per_token=bytes_per_token,
        achieved_bandwidth_gbps=achieved,
        bandwidth_utilization=achieved / peak_bandwidth_gbps,
        memory_bound_tokens_per_s=memory_bound,
        compute_bound_tokens_per_s=compute_bound,
        roofline_tokens_per_s=roofline,
        fraction_of_roofline=max(output_tokens_per_s, 0.0) / roofline,
        peak_bandwidth_gbps=peak_bandwidth_gbps,
        peak_bandwidth_source=peak_bandwidth_source,
    )
