"""INT8 W8A8 with llm-compressor: SmoothQuant, then GPTQ with the "W8A8" preset.

Weights: symmetric INT8, one scale per output channel (static). Activations: symmetric INT8,
one scale per token computed at run time (dynamic), so calibration serves SmoothQuant and GPTQ's
Hessians only. SmoothQuant moves activation outliers into the weights (``smoothing_strength``
of the per-channel range) before quantizing; the result is a compressed-tensors checkpoint that
vLLM runs with INT8 matmuls (CUTLASS on CUDA from compute capability 7.5, oneDNN on x86 CPUs).
Catalog scheme: ``int8-w8a8`` (catalog/seed/schemes.yaml), whatever the model's widths, since
per-channel scales need no group that tiles them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.base import QuantizerConfig, QuantizeRefusal
from quantplan.agent.quantize.calibration import calibration_text, default_split
from quantplan.agent.quantize.llmcompressor_common import (
    GPTQ_MODIFIER,
    SMOOTHQUANT_MODIFIER,
    CalibratedConfig,
    LlmCompressorMethod,
    ModifierSpec,
    W8A8Config,
)

SCHEME = "W8A8"


class Int8Config(CalibratedConfig, W8A8Config):
    """INT8 weights per channel and INT8 activations per token (SmoothQuant + GPTQ)."""

    scheme: str = Field(
        default=SCHEME,
        description="Weight bits / activation bits. Only W8A8 (other widths are refused with "
        "the method that makes them: gptq or awq for W4A16 and W8A16).",
    )
    group_size: int | None = Field(
        default=None,
        gt=0,
        description="Must stay unset: W8A8 weights have one scale per output channel, which "
        "is what vLLM's INT8 kernels take; a group size is refused.",
    )
    smoothing_strength: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="SmoothQuant alpha: how much of the activation range moves into the weights "
        "(0.8 is llm-compressor's W8A8 example).",
    )
    dampening_frac: float = Field(default=0.01, gt=0, lt=1, description="GPTQ Hessian damping.")


class Int8Quantizer(LlmCompressorMethod):
    method = "int8"
    config_type = Int8Config

    def check(self, config: QuantizerConfig, model: ModelSource) -> None:
        assert isinstance(config, Int8Config)
        widths = re.fullmatch(r"W(\d+)A(\d+)", config.scheme)
        if widths is None or widths.groups() != ("8", "8"):
            asked = f" ({widths[1]}-bit weights, {widths[2]}-bit activations)" if widths else ""
            raise QuantizeRefusal(
                f"int8 makes W8A8 only (8-bit weights and 8-bit activations), "
                f"not {config.scheme}{asked}",
                hint="drop --scheme (W8A8 is the default); for weight-only W4A16 or W8A16 use "
                "--method gptq or --method awq",
            )
        if config.group_size is not None:
            raise QuantizeRefusal(
                f"int8 W8A8 has one weight scale per output channel; a group size "
                f"({config.group_size}) does not apply",
                hint="drop --group-size, or use --method gptq --scheme W4A16 for grouped weights",
            )
        calibration_text(config.calibration, default_split("evaluation"))
        del model

    def scheme_name(self, config: QuantizerConfig, model: ModelSource) -> str:
        del config, model
        return "int8-w8a8"

    def recipe(self, config: QuantizerConfig, model: ModelSource) -> list[ModifierSpec]:
        # llm-compressor's W8A8 example: SmoothQuant, then GPTQ's "W8A8" preset (INT8 weights
        # per channel, dynamic per-token INT8 activations).
        assert isinstance(config, Int8Config)
        del model
        gptq = {
            "targets": "Linear",
            "scheme": SCHEME,
            "ignore": list(config.ignore),
            "dampening_frac": config.dampening_frac,
        }
        return [
            ModifierSpec(
                modifier=SMOOTHQUANT_MODIFIER,
                args={"smoothing_strength": config.smoothing_strength},
            ),
            ModifierSpec(modifier=GPTQ_MODIFIER, args=gptq),
        ]

    def resolved(self, config: QuantizerConfig, model: ModelSource) -> dict[str, Any]:
        del config, model
        return {"group_size": None, "symmetric": True}
