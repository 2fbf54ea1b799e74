"""Speed estimates: roofline shape, and the measured / interpolated / modeled bases."""

from __future__ import annotations

import numpy as np
import pytest

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan, prepare
from quantplan.planner.estimate import (
    CALIBRATED,
    CONCURRENCY_GRID,
    INTERPOLATED,
    MEASURED,
    PUBLISHED,
    UNCALIBRATED,
    kv_read_efficiency,
    predict_profile,
    ran_flash_attention,
    split_without_cuda_graphs,
)
from quantplan.planner.hardware import kv_gb_per_token, model_shape_from_record, read_fraction
from quantplan.planner.targets import Constraints, ModelShape, Targets, Workload
from quantplan.planner.traits import engine_traits
from quantplan.planner.uncertainty import MIN_POINTS, TTFT_CATEGORY, shipped_band

MODEL, SCHEME = "Llama-3.1-8B", "gptq-w4a16-g128"


def _profile(concurrency: int, tokens_per_s: float, **changes: object) -> ProfileRecord:
    fields: dict[str, object] = dict(
        model=MODEL, scheme=SCHEME, engine="vllm", hardware="L4", hardware_count=1,
        input_tokens=512, output_tokens=256, concurrency=concurrency,
        output_tokens_per_s=tokens_per_s, basis="measured", source="test profile",
    )  # fmt: skip
    fields.update(changes)
    return ProfileRecord(**fields)  # type: ignore[arg-type]


def _targets(**constraints: object) -> Targets:
    return Targets(
        model=MODEL,
        workload=Workload(requests_per_s=1, input_tokens=512, output_tokens=256),
        constraints=Constraints(**constraints),  # type: ignore[arg-type]
    )


def _index(context, scheme: str, engine: str, instance: str, gpus: int | None = None):  # type: ignore[no-untyped-def]
    """Column of ``instance`` (with ``gpus`` GPUs per replica; default: the whole instance)."""
    space = context.space
    s = next(
        k for k, o in enumerate(space.options) if o.scheme.name == scheme and o.engine == engine
    )
    columns = [k for k, x in enumerate(space.instances) if x.name == instance]
    i = max(columns, key=lambda k: space.machines[k].accelerator_count)
    if gpus is not None:
        i = next(k for k in columns if space.machines[k].accelerator_count == gpus)
    return s, i


def _k(concurrency: int) -> int:
    return int(np.flatnonzero(concurrency == CONCURRENCY_GRID)[0])


def test_without_profiles_everything_is_modeled_with_the_widest_band(
    shipped: CatalogSnapshot,
) -> None:
    bare = shipped.model_copy(update={"profiles": ()})
    context = prepare(_targets(), bare)
    assert (context.perf.basis == UNCALIBRATED).all()
    plan = make_plan(_targets(), bare)
    ttft = plan.choice.metrics.ttft_p95_ms  # type: ignore[union-attr]
    assert ttft.basis == "modeled"
    # The band is the one held-out vLLM residuals of the modeled bases earned at the default
    # confidence (no longer the constant +-40 %).
    band = shipped_band("vllm", UNCALIBRATED, TTFT_CATEGORY, plan.targets.slos.confidence)
    assert band.points >= MIN_POINTS
    assert ttft.high == pytest.approx(ttft.value * band.high, rel=1e-4)
    assert ttft.low == pytest.approx(ttft.value * band.low, rel=1e-4)


def test_roofline_decode_grows_with_batch_and_throughput_does_not_fall(
    shipped: CatalogSnapshot,
) -> None:
    context = prepare(_targets(), shipped)
    s, i = _index(context, SCHEME, "vllm", "g6.xlarge")
    decode = context.perf.decode_step_s[s, i]
    assert (np.diff(decode) > 0).all()
    assert (np.diff(CONCURRENCY_GRID / decode) >= -1e-9).all()
    # Memory-bound at batch 1: about weights / (0.8 x 300 GB/s) plus the step overhead.
    weights = context.perf.weights_gb[s]
    assert decode[0] == pytest.approx(weights / (0.8 * 300) + 0.002 + 32 * 2e-5, rel=0.05)


def test_more_bandwidth_decodes_faster(shipped: CatalogSnapshot) -> None:
    context = prepare(_targets(), shipped)
    s, l4 = _index(context, SCHEME, "vllm", "g6.xlarge")
    _, l40s = _index(context, SCHEME, "vllm", "g6e.xlarge")
    assert context.perf.decode_step_s[s, l40s, 0] < context.perf.decode_step_s[s, l4, 0]


def test_profiles_pin_measured_points_and_interpolate_between(shipped: CatalogSnapshot) -> None:
    snapshot = shipped.model_copy(update={"profiles": (_profile(8, 400.0), _profile(32, 900.0))})
    context = prepare(_targets(), snapshot)
    s, i = _index(context, SCHEME, "vllm", "g6.xlarge")
    basis, decode = context.perf.basis[s, i], context.perf.decode_step_s[s, i]
    assert basis[_k(8)] == MEASURED and basis[_k(32)] == MEASURED
    # The closed-loop throughput the planner derives reproduces the measurement (the prefill
    # is scaled by the lowest measured point's ratio, so the higher point is close, not exact).
    prefill, out = context.perf.prefill_s[s, i], 256
    assert out / (prefill + out * decode[_k(8)] / 8) == pytest.approx(400.0, rel=1e-6)
    assert out / (prefill + out * decode[_k(32)] / 32) == pytest.approx(900.0, rel=0.05)
    assert basis[_k(16)] == INTERPOLATED
    assert basis[_k(128)] == CALIBRATED  # outside the measured range: calibrated roofline
    _, i4 = _index(context, SCHEME, "vllm", "g6.24xlarge", gpus=4)  # one replica on 4 L4s
    assert (context.perf.basis[s, i4] == CALIBRATED).all()
    _, i1 = _index(context, SCHEME, "vllm", "g6.24xlarge", gpus=1)  # four replicas of one L4
    assert context.perf.basis[s, i1, _k(8)] == MEASURED
    g, cpu = _index(context, "gguf-q4_k_m", "llama.cpp", "c7i.8xlarge")
    assert (context.perf.basis[g, cpu] == UNCALIBRATED).all()


def test_published_profiles_are_labelled_published(shipped: CatalogSnapshot) -> None:
    snapshot = shipped.model_copy(update={"profiles": (_profile(8, 400.0, basis="published"),)})
    context = prepare(_targets(), snapshot)
    s, i = _index(context, SCHEME, "vllm", "g6.xlarge")
    assert context.perf.basis[s, i, _k(8)] == PUBLISHED


def test_profiles_of_a_different_workload_only_calibrate(shipped: CatalogSnapshot) -> None:
    far = _profile(8, 400.0, input_tokens=8000, output_tokens=16)
    context = prepare(_targets(), shipped.model_copy(update={"profiles": (far,)}))
    s, i = _index(context, SCHEME, "vllm", "g6.xlarge")
    assert (context.perf.basis[s, i] == CALIBRATED).all()


def test_class_calibration_moves_modeled_speed_towards_measurements(
    shipped: CatalogSnapshot,
) -> None:
    before = prepare(_targets(), shipped)
    s, i = _index(before, SCHEME, "vllm", "g6.xlarge")
    modeled_step = before.perf.decode_step_s[s, i, _k(8)]
    slow = _profile(8, 0.5 * 8 / modeled_step, model="Llama-2-7B", hardware="A10G")
    after = prepare(_targets(), shipped.model_copy(update={"profiles": (slow,)}))
    # Another model on another GPU, same engine/family/device kind, ran at about half the
    # modeled speed: the L4 estimate slows down too, and is labelled calibrated.
    assert after.perf.decode_step_s[s, i, _k(8)] > 1.5 * modeled_step
    assert after.perf.basis[s, i, _k(8)] == CALIBRATED


def test_seed_profiles_calibrate_gpus_by_device_then_generation_then_kind(
    shipped: CatalogSnapshot,
) -> None:
    """The shipped published profiles calibrate llama.cpp on GPUs: a GPU with llama.cpp
    profiles of its own (the A100, the RTX 3080) on itself; an A10G (none) on the pooled
    compute capability 8.6 GPUs (RTX 3080 and 3090), not on the A100s' 8.0."""
    from quantplan.planner.estimate import _class_ratios, class_multiplier

    ratios = _class_ratios(shipped.profiles, shipped, _targets().workload)
    found = {
        name: class_multiplier(ratios, "llama.cpp", "gguf", shipped.get_hardware(name))
        for name in ("A100-80GB-SXM", "RTX-3080", "A10G")
    }
    assert all(value is not None for value in found.values())
    a100, rtx, a10g = (found[n] for n in ("A100-80GB-SXM", "RTX-3080", "A10G"))
    assert a100 is not None and rtx is not None and a10g is not None
    assert a100[1] == ("device", "llama.cpp", "gguf", "A100-80GB-SXM")
    assert rtx[1] == ("device", "llama.cpp", "gguf", "RTX-3080")
    assert a10g[1] == ("architecture", "llama.cpp", "gguf", "gpu", "8.6")
    assert a10g[0] != pytest.approx(a100[0]) and a10g[0] != pytest.approx(rtx[0])


def test_a_run_far_below_any_efficiency_pins_its_setting_but_calibrates_nothing(
    shipped: CatalogSnapshot,
) -> None:
    """A run ten times slower than the default-efficiency roofline (vLLM issue #1888's 8-GPU
    row is one) measured a broken set-up, not an efficiency other GPUs share: it does not
    slow down the modeled L4, but it still pins its own setting."""
    before = prepare(_targets(), shipped.model_copy(update={"profiles": ()}))
    s, i = _index(before, SCHEME, "vllm", "g6.xlarge")
    modeled_step = before.perf.decode_step_s[s, i, _k(8)]
    broken = _profile(8, 0.1 * 8 / modeled_step, model="Llama-2-7B", hardware="A10G")
    after = prepare(_targets(), shipped.model_copy(update={"profiles": (broken,)}))
    assert after.perf.decode_step_s[s, i, _k(8)] == pytest.approx(modeled_step)
    assert (after.perf.basis[s, i] == UNCALIBRATED).all()
    own = _profile(8, 0.1 * 8 / modeled_step)  # the same setting as the L4 column
    pinned = prepare(_targets(), shipped.model_copy(update={"profiles": (own,)}))
    assert pinned.perf.basis[s, i, _k(8)] == MEASURED
    assert pinned.perf.decode_step_s[s, i, _k(8)] > 5 * modeled_step


def test_a_superseded_engine_release_neither_pins_nor_calibrates(
    shipped: CatalogSnapshot,
) -> None:
    """A run of an engine release the deployed one no longer resembles (vLLM before 0.6.0)
    stays in the catalog for validation, but plans are made as if it were not there."""
    bare = prepare(_targets(), shipped.model_copy(update={"profiles": ()}))
    s, i = _index(bare, SCHEME, "vllm", "g6.xlarge")
    modeled_step = bare.perf.decode_step_s[s, i, _k(8)]
    old = _profile(8, 0.5 * 8 / modeled_step, details={"superseded_engine": "vLLM 0.5.4"})
    after = prepare(_targets(), shipped.model_copy(update={"profiles": (old,)}))
    assert after.perf.decode_step_s[s, i, _k(8)] == pytest.approx(modeled_step)
    assert (after.perf.basis[s, i] == UNCALIBRATED).all()
    current = old.model_copy(update={"details": {}})
    pinned = prepare(_targets(), shipped.model_copy(update={"profiles": (current,)}))
    assert pinned.perf.basis[s, i, _k(8)] == MEASURED


def test_a_mixture_of_experts_batch_reads_the_experts_its_tokens_pick() -> None:
    """Mixtral-8x7B routes each token to 2 of 8 experts: one token reads the active 12.9B of
    46.7B parameters, a batch of 8 about 90 % of them, a long prompt all of them. A card
    without expert counts keeps its active share at every batch."""
    fields = dict(
        name="moe", parameters_b=46.703, active_parameters_b=12.879, layers=32,
        hidden_size=4096, heads=32, kv_heads=8, head_dim=128, vocab_size=32000,
        max_context=32768,
    )  # fmt: skip
    moe = ModelShape(**fields, experts=8, experts_per_token=2)  # type: ignore[arg-type]
    read = read_fraction(moe, np.array([1, 2, 8, 64, 512]))
    assert read[0] == pytest.approx(12.879 / 46.703)
    assert np.all(np.diff(read) > 0) and read[2] == pytest.approx(0.903, abs=0.002)
    assert read[-1] == pytest.approx(1.0)
    unknown = ModelShape(**fields)  # type: ignore[arg-type]
    assert read_fraction(unknown, np.array([1, 64])) == pytest.approx([12.879 / 46.703] * 2)
    for bad in ({"experts": 8}, {"experts": 8, "experts_per_token": 8}):
        with pytest.raises(ValueError, match="experts"):
            ModelShape(**fields, **bad)  # type: ignore[arg-type]


def test_each_gguf_type_on_a_measured_gpu_has_its_own_efficiency(
    shipped: CatalogSnapshot,
) -> None:
    """The shipped runs of the RTX 4090 reach about 87 % of its spec bandwidth with F16 and
    about 63 % with Q4_K_M (XiongjieDai): each scheme draws on its own kernel's runs on the
    device, not on the two pooled as one GGUF family."""
    from quantplan.planner.estimate import _class_ratios, class_multiplier

    ratios = _class_ratios(shipped.profiles, shipped, _targets().workload)
    rtx = shipped.get_hardware("RTX-4090")
    f16 = class_multiplier(ratios, "llama.cpp", "gguf", rtx, scheme="gguf-f16")
    q4 = class_multiplier(ratios, "llama.cpp", "gguf", rtx, scheme="gguf-q4_k_m")
    family = class_multiplier(ratios, "llama.cpp", "gguf", rtx)
    assert f16 is not None and q4 is not None and family is not None
    assert f16[1] == ("kernel", "llama.cpp", "gguf-f16", "RTX-4090")
    assert q4[1] == ("kernel", "llama.cpp", "gguf-q4_k_m", "RTX-4090")
    assert family[1] == ("device", "llama.cpp", "gguf", "RTX-4090")
    assert q4[0] < family[0] < f16[0]
    q6 = class_multiplier(ratios, "llama.cpp", "gguf", rtx, scheme="gguf-q6_k")
    assert q6 == family  # no Q6_K run on it: the family's efficiency


def _llamacpp_decode(profile: ProfileRecord, snapshot: CatalogSnapshot) -> float:
    found = predict_profile(profile, snapshot, ())
    assert found is not None
    return found.decode_step_s


def test_the_kv_cache_is_read_at_attentions_own_rate(shipped: CatalogSnapshot) -> None:
    """llama.cpp's attention reads the KV cache at 0.44 of an H200's spec bandwidth with flash
    attention and 0.25 without, before calibration (the engine trait, from
    bench/results/llamacpp_depth), where its weights are read at 0.6: a token at depth 4,096
    costs what those rates say beyond one at depth 0, and a 2024 run (flash attention off by
    default then) pays 1.8x as much for it as a run of today's default."""
    traits = engine_traits(shipped, "llama.cpp", "gpu")
    assert kv_read_efficiency(traits) == 0.44
    assert kv_read_efficiency(traits, flash_attention=False) == 0.25
    shallow = _profile(1, 100.0, model="Llama-3.1-8B", scheme="gguf-f16", engine="llama.cpp",
                       hardware="H200", input_tokens=1, output_tokens=2,
                       details={"date": "2026-12"})  # fmt: skip
    deep = shallow.model_copy(update={"output_tokens": 8192})
    shape = model_shape_from_record(shipped.model_by_name["Llama-3.1-8B"])
    kv_read_s = kv_gb_per_token(shape) * (4096 - 1) / 4800  # mean depths 4,097 and 2
    growth = _llamacpp_decode(deep, shipped) - _llamacpp_decode(shallow, shipped)
    assert growth == pytest.approx(kv_read_s / 0.44, rel=0.02)
    old = deep.model_copy(update={"details": {"date": "2024-05"}})
    assert ran_flash_attention(deep) and not ran_flash_attention(old)
    old_shallow = shallow.model_copy(update={"details": {"date": "2024-05"}})
    old_growth = _llamacpp_decode(old, shipped) - _llamacpp_decode(old_shallow, shipped)
    assert old_growth == pytest.approx(kv_read_s / 0.25, rel=0.02)
    # What a run's details state wins over the date; vLLM keeps reading at the weights' rate.
    stated = old.model_copy(update={"details": {"date": "2024-05", "flash_attention": True}})
    assert ran_flash_attention(stated)
    assert kv_read_efficiency(engine_traits(shipped, "vllm", "gpu")) is None


def test_a_2024_split_over_gpus_ran_without_cuda_graphs(shipped: CatalogSnapshot) -> None:
    """llama.cpp's layer split over several GPUs ran without CUDA graphs from May 2024 to May
    2025 (PR #6766 to PR #13814): such a run's step pays 0.019 ms a layer more than the same
    run on one GPU; before graphs existed, after the fix, and on one GPU it pays nothing."""
    one = _profile(1, 100.0, model="Llama-3-8B", scheme="gguf-q4_k_m", engine="llama.cpp",
                   hardware="RTX-4090", input_tokens=1, output_tokens=512,
                   details={"date": "2024-05"})  # fmt: skip
    four = one.model_copy(update={"hardware_count": 4})
    layers = model_shape_from_record(shipped.model_by_name["Llama-3-8B"]).layers
    assert not split_without_cuda_graphs(one) and split_without_cuda_graphs(four)
    slower = _llamacpp_decode(four, shipped) - _llamacpp_decode(one, shipped)
    assert slower == pytest.approx(1.9e-5 * layers, rel=0.01)
    for date in ("2024-03", "2025-06", "2026-12"):
        dated = four.model_copy(update={"details": {"date": date}})
        assert not split_without_cuda_graphs(dated)
        again = one.model_copy(update={"details": {"date": date}})
        assert _llamacpp_decode(dated, shipped) == pytest.approx(_llamacpp_decode(again, shipped))
    assert not split_without_cuda_graphs(four.model_copy(update={"engine": "vllm"}))


def test_a_run_without_flash_attention_pays_for_the_unfused_attention(
    shipped: CatalogSnapshot,
) -> None:
    """Beside its slower KV read, a llama.cpp GPU run without flash attention pays 0.017 ms a
    layer per step for the attention's separate kernels (measured at depth 0 on an H100); the
    CPU and vLLM pay nothing for it."""
    with_flash = _profile(1, 100.0, model="Llama-3.1-8B", scheme="gguf-q4_k_m",
                          engine="llama.cpp", hardware="H100-SXM", input_tokens=1,
                          output_tokens=2, details={"date": "2026-12"})  # fmt: skip
    without = with_flash.model_copy(
        update={"details": {"date": "2026-12", "flash_attention": False}}
    )
    layers = model_shape_from_record(shipped.model_by_name["Llama-3.1-8B"]).layers
    # At two tokens of depth the KV read is negligible: the difference is the fixed term.
    slower = _llamacpp_decode(without, shipped) - _llamacpp_decode(with_flash, shipped)
    assert slower == pytest.approx(1.7e-5 * layers, rel=0.02)
    cpu = with_flash.model_copy(update={"hardware": "Xeon-SapphireRapids", "hardware_count": 4})
    cpu_without = cpu.model_copy(update={"details": without.details})
    cpu_gap = _llamacpp_decode(cpu_without, shipped) - _llamacpp_decode(cpu, shipped)
    assert cpu_gap < 1e-5 * layers


def test_llamacpp_pythons_own_server_ran_without_flash_attention() -> None:
    """llama-cpp-python's ``Llama`` defaults to ``flash_attn=False`` whatever its vendored
    llama.cpp does; llama.cpp's own tools of the same tree run its default (on)."""
    python_server = _profile(1, 100.0, engine="llama.cpp", scheme="gguf-f16",
                             engine_version="llama-cpp-python 0.3.36, CUDA sm_90",
                             details={"date": "2026-11-28"})  # fmt: skip
    own_tools = python_server.model_copy(update={"engine_version": "llama-server version: 0.5.0"})
    assert not ran_flash_attention(python_server)
    assert ran_flash_attention(own_tools)
