"""GGUF with llama.cpp: the HF checkpoint becomes an F16 GGUF (llama.cpp's converter), which is
then quantized through llama-cpp-python's ``llama_model_quantize`` binding.

The F16 GGUF is an artifact of its own, so every other type reuses one conversion. K-quants
(Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K) need rows of 256 weights; SmolLM2's 576-wide rows are
not, so llama.cpp falls back to other block types for most tensors. The measured bits per
weight and the type mix are recorded for that reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quantplan.agent.artifacts import ArtifactManifest, ArtifactStore
from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.base import (
    ProgressCallback,
    QuantizeOutcome,
    Quantizer,
    QuantizerConfig,
)
from quantplan.agent.serve.host import HostHardware

GgufType = Literal["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"]
GGUF_TYPES: tuple[str, ...] = GgufType.__args__  # type: ignore[attr-defined]


class GgufConfig(QuantizerConfig):
    """Which llama.cpp type to produce."""

    type: GgufType = Field(default="Q4_K_M", description="llama.cpp quantization type.")

    @model_validator(mode="before")
    @classmethod
    def _f16_has_no_layer_error(cls, data: Any) -> Any:
        # F16 is the reference itself; ignoring the flag keeps one F16 artifact per model.
        if isinstance(data, dict) and data.get("type") == "F16":
            data = {key: value for key, value in data.items() if key != "measure_layer_error"}
        return data


class _Bits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matrices: float
    all_tensors: float
    weight_share_by_type: dict[str, float]


class _ConvertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: str
    output_path: str


class _ConvertResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float
    peak_rss_mb: float
    bits_per_weight: _Bits


class _QuantizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_path: str
    output_path: str
    type: str
    threads: int
    measure_layer_error: bool


class _QuantizeResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float
    peak_rss_mb: float
    bits_per_weight: _Bits
    layer_errors: list[dict[str, float | str]]
    llama_cpp_version: str


class GgufQuantizer(Quantizer):
    method = "gguf"
    toolchain: ClassVar[str] = "llama-cpp"
    config_type = GgufConfig

    def can_run(self, hardware: HostHardware, model: ModelSource) -> tuple[bool, str]:
        needed_gb = 3 * model.weight_bytes / 1e9 + 1
        if hardware.memory_gb < needed_gb:
            return False, f"needs about {needed_gb:.0f} GB of RAM for the F16 conversion"
        return True, "llama.cpp converts and quantizes on any CPU"

    def check(self, config: QuantizerConfig, model: ModelSource) -> None:
        del config, model  # every supported architecture converts; types are a closed Literal

    def scheme_name(self, config: QuantizerConfig, model: ModelSource) -> str:
        assert isinstance(config, GgufConfig)
        return f"gguf-{config.type.lower()}"

    def prerequisite(self, config: QuantizerConfig) -> tuple[str, dict[str, Any]] | None:
        assert isinstance(config, GgufConfig)
        # Every other type is quantized from the F16 GGUF, converted once per model.
        return None if config.type == "F16" else (self.method, {"type": "F16"})

    def quantize(
        self,
        model: ModelSource,
        config: QuantizerConfig,
        staging: Path,
        on_progress: ProgressCallback = None,
        store: ArtifactStore | None = None,
        prerequisite: ArtifactManifest | None = None,
    ) -> QuantizeOutcome:
        from quantplan.agent.toolchains import ensure_toolchain, run_step

        assert isinstance(config, GgufConfig)
        toolchain = ensure_toolchain(self.toolchain)
        output = staging / f"{model.name}-{config.type}.gguf"
        if config.type == "F16":
            converted = run_step(
                toolchain,
                "gguf_convert",
                _ConvertRequest(model_dir=str(model.path), output_path=str(output)),
                _ConvertResponse,
                timeout_s=3600,
                on_progress=on_progress,
            )
            return QuantizeOutcome(
                scheme="gguf-f16",
                kind="gguf",
                main_file=output.name,
                bits_per_weight=round(converted.bits_per_weight.matrices, 4),
                quantize_seconds=converted.seconds,
                peak_memory_mb=converted.peak_rss_mb,
                details={"bits": converted.bits_per_weight.model_dump()},
            )
        if prerequisite is None or store is None:
            raise ValueError("a GGUF type other than F16 is made from the F16 GGUF artifact")
        f16 = prerequisite
        source_path = store.local_dir(f16) / (f16.main_file or "")
        response = run_step(
            toolchain,
            "gguf_quantize",
            _QuantizeRequest(
                input_path=str(source_path),
                output_path=str(output),
                type=config.type,
                threads=os.cpu_count() or 1,
                measure_layer_error=config.measure_layer_error,
            ),
            _QuantizeResponse,
            timeout_s=3600,
            on_progress=on_progress,
        )
        return QuantizeOutcome(
            scheme=self.scheme_name(config, model),
            kind="gguf",
            main_file=output.name,
            bits_per_weight=round(response.bits_per_weight.matrices, 4),
            quantize_seconds=response.seconds,
            peak_memory_mb=response.peak_rss_mb,
            layer_errors=[dict(row) for row in response.layer_errors],
            details={
                "bits": response.bits_per_weight.model_dump(),
                "f16_artifact": f16.artifact_id,
                "llama_cpp_version": response.llama_cpp_version,
            },
        )
