"""Pure logic of quantization: calibration split and checks, group sizes, configs, store."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from safetensors_files import write_safetensors

from quantplan.agent.artifacts import ArtifactManifest, ArtifactStore, describe_files
from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize import build_config
from quantplan.agent.quantize.base import QuantizeRefusal
from quantplan.agent.quantize.calibration import (
    CalibrationError,
    CalibrationSettings,
    calibration_text,
    default_split,
    load_text_file,
)
from quantplan.agent.quantize.gptq import GptqConfig, GptqQuantizer
from quantplan.agent.quantize.llmcompressor_common import resolve_group_size
from quantplan.agent.quantize.weight_formats import compressed_bits_per_weight

SMOLLM2 = ModelSource(
    name="SmolLM2-135M-Instruct",
    path=Path("/nonexistent"),
    content_sha256="0" * 64,
    model_type="llama",
    hidden_size=576,
    intermediate_size=1536,
    num_layers=30,
    weight_bytes=269_060_552,
    dequantized_from="Q4_1",
)


def test_default_split_never_overlaps_and_is_deterministic() -> None:
    calibration, evaluation = default_split("calibration"), default_split("evaluation")
    assert calibration.documents and evaluation.documents
    assert not set(calibration.documents) & set(evaluation.documents)
    assert default_split("evaluation").fingerprint == evaluation.fingerprint


def test_calibration_too_small_is_refused_before_any_model(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("just a few words\n\nand a second paragraph")
    settings = CalibrationSettings(source=str(small), num_samples=16, sequence_length=128)
    with pytest.raises(CalibrationError, match="fewer than the 2048 tokens"):
        calibration_text(settings, default_split("evaluation"))


def test_empty_calibration_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(CalibrationError, match="is empty"):
        calibration_text(CalibrationSettings(source=str(empty)), default_split("evaluation"))


def test_calibration_overlapping_evaluation_is_refused(tmp_path: Path) -> None:
    leaked = tmp_path / "leak.jsonl"
    evaluation = default_split("evaluation")
    leaked.write_text("\n".join(json.dumps({"text": doc}) for doc in evaluation.documents))
    with pytest.raises(CalibrationError, match="both the calibration and evaluation"):
        calibration_text(
            CalibrationSettings(source=str(leaked), num_samples=1, sequence_length=16), evaluation
        )


def test_jsonl_and_txt_are_read_as_documents(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "alpha"}\n{"text": "beta"}\n')
    assert load_text_file(jsonl).documents == ("alpha", "beta")
    txt = tmp_path / "c.txt"
    txt.write_text("one\ntwo\n\nthree\n")
    assert load_text_file(txt).documents == ("one\ntwo", "three")
    bad = tmp_path / "c2.jsonl"
    bad.write_text('{"content": "x"}\n')
    with pytest.raises(CalibrationError, match="'text' field"):
        load_text_file(bad)


def test_group_size_auto_picks_64_for_smollm2_and_refuses_128() -> None:
    assert resolve_group_size(GptqConfig(), SMOLLM2) == 64
    with pytest.raises(QuantizeRefusal, match="does not divide") as caught:
        resolve_group_size(GptqConfig(group_size=128), SMOLLM2)
    assert "--group-size 64" in str(caught.value)
    assert resolve_group_size(GptqConfig(scheme="W8A16"), SMOLLM2) is None


def test_scheme_names_match_the_catalog_convention() -> None:
    assert GptqQuantizer().scheme_name(GptqConfig(), SMOLLM2) == "gptq-w4a16-g64"
    assert GptqQuantizer().scheme_name(GptqConfig(scheme="W8A16"), SMOLLM2) == "gptq-w8a16-ch"


def test_unknown_options_are_refused_by_the_strict_config() -> None:
    with pytest.raises(QuantizeRefusal, match="group_sise"):
        build_config("gptq", {"group_sise": 64})
    with pytest.raises(QuantizeRefusal, match="type"):
        build_config("gguf", {"type": "Q4_K_Z"})


def test_bits_per_weight_is_measured_from_the_packed_tensors(tmp_path: Path) -> None:
    # One 8x128 layer at 4 bit, group 64: 512 B packed + 16 bf16 scales (32 B) = 4.25 bits.
    write_safetensors(
        tmp_path / "model.safetensors",
        {
            "l.weight_packed": ("I32", [8, 16], b"\0" * 512),
            "l.weight_scale": ("BF16", [8, 2], b"\0" * 32),
            "l.weight_shape": ("I64", [2], struct.pack("<2q", 8, 128)),
            "norm.weight": ("BF16", [128], b"\0" * 256),
        },
    )
    bits = compressed_bits_per_weight(tmp_path)
    assert bits["quantized_layers"] == pytest.approx(4.25)
    assert bits["all_weights"] == pytest.approx((544 + 256) * 8 / (1024 + 128))


ABC_ID = "abc000000000000000000000"
MEMORY_ID = "3e3e00000000000000000001"


def _manifest(artifact_id: str, directory: Path) -> ArtifactManifest:
    files, total = describe_files(directory)
    return ArtifactManifest(
        artifact_id=artifact_id,
        kind="gguf",
        method="gguf",
        scheme="gguf-q8_0",
        parameters={},
        source_model="m",
        source_model_sha256="0",
        toolchain="llama-cpp",
        toolchain_key="k",
        tool_versions={},
        files=tuple(files),
        total_bytes=total,
        source_weight_bytes=1000,
        quantize_seconds=1.0,
        created_at=datetime.now(UTC),
    )


def test_store_commit_is_atomic_and_reused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    staging = store.staging_dir(ABC_ID)
    (staging / "model.gguf").write_bytes(b"x" * 100)
    assert store.get(ABC_ID) is None
    store.commit(staging, _manifest(ABC_ID, staging))
    assert not staging.exists()
    found = store.get(ABC_ID)
    assert found is not None and found.total_bytes == 100
    assert store.find("gguf-q8_0").artifact_id == ABC_ID
    assert [m.artifact_id for m in store.list()] == [ABC_ID]


def test_uncommitted_staging_is_invisible(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    staging = store.staging_dir("0f0f0f0f0f0f0f0f0f0f0f0f")
    (staging / "model.gguf").write_bytes(b"x")
    assert store.list() == []
    store.discard(staging)
    assert list((tmp_path / "store").iterdir()) == []


def test_store_works_on_any_fsspec_filesystem() -> None:
    store = ArtifactStore("memory://quantplan-test-store")
    staging = store.staging_dir(MEMORY_ID)
    (staging / "a.bin").write_bytes(b"abc")
    store.commit(staging, _manifest(MEMORY_ID, staging))
    manifest = store.get(MEMORY_ID)
    assert manifest is not None
    assert (store.local_dir(manifest) / "a.bin").read_bytes() == b"abc"
