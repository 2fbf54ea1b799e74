"""Engine capability checks, artifact inspection and the engine-log classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantplan.agent.serve import (
    LlamaCppServer,
    LlamaServer,
    VllmServer,
    engine_for_artifact,
    get_engine,
)
from quantplan.agent.serve.engine import ServeOptions, inspect_artifact
from quantplan.agent.serve.errors import (
    EngineDiedError,
    InvalidArtifactError,
    KernelMissingError,
    OutOfMemoryAtLoadError,
    UnsupportedHardwareError,
    classify_engine_log,
)
from quantplan.agent.serve.host import HostHardware
from quantplan.errors import UnknownNameError

AVX512 = HostHardware(
    device_kind="cpu",
    cpu_flags=frozenset({"avx2", "avx512f", "fma", "f16c"}),
    logical_cpus=2,
    memory_gb=24,
)
V100 = HostHardware(
    device_kind="gpu", logical_cpus=8, memory_gb=64, gpu_name="V100", compute_capability=7.0
)


def hf_dir(tmp_path: Path, name: str, quantization: dict | None = None) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    config: dict = {"model_type": "llama"}
    if quantization:
        config["quantization_config"] = quantization
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(b"\0")
    return directory


def compressed(bits: int, symmetric: bool, activations: tuple[str, int] | None = None) -> dict:
    group: dict = {"weights": {"num_bits": bits, "symmetric": symmetric}}
    if activations:
        group["input_activations"] = {"type": activations[0], "num_bits": activations[1]}
    return {"quant_method": "compressed-tensors", "config_groups": {"group_0": group}}


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            "ValueError: The model's max seq len (4096) is larger than the maximum number of "
            "tokens that can be stored in KV cache (3584).",
            OutOfMemoryAtLoadError,
        ),
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            OutOfMemoryAtLoadError,
        ),
        (
            "ValueError: The quantization method awq is not supported for the current GPU. "
            "Minimum capability: 75. Current capability: 70.",
            UnsupportedHardwareError,
        ),
        ("NotImplementedError: GPTQ asym quant is not supported on CPU", UnsupportedHardwareError),
        (
            "ValueError: Failed to find a kernel that can implement the WNA16 linear layer.",
            KernelMissingError,
        ),
        (
            "RuntimeError: CUDA error: no kernel image is available for execution",
            KernelMissingError,
        ),
        ("gguf_init_from_file_impl: invalid magic characters", InvalidArtifactError),
        ("INFO: everything is fine", None),
    ],
)
def test_engine_log_classifier(log: str, expected: type[EngineDiedError] | None) -> None:
    assert classify_engine_log("loading...\n" + log + "\n") is expected


def test_inspect_compressed_tensors_and_plain_checkpoints(tmp_path: Path) -> None:
    plain = inspect_artifact(hf_dir(tmp_path, "bf16"))
    assert (plain.format, plain.quant_method, plain.weight_bits) == ("hf", "none", None)
    gptq = inspect_artifact(hf_dir(tmp_path, "gptq", compressed(4, True)))
    assert (gptq.quant_method, gptq.weight_bits, gptq.symmetric) == ("compressed-tensors", 4, True)


def test_vllm_cpu_can_run_matrix(tmp_path: Path) -> None:
    vllm = VllmServer()
    assert vllm.can_run(AVX512, inspect_artifact(hf_dir(tmp_path, "a")))[0]
    assert vllm.can_run(AVX512, inspect_artifact(hf_dir(tmp_path, "b", compressed(4, False))))[0]
    ok, reason = vllm.can_run(AVX512, inspect_artifact(hf_dir(tmp_path, "c", compressed(8, True))))
    assert not ok and "4-bit" in reason
    asym_gptq = {"quant_method": "gptq", "bits": 4, "sym": False}
    ok, reason = vllm.can_run(AVX512, inspect_artifact(hf_dir(tmp_path, "d", asym_gptq)))
    assert not ok and "asymmetric" in reason
    awq = {"quant_method": "awq", "bits": 4, "zero_point": True}
    ok, reason = vllm.can_run(V100, inspect_artifact(hf_dir(tmp_path, "e", awq)))
    assert not ok and "7.5" in reason
    # W8A8: INT8 weights with INT8 activations have a CPU kernel; FP8 W8A8 has none.
    int8 = inspect_artifact(hf_dir(tmp_path, "f", compressed(8, True, ("int", 8))))
    assert int8.activations == "int8"
    ok, reason = vllm.can_run(AVX512, int8)
    assert ok and "W8A8" in reason
    fp8 = inspect_artifact(hf_dir(tmp_path, "g", compressed(8, True, ("float", 8))))
    ok, reason = vllm.can_run(AVX512, fp8)
    assert not ok and "float8" in reason


def test_llama_cpp_needs_gguf_and_its_build_flags(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 32)
    info = inspect_artifact(gguf)
    assert info.format == "gguf"
    assert LlamaCppServer().can_run(AVX512, info)[0]
    no_avx512 = AVX512.model_copy(update={"cpu_flags": frozenset({"avx2", "fma", "f16c"})})
    assert not LlamaCppServer().can_run(no_avx512, info)[0]
    assert not LlamaCppServer(cuda=True).can_run(AVX512, info)[0]
    # GGUF is served by llama.cpp's own llama-server; the Python bindings' server on request.
    assert isinstance(engine_for_artifact(gguf), LlamaServer)
    assert isinstance(get_engine("llama-cpp-python"), LlamaCppServer)


def test_commands_bind_localhost_by_default(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 32)
    for engine, artifact in ((LlamaCppServer(), gguf), (VllmServer(), hf_dir(tmp_path, "x"))):
        command = engine.command(Path("python"), inspect_artifact(artifact), ServeOptions(), 8000)
        assert command[command.index("--host") + 1] == "127.0.0.1"


def test_unknown_engine_name_suggests() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_engine("vlm")
    assert caught.value.hint and "vllm" in caught.value.hint
