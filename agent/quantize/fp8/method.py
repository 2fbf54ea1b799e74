"""FP8 W8A8 with llm-compressor: the ``FP8_DYNAMIC`` preset, no calibration data.

Weights: FP8 E4M3, one scale per output channel (static). Activations: FP8 E4M3, one scale per
token computed at run time (dynamic). Neither needs calibration text, so the step runs the
recipe without a dataset, in seconds. vLLM runs the checkpoint with FP8 tensor-core matmuls
from compute capability 8.9 (Ada, Hopper), weight-only FP8 Marlin on Ampere, and not on CPUs
(catalog/seed/support.yaml). Catalog scheme: ``fp8-w8a8`` (catalog/seed/schemes.yaml).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.base import QuantizerConfig, QuantizeRefusal
from quantplan.agent.quantize.llmcompressor_common import (
    QUANTIZATION_MODIFIER,
    LlmCompressorMethod,
    ModifierSpec,
    W8A8Config,
)

SCHEME = "W8A8"
PRESET = "FP8_DYNAMIC"
"""compressed-tensors' preset: FP8 per-channel weights, dynamic per-token FP8 activations."""


class Fp8Config(W8A8Config):
    """FP8 weights per channel and FP8 activations per token (no calibration)."""

    scheme: str = Field(
        default=SCHEME,
        description="Weight bits / activation bits. Only W8A8 (FP8 weights and activations).",
    )


class Fp8Quantizer(LlmCompressorMethod):
    method = "fp8"
    config_type = Fp8Config

    def check(self, config: QuantizerConfig, model: ModelSource) -> None:
        assert isinstance(config, Fp8Config)
        del model
        if config.scheme != SCHEME:
            raise QuantizeRefusal(
                f"fp8 makes W8A8 only (FP8 weights and FP8 activations), not {config.scheme}",
                hint="drop --scheme (W8A8 is the default); for integer W8A8 use --method int8, "
                "for weight-only W4A16 or W8A16 --method gptq or --method awq",
            )

    def scheme_name(self, config: QuantizerConfig, model: ModelSource) -> str:
        del config, model
        return "fp8-w8a8"

    def recipe(self, config: QuantizerConfig, model: ModelSource) -> list[ModifierSpec]:
        assert isinstance(config, Fp8Config)
        del model
        args = {"targets": "Linear", "scheme": PRESET, "ignore": list(config.ignore)}
        return [ModifierSpec(modifier=QUANTIZATION_MODIFIER, args=args)]

    def resolved(self, config: QuantizerConfig, model: ModelSource) -> dict[str, Any]:
        del config, model
        return {"group_size": None, "symmetric": True}
