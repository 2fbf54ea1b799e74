"""FP8 W8A8 with llm-compressor (FP8_DYNAMIC): config and quantizer in ``method.py``."""

from quantplan.agent.quantize.fp8.method import Fp8Config, Fp8Quantizer
from quantplan.agent.quantize.registry import register_quantizer

register_quantizer(Fp8Quantizer())

__all__ = ["Fp8Config", "Fp8Quantizer"]
