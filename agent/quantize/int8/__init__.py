"""INT8 W8A8 with llm-compressor (SmoothQuant, then GPTQ): config and quantizer in ``method.py``."""

from quantplan.agent.quantize.int8.method import Int8Config, Int8Quantizer
from quantplan.agent.quantize.registry import register_quantizer

register_quantizer(Int8Quantizer())

__all__ = ["Int8Config", "Int8Quantizer"]
