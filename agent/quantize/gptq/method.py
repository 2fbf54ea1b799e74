"""GPTQ with llm-compressor (W4A16 grouped or W8A16 per channel), served by vLLM."""

from __future__ import annotations

from pydantic import Field

from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.base import QuantizerConfig
from quantplan.agent.quantize.llmcompressor_common import (
    GPTQ_MODIFIER,
    LlmCompressorConfig,
    LlmCompressorMethod,
    ModifierSpec,
)


class GptqConfig(LlmCompressorConfig):
    """GPTQ: Hessian-based error compensation, symmetric integer weights."""

    symmetric: bool = Field(default=True, description="vLLM's CPU GPTQ path needs symmetric.")
    dampening_frac: float = Field(default=0.01, gt=0, lt=1, description="Hessian damping.")


class GptqQuantizer(LlmCompressorMethod):
    method = "gptq"
    config_type = GptqConfig

    def recipe(self, config: QuantizerConfig, model: ModelSource) -> list[ModifierSpec]:
        assert isinstance(config, GptqConfig)
        args = {
            "config_groups": self.weight_only_groups(config, model),
            "ignore": list(config.ignore),
            "dampening_frac": config.dampening_frac,
        }
        return [ModifierSpec(modifier=GPTQ_MODIFIER, args=args)]
