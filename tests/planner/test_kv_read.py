"""A decode step's KV read keeps attention's own rate: the calibration multiplier scales the
weight kernels and the step's overhead, not the context (planner/estimate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.estimate import _profile_roofline, predict_profile, single_stream_prefill


def test_the_kv_read_is_added_unscaled_and_the_rest_of_the_cycle_is_calibrated() -> None:
    roofline_prefill, roofline_decode = 0.05, np.array([0.010, 0.012, 0.020])
    kv = np.array([0.002, 0.004, 0.008])
    batch = np.array([1.0, 8.0, 64.0])
    multiplier = np.array([1.5, 1.0, 0.5])
    out = 100
    prefill, step = single_stream_prefill(
        roofline_prefill, roofline_decode, multiplier, multiplier[0], out, batch, kv
    )
    assert step[0] == pytest.approx((0.010 - 0.002) / 1.5 + 0.002)
    cycle = (roofline_prefill + out * (roofline_decode - kv) / batch) / multiplier
    assert np.allclose(prefill + out * (step - kv) / batch, cycle)


def _rtx4090(output_tokens: int, tokens_per_s: float = 100.0) -> ProfileRecord:
    return ProfileRecord(
        model="Llama-3-8B", scheme="gguf-q4_k_m", engine="llama.cpp", hardware="RTX-4090",
        hardware_count=1, input_tokens=1, output_tokens=output_tokens, concurrency=1,
        output_tokens_per_s=tokens_per_s, basis="published", source="test kv read",
        details={"date": "2026-01", "flash_attention": False},
    )  # fmt: skip


@pytest.mark.parametrize("measured", [60.0, 100.0, 160.0])
def test_a_longer_context_costs_its_modeled_kv_read_whatever_the_calibration(
    shipped: CatalogSnapshot, measured: float
) -> None:
    """One measured run calibrates an RTX 4090 at 60, 100 or 160 tok/s; the same setting at a
    16x longer generation is predicted slower by exactly the extra KV read at attention's rate
    (scaling it with the weights' multiplier would make the difference follow the calibration)."""
    snapshot = shipped.model_copy(update={"profiles": ()})
    evidence = (_rtx4090(128, measured),)
    short, long = _rtx4090(512), _rtx4090(8192)
    predicted_short = predict_profile(short, snapshot, evidence)
    predicted_long = predict_profile(long, snapshot, evidence)
    assert predicted_short is not None and predicted_long is not None
    roofline_short, roofline_long = (
        _profile_roofline(short, snapshot),
        _profile_roofline(long, snapshot),
    )
    assert roofline_short is not None and roofline_long is not None
    extra_read = roofline_long.kv_read_s(1) - roofline_short.kv_read_s(1)
    assert extra_read > 0.5e-3  # 3,840 more tokens of context on average: about a millisecond
    difference = predicted_long.decode_step_s - predicted_short.decode_step_s
    assert difference == pytest.approx(extra_read, rel=0.02)
