"""The first token apart from decode: overhead and prefill fitted from one-request TTFTs
(planner/estimate.py ``FirstTokenFit``), and a prefill that keeps its single-stream speed."""

from __future__ import annotations

import numpy as np
import pytest

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.estimate import (
    FirstTokenFit,
    _fit_first_token,
    _profile_roofline,
    first_token_fits,
    first_token_note,
    predict_profile,
    single_stream_prefill,
)
from quantplan.planner.pooling import ClassRatios
from quantplan.planner.targets import Constraints, Targets, Workload


def test_an_overhead_and_a_prefill_speed_are_told_apart_where_prompts_span_the_range() -> None:
    # 12 ms a request plus 3x the roofline prefill, seen on prefills of 2 to 40 ms.
    roofline = np.array([0.002, 0.005, 0.010, 0.040])
    points = [(x, 0.012 + 3 * x, x / 1.3) for x in roofline]
    fit = _fit_first_token(points)
    assert fit.overhead_s == pytest.approx(0.012, rel=1e-6)
    assert fit.prefill_factor == pytest.approx(3.0, rel=1e-6)
    assert float(fit.service_s(0.1, 0.5)) == pytest.approx(0.312)  # the calibrated one unused


def test_a_negative_overhead_is_refitted_through_zero() -> None:
    points = [(0.1, 0.09, 0.1), (0.4, 0.5, 0.4)]  # a line through them crosses below zero
    fit = _fit_first_token(points)
    assert fit.overhead_s == 0.0
    assert fit.prefill_factor is not None and 0.9 < fit.prefill_factor < 1.25


def test_narrow_evidence_goes_to_the_prefill_where_the_roofline_puts_it_there() -> None:
    # One prompt length on a CPU: the roofline says 457 ms of a 615 ms first token.
    fit = _fit_first_token([(0.457, 0.615, 0.37), (0.457, 0.626, 0.37)])
    assert fit.overhead_s == 0.0
    assert fit.prefill_factor == pytest.approx(np.sqrt(0.615 * 0.626) / 0.457, rel=1e-6)


def test_narrow_evidence_goes_to_an_overhead_where_the_prefill_is_a_small_part() -> None:
    # A GPU: 3 ms of roofline prefill in an 18 ms first token; the decode-calibrated prefill
    # (2 ms) stays and the rest is overhead.
    fit = _fit_first_token([(0.003, 0.018, 0.002), (0.0031, 0.020, 0.002)])
    assert fit.prefill_factor is None
    assert fit.overhead_s == pytest.approx(0.017)
    assert float(fit.service_s(0.5, 0.004)) == pytest.approx(0.021)


def test_a_prefill_keeps_its_single_stream_time_and_the_cycle_is_unchanged() -> None:
    roofline_prefill, roofline_decode = 0.05, np.array([0.01, 0.012, 0.02])
    batch = np.array([1.0, 8.0, 64.0])
    multiplier = np.array([1.2, 0.9, 0.5])  # the engine batches worse than the roofline
    out = 100
    prefill, step = single_stream_prefill(
        roofline_prefill, roofline_decode, multiplier, multiplier[0], out, batch
    )
    assert float(prefill) == pytest.approx(roofline_prefill / 1.2)
    cycle = (roofline_prefill + out * roofline_decode / batch) / multiplier
    assert np.allclose(prefill + out * step / batch, cycle)
    assert step[0] == pytest.approx(roofline_decode[0] / 1.2)


def _cpu_profile(**changes: object) -> ProfileRecord:
    fields: dict[str, object] = dict(
        model="SmolLM2-135M-Instruct", scheme="gguf-q8_0", engine="llama.cpp",
        hardware="Xeon-SapphireRapids", hardware_count=4, input_tokens=128, output_tokens=64,
        concurrency=1, output_tokens_per_s=60.0, itl_p50_ms=16.0, basis="measured",
        source="test first token", run_id="r1", details={"served": True},
    )  # fmt: skip
    fields.update(changes)
    return ProfileRecord(**fields)  # type: ignore[arg-type]


def test_a_measured_first_token_sets_other_settings_prefill_not_the_decode_ratio(
    shipped: CatalogSnapshot,
) -> None:
    """Two one-request TTFTs at 2.5x the roofline prefill of their prompts on one engine and
    device kind: a held-out setting of another model on that kind is predicted at 2.5x its
    own roofline prefill, whatever its decode calibration says."""
    snapshot = shipped.model_copy(update={"profiles": ()})
    probe = _cpu_profile()
    roofline = _profile_roofline(probe, snapshot)
    assert roofline is not None
    short = float(roofline.step_times(1)[1])
    long_probe = _cpu_profile(input_tokens=512)
    long_roofline = _profile_roofline(long_probe, snapshot)
    assert long_roofline is not None
    long = float(long_roofline.step_times(1)[1])
    evidence = (
        _cpu_profile(ttft_p50_ms=1000 * 2.5 * short + 16.0),
        _cpu_profile(input_tokens=512, ttft_p50_ms=1000 * 2.5 * long + 16.0, run_id="r2"),
    )
    target = _cpu_profile(model="Llama-3.2-1B", scheme="gguf-q4_k_m", source="held out")
    target_roofline = _profile_roofline(target, snapshot)
    assert target_roofline is not None
    expected = 2.5 * float(target_roofline.step_times(1)[1])
    prediction = predict_profile(target, snapshot, evidence)
    assert prediction is not None
    assert prediction.first_token_s == pytest.approx(expected, rel=0.02)
    assert prediction.first_token_s != pytest.approx(prediction.prefill_s, rel=0.1)


def test_without_first_token_evidence_the_service_is_the_calibrated_prefill() -> None:
    fit = FirstTokenFit(overhead_s=0.0, prefill_factor=None, points=0)
    assert float(fit.service_s(1.0, 0.25)) == 0.25


def test_a_plan_says_what_each_engine_s_first_token_rests_on(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="SmolLM2-135M-Instruct",
        workload=Workload(requests_per_s=1, input_tokens=128, output_tokens=64),
        constraints=Constraints(device="cpu"),
    )
    plan = make_plan(targets, shipped)
    assert plan.choice is not None
    notes = [a for a in plan.assumptions if a.startswith("first token on ")]
    kinds = {(d.engine, "cpu") for d in plan.fleet}
    assert len(notes) == len(kinds)
    for engine, kind in kinds:
        (note,) = [n for n in notes if n.startswith(f"first token on {engine} ({kind})")]
        assert "fitted from" in note and "x the default-efficiency roofline prefill" in note
    empty = FirstTokenFit(overhead_s=0.0, prefill_factor=None, points=0)
    assert "no profile measured its TTFT" in first_token_note("vllm", "gpu", empty)


def test_without_a_lone_request_the_service_comes_from_closed_loop_runs_under_load(
    shipped: CatalogSnapshot,
) -> None:
    """A served closed loop of 8 clients in step: its p95 request waits behind ceil(0.95 x 8)
    - 1 = 7 prompts, so its TTFT is 8 services and a step. The fit inverts exactly that; an
    open-loop run (a set rate) says nothing about bursts and is not used, and a run of one
    request, where there is one, is preferred."""
    snapshot = shipped.model_copy(update={"profiles": ()})
    probe = _cpu_profile()
    roofline = _profile_roofline(probe, snapshot)
    assert roofline is not None
    prefill = float(roofline.step_times(1)[1])
    service_ms, step_ms = 1000 * 2.5 * prefill, 16.0
    loaded = _cpu_profile(concurrency=8, ttft_p95_ms=8 * service_ms + step_ms, itl_p50_ms=step_ms)
    open_loop = _cpu_profile(
        concurrency=8, request_rate=2.0, ttft_p95_ms=50 * service_ms, run_id="r2"
    )
    engine_loop = _cpu_profile(
        concurrency=8, ttft_p95_ms=50 * service_ms, details={}, source="llama-batched-bench"
    )
    target = _cpu_profile(source="held out")
    for evidence in ((loaded,), (loaded, open_loop, engine_loop)):
        prediction = predict_profile(target, snapshot, evidence)
        assert prediction is not None
        assert prediction.first_token_s == pytest.approx(service_ms / 1000, rel=0.02)
    alone = _cpu_profile(ttft_p50_ms=1000 * 1.5 * prefill + step_ms, run_id="r3")
    prediction = predict_profile(target, snapshot, (loaded, alone))
    assert prediction is not None
    assert prediction.first_token_s == pytest.approx(1.5 * prefill, rel=0.02)
    fits = first_token_fits((loaded,), snapshot, ClassRatios())
    note = first_token_note("llama.cpp", "cpu", fits[("llama.cpp", "cpu")])
    assert "under load" in note and "1 profile" in note
