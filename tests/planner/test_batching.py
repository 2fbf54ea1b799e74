"""Batching curves: measured concurrency curves bend the roofline's batching (planner/batching)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.batching import (
    MODELED_BATCHING,
    BatchingCurve,
    CurvePoint,
    batching_curve,
    curve_keys,
    measured_curves,
    pinned_curve,
)
from quantplan.planner.estimate import CONCURRENCY_GRID, _evidence, predict_profile
from quantplan.planner.planning import prepare
from quantplan.planner.targets import Targets, Workload

SCHEME = "gptq-w4a16-g128"
WORKLOAD = Workload(requests_per_s=1, input_tokens=512, output_tokens=256)


def _profile(concurrency: int, tokens_per_s: float, **changes: object) -> ProfileRecord:
    fields: dict[str, object] = dict(
        model="Llama-2-7B", scheme=SCHEME, engine="vllm", hardware="A10G", hardware_count=1,
        input_tokens=512, output_tokens=256, concurrency=concurrency,
        output_tokens_per_s=tokens_per_s, basis="measured", source="test curve", run_id="r1",
    )  # fmt: skip
    fields.update(changes)
    return ProfileRecord(**fields)  # type: ignore[arg-type]


def _k(concurrency: int) -> int:
    return int(np.flatnonzero(concurrency == CONCURRENCY_GRID)[0])


def _bent_curve(shipped: CatalogSnapshot, knee: float) -> tuple[ProfileRecord, ...]:
    """A setting measured at 1 and 32 sequences, at ``knee`` x the roofline's gain at 32."""
    modeled = predict_profile(_profile(1, 1.0), shipped, ())
    assert modeled is not None
    single = _profile(1, 0.8 * modeled.output_tokens_per_s)
    ideal = predict_profile(_profile(32, 1.0), shipped, (single,))
    assert ideal is not None
    return single, _profile(32, knee * ideal.output_tokens_per_s)


def test_a_measured_knee_bends_other_models_on_the_same_engine(shipped: CatalogSnapshot) -> None:
    """Another model on another GPU keeps its single-stream speed but batches like the
    measured curve: at 32 sequences its step takes twice the unbent one."""
    profiles = _bent_curve(shipped, 0.5)
    _, curves = _evidence(profiles, shipped, WORKLOAD)
    curve = batching_curve(curves, curve_keys("vllm", "gpu", SCHEME, 4))
    assert curve.key == ("scheme", "vllm", "gpu", SCHEME) and curve.basis == "measured"
    assert float(curve.factor(32.0)) == pytest.approx(0.5, rel=0.02)
    targets = Targets(model="Llama-3.1-8B", workload=WORKLOAD)
    flat = prepare(targets, shipped.model_copy(update={"profiles": profiles[:1]}))
    bent = prepare(targets, shipped.model_copy(update={"profiles": profiles}))
    s = next(k for k, o in enumerate(bent.space.options) if o.scheme.name == SCHEME)
    i = next(k for k, x in enumerate(bent.space.instances) if x.name == "g6.xlarge")
    before, after = flat.perf.decode_step_s[s, i], bent.perf.decode_step_s[s, i]
    assert after[_k(1)] == pytest.approx(before[_k(1)], rel=0.02)
    assert after[_k(32)] == pytest.approx(2 * before[_k(32)], rel=0.05)
    assert after[_k(8)] / before[_k(8)] == pytest.approx(2 ** (3 / 5), rel=0.05)  # log-linear


def test_without_a_curve_batching_is_the_roofline_s_and_says_so() -> None:
    curve = batching_curve({}, curve_keys("llama.cpp", "cpu", "gguf-q4_k_m", 4))
    assert curve is MODELED_BATCHING and curve.basis == "modeled"
    assert np.allclose(curve.factor(CONCURRENCY_GRID), 1.0)


def test_a_curve_only_bends_down_and_needs_a_single_stream_point() -> None:
    def point(concurrency: int, ratio: float, run: str) -> CurvePoint:
        profile = _profile(concurrency, 10.0, run_id=run)
        return CurvePoint(profile, ratio, curve_keys("vllm", "gpu", SCHEME, 4))

    curves = measured_curves(
        [point(1, 1.0, "a"), point(16, 1.5, "a"), point(64, 0.5, "a"), point(16, 0.1, "b")]
    )
    curve = curves[("scheme", "vllm", "gpu", SCHEME)]
    assert curve.settings == 1  # run b has no concurrency-1 point
    assert curve.factors == (1.0, 1.0, 0.5)  # 1.5 x at 16 is clamped to the roofline's
    assert isinstance(curve, BatchingCurve)


def test_served_points_pin_a_setting_over_engine_loop_points() -> None:
    xs, ys, levels = pinned_curve([(1, 2.0, False), (64, 4.0, False), (1, 1.0, True),
                                   (64, 0.25, True), (64, 1.0, True)])  # fmt: skip
    assert list(levels) == [1.0, 64.0]
    assert np.allclose(xs, [0.0, math.log(64)])
    assert np.allclose(ys, [1.0, 0.5])  # geometric mean of the repeated served level
    xs, ys, _ = pinned_curve([(4, 2.0, False), (4, 8.0, False)])
    assert np.allclose(ys, [4.0])


def test_the_seed_sizes_llama_cpp_on_an_h200_as_served(shipped: CatalogSnapshot) -> None:
    """The 8B F16 setting on an H200 was measured by llama-batched-bench (4,598 tok/s at 64
    sequences) and through llama-server over HTTP (1,224): the served curve sizes it."""
    served = [
        p
        for p in shipped.profiles
        if p.model == "Llama-3.1-8B" and p.scheme == "gguf-f16" and p.details.get("served")
    ]
    assert sorted(p.concurrency for p in served) == [1, 2, 4, 8, 16, 32, 64]
    at_64 = next(p for p in served if p.concurrency == 64)
    prediction = predict_profile(at_64, shipped, shipped.profiles)
    assert prediction is not None
    assert prediction.output_tokens_per_s == pytest.approx(at_64.output_tokens_per_s, rel=0.01)
