"""Shared plumbing of the llm-compressor methods (-> compressed-tensors, for vLLM).

A method here is its config plus the llm-compressor recipe it asks for: a list of modifiers,
each named by its import path with its arguments (:class:`ModifierSpec`). The one step script
(``agent/steps/llmc_quantize.py``) builds and runs any such recipe, so it names no method.

Group size: a weight group must tile every quantized Linear's input dimension. SmolLM2-135M has
hidden 576 and intermediate 1536, so 128 (the usual default) is refused (576 = 4.5 x 128); the
automatic choice is the largest of 128, 64, 32 that divides every input dimension, i.e. 64 there.
Smaller groups cost more scale bits (W4 g64: +0.25 bit per weight for FP16 scales) and follow
the weights more closely. W8A16 uses one scale per output channel, which always divides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantplan.agent.artifacts import ArtifactManifest, ArtifactStore
from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.base import (
    ProgressCallback,
    QuantizeOutcome,
    Quantizer,
    QuantizerConfig,
    QuantizeRefusal,
)
from quantplan.agent.quantize.calibration import (
    CalibrationSettings,
    calibration_text,
    default_split,
)
from quantplan.agent.quantize.weight_formats import compressed_bits_per_weight
from quantplan.agent.serve.host import HostHardware
from quantplan.catalog.registry import MethodName

GROUP_CANDIDATES = (128, 64, 32)


class RecipeConfig(QuantizerConfig):
    """What every llm-compressor method's config has: the layers left in 16 bit."""

    ignore: tuple[str, ...] = Field(default=("lm_head",), description="Layers left in 16 bit.")


class CalibratedConfig(RecipeConfig):
    """An llm-compressor method that calibrates on text."""

    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)


class W8A8Config(RecipeConfig):
    """8-bit weights and 8-bit activations (INT8 or FP8): ``scheme`` is W8A8 in any case."""

    scheme: str = Field(default="W8A8", description="Weight bits / activation bits: W8A8.")

    @field_validator("scheme", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        # 'w8a8' and 'W8A8' are one scheme, so one content address.
        return value.upper() if isinstance(value, str) else value


class LlmCompressorConfig(CalibratedConfig):
    """Shared knobs of the weight-only llm-compressor methods (GPTQ, AWQ)."""

    scheme: Literal["W4A16", "W8A16"] = Field(
        default="W4A16", description="Weight bits / activation bits."
    )
    group_size: int | None = Field(
        default=None,
        gt=0,
        description="Weights per scale group for W4A16; None picks the largest of 128/64/32 "
        "that divides every Linear input dimension. W8A16 is per-channel.",
    )
    # Each method declares its own default and description (GPTQ symmetric, AWQ zero-point).
    symmetric: bool = Field(description="Symmetric integer weights (no zero point).")


GPTQ_MODIFIER = "llmcompressor.modifiers.gptq:GPTQModifier"
AWQ_MODIFIER = "llmcompressor.modifiers.transform.awq:AWQModifier"
QUANTIZATION_MODIFIER = "llmcompressor.modifiers.quantization:QuantizationModifier"
SMOOTHQUANT_MODIFIER = "llmcompressor.modifiers.transform.smoothquant:SmoothQuantModifier"
"""llm-compressor's modifiers the methods use, by import path (``module:Class``)."""


class ModifierSpec(BaseModel):
    """One llm-compressor modifier of a recipe: its class by import path, and its arguments."""

    model_config = ConfigDict(extra="forbid")
    modifier: str = Field(pattern=r"^llmcompressor(\.\w+)+:\w+$")
    args: dict[str, Any] = Field(default_factory=dict)


def weight_groups(bits: int, group_size: int | None, symmetric: bool) -> dict[str, Any]:
    """compressed-tensors' ``config_groups`` for integer weights on every Linear: grouped scales
    with ``group_size``, else one per output channel."""
    weights: dict[str, Any] = {
        "num_bits": bits,
        "type": "int",
        "symmetric": symmetric,
        "strategy": "group" if group_size else "channel",
    }
    if group_size:
        weights["group_size"] = group_size
    return {"group_0": {"targets": ["Linear"], "weights": weights}}


class _StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: MethodName  # for progress lines and records only: the recipe says what runs
    recipe: list[ModifierSpec] = Field(min_length=1)
    model_dir: str
    output_dir: str
    ignore: list[str]
    calibration_texts: list[str]  # empty, with num_samples 0: the recipe needs no data
    num_samples: int
    sequence_length: int
    measure_layer_error: bool


class _LayerError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: str
    mse: float
    relative_error: float


class _StepResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calibration_tokens: int
    calibrate_seconds: float
    total_seconds: float
    peak_rss_mb: float
    layer_errors: list[_LayerError]


def input_dimensions(model: ModelSource) -> tuple[int, ...]:
    """Input widths of the quantized Linear layers (q/k/v/o/gate/up take hidden, down takes
    intermediate; o_proj takes heads x head_dim, which equals hidden in these families)."""
    return (model.hidden_size, model.intermediate_size)


def resolve_group_size(config: LlmCompressorConfig, model: ModelSource) -> int | None:
    if config.scheme == "W8A16":
        return None
    dims = input_dimensions(model)
    if config.group_size is not None:
        bad = [dim for dim in dims if dim % config.group_size]
        if bad:
            fits = [g for g in GROUP_CANDIDATES if all(dim % g == 0 for dim in dims)]
            raise QuantizeRefusal(
                f"group size {config.group_size} does not divide the layer input width(s) "
                f"{', '.join(map(str, bad))} of {model.name}",
                hint=f"use --group-size {fits[0]}" if fits else "use a per-channel scheme",
            )
        return config.group_size
    for candidate in GROUP_CANDIDATES:
        if all(dim % candidate == 0 for dim in dims):
            return candidate
    raise QuantizeRefusal(
        f"no group size among {GROUP_CANDIDATES} divides {dims} of {model.name}",
        hint="pass --group-size explicitly or use W8A16 (per channel)",
    )


class LlmCompressorMethod(Quantizer):
    """Shared llm-compressor plumbing: one step script, methods differ in config and recipe.

    The weight-only methods (GPTQ, AWQ) share ``check`` and ``scheme_name``; every method
    gives its ``recipe`` and the ``resolved`` settings its manifest records.
    """

    toolchain: ClassVar[str] = "llmcompressor"

    def can_run(self, hardware: HostHardware, model: ModelSource) -> tuple[bool, str]:
        # Calibration holds the bf16 model plus a copy of the Linear weights and activations.
        needed_gb = 4 * model.weight_bytes / 1e9 + 2
        if hardware.memory_gb < needed_gb:
            return (
                False,
                f"needs about {needed_gb:.0f} GB of RAM, host has {hardware.memory_gb:.0f}",
            )
        return True, "llm-compressor runs on CPU (slowly) and on CUDA GPUs"

    def check(self, config: QuantizerConfig, model: ModelSource) -> None:
        assert isinstance(config, LlmCompressorConfig)
        resolve_group_size(config, model)
        calibration_text(config.calibration, default_split("evaluation"))

    def scheme_name(self, config: QuantizerConfig, model: ModelSource) -> str:
        assert isinstance(config, LlmCompressorConfig)
        group = resolve_group_size(config, model)
        suffix = f"-g{group}" if group else "-ch"
        return f"{self.method}-{config.scheme.lower()}{suffix}"

    def recipe(self, config: QuantizerConfig, model: ModelSource) -> list[ModifierSpec]:
        """The llm-compressor modifiers to run, in order (``config`` resolved for ``model``)."""
        raise NotImplementedError(f"{type(self).__name__} gives no recipe")

    def resolved(self, config: QuantizerConfig, model: ModelSource) -> dict[str, Any]:
        """The weights' grouping and symmetry as quantized, for the manifest's details."""
        assert isinstance(config, LlmCompressorConfig)
        return {"group_size": resolve_group_size(config, model), "symmetric": config.symmetric}

    def weight_only_groups(self, config: QuantizerConfig, model: ModelSource) -> dict[str, Any]:
        """compressed-tensors' ``config_groups`` of a weight-only config (W4A16 / W8A16)."""
        assert isinstance(config, LlmCompressorConfig)
        bits = 4 if config.scheme == "W4A16" else 8
        return weight_groups(bits, resolve_group_size(config, model), config.symmetric)

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

        del store, prerequisite  # made from the source checkpoint alone
        # A method whose config has no calibration settings (FP8 dynamic) runs without data.
        calibration = getattr(config, "calibration", None)
        text = calibration_text(calibration, default_split("evaluation")) if calibration else None
        request = _StepRequest(
            method=self.method,
            recipe=self.recipe(config, model),
            model_dir=str(model.path),
            output_dir=str(staging),
            ignore=list(getattr(config, "ignore", ())),
            calibration_texts=list(text.documents) if text else [],
            num_samples=calibration.num_samples if calibration else 0,
            sequence_length=calibration.sequence_length if calibration else 0,
            measure_layer_error=config.measure_layer_error,
        )
        toolchain = ensure_toolchain(self.toolchain)
        response = run_step(
            toolchain,
            "llmc_quantize",
            request,
            _StepResponse,
            timeout_s=7200,
            on_progress=on_progress,
        )
        bits = compressed_bits_per_weight(staging)
        return QuantizeOutcome(
            scheme=self.scheme_name(config, model),
            kind="compressed-tensors",
            bits_per_weight=round(bits.get("quantized_layers", bits["all_weights"]), 4),
            quantize_seconds=response.total_seconds,
            peak_memory_mb=response.peak_rss_mb,
            calibration=None
            if calibration is None or text is None
            else {
                "text": text.name,
                "fingerprint": text.fingerprint,
                "num_samples": calibration.num_samples,
                "sequence_length": calibration.sequence_length,
                "tokens": response.calibration_tokens,
            },
            layer_errors=[row.model_dump() for row in response.layer_errors],
            details={
                "bits_per_weight_all": round(bits["all_weights"], 4),
                "calibrate_seconds": response.calibrate_seconds,
                **self.resolved(config, model),
            },
        )
