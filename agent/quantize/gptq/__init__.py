"""GPTQ with llm-compressor: config, quantizer and checks in ``method.py``."""

from quantplan.agent.quantize.gptq.method import GptqConfig, GptqQuantizer
from quantplan.agent.quantize.registry import register_quantizer

register_quantizer(GptqQuantizer())

__all__ = ["GptqConfig", "GptqQuantizer"]
