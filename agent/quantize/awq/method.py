"""AWQ with llm-compressor: activation-aware scaling, then round-to-nearest (asymmetric).

On CPU-only hosts AWQ needs the step's ``skip_pinning_without_accelerator`` (see
``agent/steps/llmc_quantize.py``), a named workaround for llm-compressor 0.13/0.14.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.base import QuantizerConfig
from quantplan.agent.quantize.llmcompressor_common import (
    AWQ_MODIFIER,
    QUANTIZATION_MODIFIER,
    LlmCompressorConfig,
    LlmCompressorMethod,
    ModifierSpec,
)


class AwqConfig(LlmCompressorConfig):
    """AWQ: activation-aware channel scaling, then round-to-nearest, asymmetric weights."""

    symmetric: bool = Field(default=False, description="AWQ's usual zero-point form.")
    duo_scaling: bool | Literal["both"] = Field(default=True, description="See llm-compressor.")


class AwqQuantizer(LlmCompressorMethod):
    method = "awq"
    config_type = AwqConfig

    def recipe(self, config: QuantizerConfig, model: ModelSource) -> list[ModifierSpec]:
        assert isinstance(config, AwqConfig)
        groups = self.weight_only_groups(config, model)
        return [
            ModifierSpec(modifier=AWQ_MODIFIER, args={"duo_scaling": config.duo_scaling}),
            ModifierSpec(
                modifier=QUANTIZATION_MODIFIER,
                args={"config_groups": groups, "ignore": list(config.ignore)},
            ),
        ]
