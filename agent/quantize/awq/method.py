"""AWQ with llm-compressor: activation-aware scaling, then round-to-nearest (asymmetric).

On CPU-only hosts the step applies ``skip_pinning_without_accelerator`` (see
``agent/steps/llmc_quantize.py``), a named workaround for llm-compressor 0.13/0.14.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quantplan.agent.quantize.llmcompressor_common import LlmCompressorConfig, LlmCompressorMethod


class AwqConfig(LlmCompressorConfig):
    """AWQ: activation-aware channel scaling, then round-to-nearest, asymmetric weights."""

    symmetric: bool = Field(default=False, description="AWQ's usual zero-point form.")
    duo_scaling: bool | Literal["both"] = Field(default=True, description="See llm-compressor.")


class AwqQuantizer(LlmCompressorMethod):
    method = "awq"
    config_type = AwqConfig
