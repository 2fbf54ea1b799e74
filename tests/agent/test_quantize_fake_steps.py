"""``quantize`` around its steps, with the steps faked (toolchains.fake.FakeStepRunner).

What the real-toolchain tests take minutes for, in milliseconds: the content-address cache, the
F16 prerequisite shared by GGUF types, refusals before any step, no half artifact after a failed
step, and the manifest's fields taken from the step's answer.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from safetensors_files import write_safetensors

from quantplan.agent.artifacts import ArtifactStore
from quantplan.agent.model_source import resolve_model
from quantplan.agent.quantize import quantize
from quantplan.agent.quantize.llmcompressor_common import (
    GPTQ_MODIFIER,
    SMOOTHQUANT_MODIFIER,
    ModifierSpec,
)
from quantplan.agent.toolchains import StepError, StepProgress, use_step_runner
from quantplan.agent.toolchains.fake import FakeStepRunner, StepCall
from quantplan.errors import QuantplanError

LLAMA_CONFIG = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
}
F16_BITS = {"matrices": 16.0, "all_tensors": 16.0, "weight_share_by_type": {"F16": 1.0}}
Q4_BITS = {"matrices": 4.8912, "all_tensors": 5.1, "weight_share_by_type": {"Q4_K": 0.9}}
LLAMA_CPP_VERSIONS = {"llama-cpp": {"llama-cpp-python": "0.3.0-fake"}}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Artifact locks and toolchain manifests: none of the shared cache's.
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A checkpoint the checks before a step accept (the steps are fake, nothing loads it)."""
    directory = tmp_path / "TinyLlama"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    (directory / "model.safetensors").write_bytes(b"\0" * 64)
    return directory


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "store"))


def _convert(call: StepCall) -> dict[str, Any]:
    call.progress("converting", 1, 2)
    Path(call.request["output_path"]).write_bytes(b"GGUF f16")
    return {"seconds": 1.5, "peak_rss_mb": 100.0, "bits_per_weight": F16_BITS}


def _quantize_gguf(call: StepCall) -> dict[str, Any]:
    # Made from the F16 artifact's file, as the real step reads it.
    assert Path(call.request["input_path"]).read_bytes() == b"GGUF f16"
    Path(call.request["output_path"]).write_bytes(f"GGUF {call.request['type']}".encode())
    return {
        "seconds": 0.5,
        "peak_rss_mb": 50.0,
        "bits_per_weight": Q4_BITS,
        "layer_errors": [{"tensor": "blk.0.attn_q.weight", "relative_error": 0.02}],
        "llama_cpp_version": "b4000",
    }


def _leftovers(store: ArtifactStore) -> list[str]:
    root = Path(store.root)
    return sorted(p.name for p in [*root.glob(".staging-*"), *root.glob(".replaced-*")])


def test_an_artifact_is_built_once_then_found_by_its_content_address(
    model: Path, store: ArtifactStore
) -> None:
    runner = FakeStepRunner({"gguf_convert": _convert}, versions=LLAMA_CPP_VERSIONS)
    progress: list[StepProgress] = []
    with use_step_runner(runner):
        first = quantize(
            str(model), "gguf", {"type": "F16"}, store=store, on_progress=progress.append
        )
        again = quantize(str(model), "gguf", {"type": "F16"}, store=store)
    assert runner.steps() == ["gguf_convert"]
    assert runner.calls[0].request == {
        "model_dir": str(model),
        "output_path": str(Path(runner.calls[0].request["output_path"])),
    }
    assert Path(runner.calls[0].request["output_path"]).name == "TinyLlama-F16.gguf"
    assert [(p.message, p.completed, p.total) for p in progress] == [("converting", 1, 2)]
    assert again == first == store.get(first.artifact_id)
    assert (first.method, first.scheme, first.kind) == ("gguf", "gguf-f16", "gguf")
    assert first.main_file == "TinyLlama-F16.gguf"
    assert [file.path for file in first.files] == ["TinyLlama-F16.gguf"]
    assert first.total_bytes == len(b"GGUF f16")
    assert (first.bits_per_weight, first.quantize_seconds, first.peak_memory_mb) == (16.0, 1.5, 100)
    assert first.toolchain == "llama-cpp"
    assert first.tool_versions == {"llama-cpp-python": "0.3.0-fake"}
    assert first.source_model_sha256 == resolve_model(str(model)).content_sha256
    assert first.parameters["type"] == "F16"
    assert _leftovers(store) == []


def test_a_method_named_in_another_case_finds_the_same_artifact(
    model: Path, store: ArtifactStore
) -> None:
    """Method names match ignoring case (the registry's aliases): the content address holds
    the canonical name, so "GGUF" reuses what "gguf" built instead of building it again."""
    runner = FakeStepRunner({"gguf_convert": _convert}, versions=LLAMA_CPP_VERSIONS)
    with use_step_runner(runner):
        first = quantize(str(model), "gguf", {"type": "F16"}, store=store)
        again = quantize(str(model), "GGUF", {"type": "F16"}, store=store)
    assert runner.steps() == ["gguf_convert"]
    assert again == first


def test_force_rebuilds_under_the_same_address(model: Path, store: ArtifactStore) -> None:
    runner = FakeStepRunner({"gguf_convert": _convert})
    with use_step_runner(runner):
        first = quantize(str(model), "gguf", {"type": "F16"}, store=store)
        forced = quantize(str(model), "gguf", {"type": "F16"}, store=store, force=True)
        # F16 is the reference itself: the layer-error flag is dropped, one F16 per model.
        flagged = quantize(
            str(model), "gguf", {"type": "F16", "measure_layer_error": True}, store=store
        )
    assert runner.steps() == ["gguf_convert"] * 2
    assert forced.artifact_id == flagged.artifact_id == first.artifact_id
    assert len(store.list()) == 1 and _leftovers(store) == []
    # The rebuild is what the store keeps, not the artifact it was asked to replace.
    assert forced.created_at > first.created_at
    assert store.get(first.artifact_id) == forced == flagged


def test_k_quants_share_one_f16_artifact(model: Path, store: ArtifactStore) -> None:
    runner = FakeStepRunner({"gguf_convert": _convert, "gguf_quantize": _quantize_gguf})
    with use_step_runner(runner):
        q4 = quantize(str(model), "gguf", {"type": "Q4_K_M"}, store=store)
        q8 = quantize(str(model), "gguf", {"type": "Q8_0"}, store=store)
    assert runner.steps() == ["gguf_convert", "gguf_quantize", "gguf_quantize"]
    (f16,) = [m for m in store.list() if m.scheme == "gguf-f16"]
    assert q4.parameters["resolved"]["f16_artifact"] == f16.artifact_id
    assert q8.parameters["resolved"]["f16_artifact"] == f16.artifact_id
    assert q4.scheme == "gguf-q4_k_m" and q4.bits_per_weight == 4.8912
    assert q4.parameters["resolved"]["llama_cpp_version"] == "b4000"
    # The step's per-layer errors travel with the artifact as a file of their own.
    assert sorted(file.path for file in q4.files) == [
        "TinyLlama-Q4_K_M.gguf",
        "quantplan-layer-errors.json",
    ]
    errors = json.loads((store.local_dir(q4) / "quantplan-layer-errors.json").read_text())
    assert errors == [{"tensor": "blk.0.attn_q.weight", "relative_error": 0.02}]
    assert len(store.list()) == 3


def _refuses(call: StepCall) -> dict[str, Any]:
    Path(call.request["output_path"]).write_bytes(b"half a file")
    raise call.refuse("bad_input", "tensor type BF8 is not supported", hint="convert to F16")


def _crashes(call: StepCall) -> dict[str, Any]:
    Path(call.request["output_path"]).write_bytes(b"half a file")
    raise call.crash("was killed by signal 9", stderr_tail="MemoryError")


def _malformed(call: StepCall) -> dict[str, Any]:
    Path(call.request["output_path"]).write_bytes(b"a whole file, but a bad answer")
    return {"seconds": "soon", "peak_rss_mb": 1.0, "bits_per_weight": F16_BITS}


@pytest.mark.parametrize(
    ("handler", "kind", "message"),
    [
        (_refuses, "bad_input", "tensor type BF8"),
        (_crashes, "crash", "killed by signal 9"),
        (_malformed, "crash", "malformed result"),
    ],
)
def test_a_failed_step_leaves_no_artifact_and_no_staging(
    handler: Any, kind: str, message: str, model: Path, store: ArtifactStore
) -> None:
    runner = FakeStepRunner({"gguf_convert": handler})
    with use_step_runner(runner), pytest.raises(StepError) as failed:
        quantize(str(model), "gguf", {"type": "F16"}, store=store)
    assert (failed.value.step, failed.value.kind) == ("gguf_convert", kind)
    assert message in failed.value.message
    assert runner.steps() == ["gguf_convert"]
    assert store.list() == [] and _leftovers(store) == []


def test_a_failed_k_quant_keeps_the_f16_it_was_made_from(model: Path, store: ArtifactStore) -> None:
    def fails(call: StepCall) -> dict[str, Any]:
        raise call.refuse("bad_input", "no imatrix")

    runner = FakeStepRunner({"gguf_convert": _convert, "gguf_quantize": fails})
    with use_step_runner(runner), pytest.raises(StepError, match="no imatrix"):
        quantize(str(model), "gguf", {"type": "Q4_K_M"}, store=store)
    assert [m.scheme for m in store.list()] == ["gguf-f16"] and _leftovers(store) == []


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("gptq", {"group_size": 128}, "group size 128 does not divide"),
        ("gptq", {"calibration": {"num_samples": 4096, "sequence_length": 8192}}, "calibration"),
        ("gguf", {"type": "Q4_K_Z"}, "type"),
        ("awq", {"group_sise": 64}, "group_sise"),
        ("int8", {"scheme": "W4A8"}, r"not W4A8 \(4-bit weights, 8-bit activations\)"),
        ("int8", {"scheme": "W8A16"}, "int8 makes W8A8 only"),
        ("int8", {"group_size": 64}, "group size"),
        ("int8", {"smoothing_strength": 1.5}, "smoothing_strength"),
        ("int8", {"calibration": {"num_samples": 4096, "sequence_length": 8192}}, "calibration"),
    ],
)
def test_refusals_come_before_any_step(
    method: str, options: dict[str, Any], message: str, model: Path, store: ArtifactStore
) -> None:
    runner = FakeStepRunner(lambda call: pytest.fail(f"step {call.step} ran"))
    with use_step_runner(runner), pytest.raises(QuantplanError, match=message):
        quantize(str(model), method, options, store=store)
    assert runner.calls == [] and store.list() == []


def _llmc_step(tensors: dict[str, Any], mse: float, relative_error: float) -> Any:
    """A fake llm-compressor step writing ``tensors`` as its checkpoint."""

    def step(call: StepCall) -> dict[str, Any]:
        output = Path(call.request["output_dir"])
        write_safetensors(output / "model.safetensors", tensors)
        (output / "config.json").write_text("{}")
        return {
            "calibration_tokens": call.request["num_samples"] * call.request["sequence_length"],
            "calibrate_seconds": 2.0,
            "total_seconds": 3.0,
            "peak_rss_mb": 900.0,
            "layer_errors": [{"layer": "l", "mse": mse, "relative_error": relative_error}],
        }

    return step


# One 8x128 layer at 4 bit, group 64: 512 B packed + 16 bf16 scales = 4.25 bits per weight.
_llmc_quantize = _llmc_step(
    {
        "l.weight_packed": ("I32", [8, 16], b"\0" * 512),
        "l.weight_scale": ("BF16", [8, 2], b"\0" * 32),
        "l.weight_shape": ("I64", [2], struct.pack("<2q", 8, 128)),
    },
    1e-5,
    0.03,
)


def test_gptq_manifest_carries_the_resolved_config_and_the_calibration(
    model: Path, store: ArtifactStore
) -> None:
    runner = FakeStepRunner({"llmc_quantize": _llmc_quantize})
    options = {"calibration": {"num_samples": 8, "sequence_length": 32}}
    with use_step_runner(runner):
        manifest = quantize(str(model), "gptq", options, store=store)
    (call,) = runner.calls
    # The group size was chosen before the step: 64 is the largest that tiles 576 and 1536.
    (gptq,) = call.request["recipe"]
    assert (call.request["method"], gptq["modifier"]) == ("gptq", GPTQ_MODIFIER)
    weights = gptq["args"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 64, True)
    assert gptq["args"]["ignore"] == ["lm_head"]
    assert call.request["num_samples"] == 8 and call.request["calibration_texts"]
    assert (manifest.scheme, manifest.kind) == ("gptq-w4a16-g64", "compressed-tensors")
    assert manifest.bits_per_weight == pytest.approx(4.25)
    assert manifest.parameters["resolved"]["group_size"] == 64
    assert manifest.calibration is not None
    assert (manifest.calibration["num_samples"], manifest.calibration["tokens"]) == (8, 8 * 32)
    assert manifest.toolchain == "llmcompressor"
    assert {file.path for file in manifest.files} == {
        "config.json",
        "model.safetensors",
        "quantplan-layer-errors.json",
    }


# One 8x128 layer in the int-quantized format: 1024 I8 values + 8 bf16 channel scales.
_llmc_quantize_w8a8 = _llmc_step(
    {"l.weight": ("I8", [8, 128], b"\0" * 1024), "l.weight_scale": ("BF16", [8, 1], b"\0" * 16)},
    1e-6,
    0.01,
)


def test_int8_asks_the_step_for_smoothquant_w8a8_and_records_its_scheme(
    model: Path, store: ArtifactStore
) -> None:
    runner = FakeStepRunner({"llmc_quantize": _llmc_quantize_w8a8})
    options = {"calibration": {"num_samples": 8, "sequence_length": 32}}
    with use_step_runner(runner):
        manifest = quantize(str(model), "int8", options, store=store)
        again = quantize(str(model), "int8", {**options, "scheme": "w8a8"}, store=store)
    (call,) = runner.calls
    smoothquant, gptq = call.request["recipe"]
    assert (smoothquant["modifier"], smoothquant["args"]) == (
        SMOOTHQUANT_MODIFIER,
        {"smoothing_strength": 0.8},
    )
    assert (gptq["modifier"], gptq["args"]["scheme"]) == (GPTQ_MODIFIER, "W8A8")
    assert (manifest.method, manifest.scheme, manifest.kind) == (
        "int8",
        "int8-w8a8",
        "compressed-tensors",
    )
    # 8 bits per value + one 16-bit scale per 128-wide row, read from the safetensors header.
    assert manifest.bits_per_weight == pytest.approx(8.125)
    assert manifest.parameters["scheme"] == "W8A8"
    assert manifest.parameters["resolved"]["group_size"] is None
    assert manifest.parameters["resolved"]["symmetric"] is True
    assert manifest.calibration is not None and manifest.calibration["tokens"] == 8 * 32
    assert manifest.toolchain == "llmcompressor"
    # The scheme is matched ignoring case: the second call found the first artifact.
    assert again == manifest


@pytest.mark.parametrize(
    "path", ["os:system", "llmcompressor.modifiers.gptq", "llmcompressor:", "torch.nn:Linear"]
)
def test_a_recipe_names_only_llm_compressor_classes(path: str) -> None:
    # The step imports what the recipe names: nothing but llm-compressor's modules.
    with pytest.raises(ValueError, match="modifier"):
        ModifierSpec(modifier=path)


def test_the_runner_is_put_back_after_the_block() -> None:
    from quantplan.agent.toolchains import steps

    real = steps.current_step_runner()
    with use_step_runner(FakeStepRunner({})) as fake:
        assert steps.current_step_runner() is fake
    assert steps.current_step_runner() is real
    assert isinstance(real, steps.SubprocessStepRunner)


def test_an_unknown_toolchain_or_step_is_refused_as_by_the_real_runner() -> None:
    from quantplan.agent.toolchains import ensure_toolchain, run_step

    with use_step_runner(FakeStepRunner({})):
        with pytest.raises(QuantplanError, match="toolchain"):
            ensure_toolchain("llama-cp")
        with pytest.raises(QuantplanError, match="no step script"):
            run_step(
                ensure_toolchain("llama-cpp"), "gguf_nope", StepProgress(message=""), StepProgress
            )


# One 8x128 layer in the float-quantized format: 1024 FP8 values + 8 bf16 channel scales.
_llmc_quantize_fp8 = _llmc_step(
    {
        "l.weight": ("F8_E4M3", [8, 128], b"\0" * 1024),
        "l.weight_scale": ("BF16", [8, 1], b"\0" * 16),
    },
    1e-6,
    0.02,
)


def test_fp8_asks_for_the_dynamic_preset_without_calibration_data(
    model: Path, store: ArtifactStore
) -> None:
    runner = FakeStepRunner({"llmc_quantize": _llmc_quantize_fp8})
    with use_step_runner(runner):
        manifest = quantize(str(model), "fp8", {}, store=store)
        with pytest.raises(QuantplanError, match="fp8 makes W8A8 only"):
            quantize(str(model), "fp8", {"scheme": "W4A16"}, store=store)
    (call,) = runner.calls
    (modifier,) = call.request["recipe"]
    assert modifier["args"]["scheme"] == "FP8_DYNAMIC"
    assert (call.request["num_samples"], call.request["calibration_texts"]) == (0, [])
    assert (manifest.method, manifest.scheme, manifest.calibration) == ("fp8", "fp8-w8a8", None)
    assert manifest.bits_per_weight == pytest.approx(8.125)
