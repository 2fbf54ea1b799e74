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
    lookup_keys,
    measured_curves,
    pinned_curve,
    pinned_values,
    served_over_loop,
)
from quantplan.planner.decide import PlanningContext, prepare
from quantplan.planner.estimate import (
    CONCURRENCY_GRID,
    _efficiency_tables,
    _evidence,
    _profile_roofline,
    kv_read_s,
    predict_profile,
)
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
    """A setting measured at 1 and 32 sequences, at ``knee`` x the roofline's gain at 32 in
    all but the steps' KV read, which keeps attention's own rate."""
    modeled = predict_profile(_profile(1, 1.0), shipped, ())
    assert modeled is not None
    single = _profile(1, 0.8 * modeled.output_tokens_per_s)
    ideal = predict_profile(_profile(32, 1.0), shipped, (single,))
    roofline = _profile_roofline(_profile(32, 1.0), shipped)
    assert ideal is not None and roofline is not None
    out = WORKLOAD.output_tokens
    kv_cycle = out * roofline.kv_read_s(32) / 32
    cycle = (out / ideal.output_tokens_per_s - kv_cycle) / knee + kv_cycle
    return single, _profile(32, out / cycle)


def _kv_read(context: PlanningContext) -> np.ndarray:
    """The time map's KV read per decode step, per option, instance and concurrency."""
    bandwidth, _, _, _, kv_eff, _, _, _ = _efficiency_tables(context.space, context.snapshot)
    return kv_read_s(context.space.shape, WORKLOAD, bandwidth * kv_eff, CONCURRENCY_GRID)


def test_a_measured_knee_bends_other_models_on_the_same_engine(shipped: CatalogSnapshot) -> None:
    """Another model on another GPU keeps its single-stream speed but batches like the
    measured curve: at 32 sequences a request's cycle (prefill + output x step / 32), less
    the steps' KV read, takes twice the unbent one; the prefill keeps its single-stream time,
    so the step takes the rest."""
    profiles = _bent_curve(shipped, 0.5)
    _, curves = _evidence(profiles, shipped, WORKLOAD)
    # What a plan draws on: served curves first; this one was measured without the flag.
    curve = batching_curve(curves, lookup_keys(curve_keys("vllm", "gpu", SCHEME, 4, True)))
    assert curve.key == ("scheme", "engine loop", "vllm", "gpu", SCHEME)
    assert curve.basis == "measured"
    assert float(curve.factor(32.0)) == pytest.approx(0.5, rel=0.02)
    targets = Targets(model="Llama-3.1-8B", workload=WORKLOAD)
    flat = prepare(targets, shipped.model_copy(update={"profiles": profiles[:1]}))
    bent = prepare(targets, shipped.model_copy(update={"profiles": profiles}))
    s = next(k for k, o in enumerate(bent.space.options) if o.scheme.name == SCHEME)
    i = next(k for k, x in enumerate(bent.space.instances) if x.name == "g6.xlarge")
    prefill = flat.perf.prefill_s[s, i]
    assert bent.perf.prefill_s[s, i] == pytest.approx(prefill, rel=0.02)
    out = WORKLOAD.output_tokens
    kv = _kv_read(bent)[s, i]
    assert np.allclose(kv, _kv_read(flat)[s, i]) and kv[_k(32)] > 0
    before, after = (
        prefill + out * (p.decode_step_s[s, i] - kv) / CONCURRENCY_GRID
        for p in (flat.perf, bent.perf)
    )
    assert after[_k(1)] == pytest.approx(before[_k(1)], rel=0.02)
    assert after[_k(32)] == pytest.approx(2 * before[_k(32)], rel=0.05)
    assert after[_k(8)] / before[_k(8)] == pytest.approx(2 ** (3 / 5), rel=0.05)  # log-linear


def test_without_a_curve_batching_is_the_roofline_s_and_says_so() -> None:
    curve = batching_curve({}, curve_keys("llama.cpp", "cpu", "gguf-q4_k_m", 4, True))
    assert curve is MODELED_BATCHING and curve.basis == "modeled"
    assert np.allclose(curve.factor(CONCURRENCY_GRID), 1.0)


def test_a_curve_only_bends_down_and_needs_a_single_stream_point() -> None:
    def point(concurrency: int, ratio: float, run: str) -> CurvePoint:
        profile = _profile(concurrency, 10.0, run_id=run)
        return CurvePoint(profile, ratio, curve_keys("vllm", "gpu", SCHEME, 4, False))

    curves = measured_curves(
        [point(1, 1.0, "a"), point(16, 1.5, "a"), point(64, 0.5, "a"), point(16, 0.1, "b")]
    )
    curve = curves[("scheme", "engine loop", "vllm", "gpu", SCHEME)]
    assert curve.settings == 1  # run b has no concurrency-1 point
    assert curve.factors == (1.0, 1.0, 0.5)  # 1.5 x at 16 is clamped to the roofline's
    assert isinstance(curve, BatchingCurve)


def test_a_setting_whose_single_stream_is_set_apart_anchors_at_its_class(
    shipped: CatalogSnapshot,
) -> None:
    """A setting whose one-sequence level paid a start-up cost (set apart: cold_start) still
    says how its engine batches: its curve starts from its classes' single-stream speed,
    here another run's one-sequence point on the same GPU, instead of from nothing."""
    single, bent = _bent_curve(shipped, 0.5)
    cold = single.model_copy(update={"run_id": "r2", "details": {"cold_start": "first level"}})
    levels = (cold, bent.model_copy(update={"run_id": "r2"}))
    _, without = _evidence(levels, shipped, WORKLOAD)
    assert not without  # no single-stream evidence at all: no anchor, so no curve
    # Another run's single-stream point on the same GPU, its own curve flat up to 32.
    flat = single.model_copy(update={"run_id": "r3"})
    ideal = predict_profile(_profile(32, 1.0), shipped, (single,))
    assert ideal is not None
    flat_32 = _profile(32, ideal.output_tokens_per_s, run_id="r3")
    _, curves = _evidence((*levels, flat, flat_32), shipped, WORKLOAD)
    curve = curves[("scheme", "engine loop", "vllm", "gpu", SCHEME)]
    assert curve.settings == 2  # r3, and r2 from r3's single-stream speed
    # The average of r3 (no bend) and r2 (half the roofline's gain), in log space.
    assert float(curve.factor(32.0)) == pytest.approx(math.sqrt(0.5), rel=0.05)


def test_served_points_pin_a_setting_over_engine_loop_points() -> None:
    xs, ys, levels = pinned_curve([(1, 2.0, False), (64, 4.0, False), (1, 1.0, True),
                                   (64, 0.25, True), (64, 1.0, True)])  # fmt: skip
    assert list(levels) == [1.0, 64.0]
    assert np.allclose(xs, [0.0, math.log(64)])
    assert np.allclose(ys, [1.0, 0.5])  # geometric mean of the repeated served level
    xs, ys, _ = pinned_curve([(4, 2.0, False), (4, 8.0, False)])
    assert np.allclose(ys, [4.0])
    # An engine-loop prediction (a llama-batched-bench row) is pinned by the loop's points.
    _, ys, _ = pinned_curve([(1, 2.0, False), (64, 4.0, False), (64, 0.25, True)], served=False)
    assert np.allclose(ys, [2.0, 4.0])


def test_quantplan_s_own_benchmark_rows_are_served_even_without_the_flag() -> None:
    """quantplan's benchmark always goes through the engine's server; rows it recorded before
    it wrote ``details.served`` must not be read as engine-loop runs."""
    from quantplan.catalog.vocabulary import QUANTPLAN_BENCH_SOURCE
    from quantplan.planner.batching import is_served

    assert is_served(_profile(4, 10.0, source=QUANTPLAN_BENCH_SOURCE))
    assert not is_served(_profile(4, 10.0))  # another source says nothing: the engine loop
    assert is_served(_profile(4, 10.0, details={"served": True}))
    unflagged = _profile(4, 10.0, source=QUANTPLAN_BENCH_SOURCE, details={"served": False})
    assert not is_served(unflagged)  # an explicit flag wins


def test_served_and_engine_loop_curves_are_kept_apart() -> None:
    """Settings measured through the server and through the engine loop make separate curves;
    a prediction takes the one measured its own way and the other only where none exists."""

    def points(run: str, served: bool, at_64: float) -> list[CurvePoint]:
        keys = curve_keys("llama.cpp", "gpu", "gguf-f16", 16, served)
        return [
            CurvePoint(_profile(1, 10.0, run_id=run, engine="llama.cpp"), 1.0, keys),
            CurvePoint(_profile(64, 10.0, run_id=run, engine="llama.cpp"), at_64, keys),
        ]

    curves = measured_curves(points("loop", False, 0.9) + points("http", True, 0.3))
    served = batching_curve(
        curves, lookup_keys(curve_keys("llama.cpp", "gpu", "gguf-f16", 16, True))
    )
    loop = batching_curve(
        curves, lookup_keys(curve_keys("llama.cpp", "gpu", "gguf-f16", 16, False))
    )
    assert float(served.factor(64.0)) == pytest.approx(0.3)
    assert float(loop.factor(64.0)) == pytest.approx(0.9)
    assert served.source.endswith(", served") and loop.source.endswith(", engine loop")
    only_loop = measured_curves(points("loop", False, 0.9))
    fallback = batching_curve(
        only_loop, lookup_keys(curve_keys("llama.cpp", "gpu", "gguf-q8_0", 8, True))
    )
    assert fallback.key == ("engine", "engine loop", "llama.cpp", "gpu")


def test_a_setting_measured_only_in_the_loop_is_read_as_served_through_the_engine() -> None:
    """An 8B GGUF measured only with llama-batched-bench must not pin its served replicas at
    the loop's speed: its points are read through the engine's served-over-loop bend, taken at
    the most specific level measured both ways."""

    def points(run: str, scheme: str, served: bool, at_64: float) -> list[CurvePoint]:
        keys = curve_keys("llama.cpp", "gpu", scheme, 16 if scheme == "gguf-f16" else 8, served)
        return [
            CurvePoint(_profile(1, 10.0, run_id=run, engine="llama.cpp"), 1.0, keys),
            CurvePoint(_profile(64, 10.0, run_id=run, engine="llama.cpp"), at_64, keys),
        ]

    curves = measured_curves(
        points("loop", "gguf-f16", False, 0.8) + points("http", "gguf-f16", True, 0.2)
    )
    keys = curve_keys("llama.cpp", "gpu", "gguf-q8_0", 8, True)
    conversion = served_over_loop(curves, keys)
    assert conversion is not None and conversion.key[1:3] == ("served", "llama.cpp")
    assert float(conversion.factor(1.0)) == pytest.approx(1.0)
    assert float(conversion.factor(64.0)) == pytest.approx(0.25)
    loop_only = [(1, 2.0, False), (64, 8.0, False)]
    _, ys, _ = pinned_curve(loop_only, served=True, conversion=conversion)
    assert np.allclose(ys, [2.0, 2.0])  # 8.0 x 0.25 at 64 requests
    # Served points of the setting itself win; without a conversion the loop points stand.
    _, ys, _ = pinned_curve([*loop_only, (64, 1.0, True)], served=True, conversion=conversion)
    assert np.allclose(ys, [1.0])
    _, ys, _ = pinned_curve(loop_only, served=True)
    assert np.allclose(ys, [2.0, 8.0])
    # No level measured both ways: nothing to convert with.
    assert served_over_loop(measured_curves(points("loop", "gguf-f16", False, 0.8)), keys) is None


def test_a_pinned_setting_bends_as_its_engine_beyond_its_measured_levels() -> None:
    """One point at concurrency 1 does not scale ideally to 64: past its last level the
    setting's ratio follows the engine curve's bend from that level on."""
    curve = BatchingCurve(("engine", "served", "llama.cpp", "gpu"), (1.0, 64.0), (1.0, 0.25),
                          1, "measured", "test")  # fmt: skip
    xs, ys, _ = pinned_curve([(1, 2.0, True)])
    values = pinned_values(xs, ys, np.array([1.0, 8.0, 64.0, 128.0]), curve)
    assert np.allclose(values, [2.0, 2.0 * 0.25**0.5, 0.5, 0.5])
    xs, ys, _ = pinned_curve([(1, 2.0, True), (64, 1.0, True)])
    inside = pinned_values(xs, ys, np.array([8.0]), curve)
    # Inside the measured range the ratio moves geometrically: 8 is halfway from 1 to 64 in
    # log concurrency, so the ratio is halfway from 2 to 1 in log ratio (not 1.5).
    assert inside == pytest.approx(2.0 * 0.5**0.5)


def test_the_seed_sizes_llama_cpp_on_an_h200_as_served(shipped: CatalogSnapshot) -> None:
    """The 8B F16 setting on an H200 was measured by llama-batched-bench (4,598 and 4,456
    tok/s at 64 sequences in two runs) and through llama-server over HTTP (1,224 and 1,189):
    the served points size it, the loop's points predict the loop."""
    rows = [
        p
        for p in shipped.profiles
        if (p.model, p.scheme, p.hardware) == ("Llama-3.1-8B", "gguf-f16", "H200")
    ]
    served = [p for p in rows if p.details.get("served") and p.concurrency == 64]
    loop = [p for p in rows if not p.details.get("served") and p.concurrency == 64]
    assert len(served) == 2 and len(loop) == 2
    for found in (served, loop):
        mean = math.exp(np.mean([math.log(p.output_tokens_per_s) for p in found]))
        prediction = predict_profile(found[0], shipped, shipped.profiles)
        assert prediction is not None
        assert prediction.output_tokens_per_s == pytest.approx(mean, rel=0.05)
