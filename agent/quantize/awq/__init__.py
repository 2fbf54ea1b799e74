"""AWQ with llm-compressor: config, quantizer and checks in ``method.py``."""

from quantplan.agent.quantize.awq.method import AwqConfig, AwqQuantizer
from quantplan.agent.quantize.registry import register_quantizer

register_quantizer(AwqQuantizer())

__all__ = ["AwqConfig", "AwqQuantizer"]
