"""Every method on the real default model (SmolLM2-135M), small calibration to keep CI sane.

Artifacts land in the shared cache (``cache_dir()/artifacts``), so a second run of the suite
reuses them and only checks; the first run on a fresh machine builds the toolchains and runs
each quantization once (GPTQ and AWQ take minutes on two cores).
"""

from __future__ import annotations

import json
import time

import pytest

from quantplan.agent.artifacts import ArtifactStore
from quantplan.agent.quantize import quantize
from quantplan.agent.quantize.gguf import GGUF_TYPES

pytestmark = [pytest.mark.toolchain, pytest.mark.slow]

CI_CALIBRATION = {"num_samples": 8, "sequence_length": 64}


def _assert_compressed_tensors(manifest, store: ArtifactStore, *, symmetric: bool) -> None:
    directory = store.local_dir(manifest)
    config = json.loads((directory / "config.json").read_text())
    quantization = config["quantization_config"]
    assert quantization["quant_method"] == "compressed-tensors"
    weights = quantization["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"]) == (4, 64)
    assert weights["symmetric"] is symmetric
    # 4-bit values + one bf16 scale per 64 weights (+ a zero point when asymmetric).
    assert 4.2 < manifest.bits_per_weight < 4.5
    assert manifest.source_dequantized_from == "Q4_1"
    assert {f.path for f in manifest.files} >= {"config.json", "model.safetensors"}
    errors = json.loads((directory / "quantplan-layer-errors.json").read_text())
    assert len(errors) == 30 * 7  # q k v o gate up down in 30 layers; lm_head stays bf16
    assert all(0 < row["relative_error"] < 1 for row in errors)


def test_gptq_w4a16_on_the_default_model_is_cached_on_repeat() -> None:
    store = ArtifactStore()
    options = {"scheme": "W4A16", "calibration": CI_CALIBRATION}
    manifest = quantize("default", "gptq", options, store=store)
    assert manifest.scheme == "gptq-w4a16-g64"
    _assert_compressed_tensors(manifest, store, symmetric=True)
    started = time.monotonic()
    again = quantize("default", "gptq", options, store=store)
    assert again.artifact_id == manifest.artifact_id
    assert time.monotonic() - started < 30  # a lookup, not a second quantization


def test_gptq_without_layer_error_writes_the_same_weights() -> None:
    """The measurement only reads the weights: switching it off (as the overhead bench does)
    changes the artifact's id and drops the error file, never the quantized checkpoint."""
    store = ArtifactStore()
    measured, unmeasured = (
        quantize(
            "default",
            "gptq",
            {"calibration": CI_CALIBRATION, "measure_layer_error": measure},
            store=store,
        )
        for measure in (True, False)
    )
    assert measured.artifact_id != unmeasured.artifact_id
    digests = [{f.path: f.sha256 for f in m.files} for m in (measured, unmeasured)]
    assert "quantplan-layer-errors.json" in digests[0]
    assert "quantplan-layer-errors.json" not in digests[1]
    assert digests[1]["model.safetensors"] == digests[0]["model.safetensors"]


def test_awq_w4a16_on_the_default_model_runs_on_a_cpu_only_host() -> None:
    store = ArtifactStore()
    manifest = quantize("default", "awq", {"calibration": CI_CALIBRATION}, store=store)
    assert manifest.scheme == "awq-w4a16-g64"
    _assert_compressed_tensors(manifest, store, symmetric=False)


def test_every_gguf_type_records_measured_bits_per_weight() -> None:
    store = ArtifactStore()
    manifests = {
        kind: quantize("default", "gguf", {"type": kind}, store=store) for kind in GGUF_TYPES
    }
    bits = {kind: manifest.bits_per_weight for kind, manifest in manifests.items()}
    assert bits["F16"] == pytest.approx(16.0)
    assert bits["Q8_0"] == pytest.approx(8.5, abs=0.01)
    # K-quants fall back on 576-wide rows: measured bits exceed the nominal ones.
    assert bits["Q4_K_M"] > 4.9
    assert bits["Q2_K"] < bits["Q4_K_M"] < bits["Q8_0"] < bits["F16"]
    for kind, manifest in manifests.items():
        path = store.local_dir(manifest) / manifest.main_file
        assert path.stat().st_size == next(f.bytes for f in manifest.files if f.path == path.name)
        if kind != "F16":
            assert manifest.parameters["resolved"]["f16_artifact"] == manifests["F16"].artifact_id


def test_int8_w8a8_quantizes_weights_and_activations_to_int8() -> None:
    store = ArtifactStore()
    manifest = quantize("default", "int8", {"calibration": CI_CALIBRATION}, store=store)
    assert (manifest.method, manifest.scheme) == ("int8", "int8-w8a8")
    directory = store.local_dir(manifest)
    quantization = json.loads((directory / "config.json").read_text())["quantization_config"]
    assert quantization["quant_method"] == "compressed-tensors"
    assert quantization["format"] == "int-quantized"
    (group,) = quantization["config_groups"].values()
    weights, activations = group["weights"], group["input_activations"]
    assert (weights["type"], weights["num_bits"], weights["strategy"]) == ("int", 8, "channel")
    assert weights["symmetric"] is True and weights["dynamic"] is False
    assert (activations["type"], activations["num_bits"]) == ("int", 8)
    assert (activations["strategy"], activations["dynamic"]) == ("token", True)
    assert "lm_head" in quantization["ignore"]
    # 8-bit values + one bf16 scale per output row of 576 or 1536 inputs.
    assert 8.0 < manifest.bits_per_weight < 8.05
    errors = json.loads((directory / "quantplan-layer-errors.json").read_text())
    # Against the smoothed weights GPTQ quantized, not against the loaded ones.
    assert len(errors) == 30 * 7 and all(0 < row["relative_error"] < 0.05 for row in errors)


def test_fp8_quantizes_through_the_cli_without_calibration_data(tmp_path) -> None:
    # As a user runs it: the installed script, no calibration options (fp8 has none to take).
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "quantplan"
    result = subprocess.run(
        [str(script), "quantize", "--method", "FP8", "--json"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (manifest,) = json.loads(result.stdout)
    assert (manifest["method"], manifest["scheme"]) == ("fp8", "fp8-w8a8")
    assert manifest["calibration"] is None
    store = ArtifactStore()
    stored = store.get(manifest["artifact_id"])
    assert stored is not None
    directory = store.local_dir(stored)
    quantization = json.loads((directory / "config.json").read_text())["quantization_config"]
    assert quantization["format"] == "float-quantized"
    (group,) = quantization["config_groups"].values()
    weights, activations = group["weights"], group["input_activations"]
    assert (weights["type"], weights["num_bits"], weights["strategy"]) == ("float", 8, "channel")
    assert (activations["type"], activations["strategy"], activations["dynamic"]) == (
        "float",
        "token",
        True,
    )
    # 8-bit values + one bf16 scale per output row.
    assert 8.0 < manifest["bits_per_weight"] < 8.05
    errors = json.loads((directory / "quantplan-layer-errors.json").read_text())
    assert len(errors) == 30 * 7 and all(0 < row["relative_error"] < 0.1 for row in errors)
