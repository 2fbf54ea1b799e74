"""GGUF with llama.cpp: config, quantizer and checks in ``method.py``."""

from quantplan.agent.quantize.gguf.method import GGUF_TYPES, GgufConfig, GgufQuantizer
from quantplan.agent.quantize.registry import register_quantizer

register_quantizer(GgufQuantizer())

__all__ = ["GGUF_TYPES", "GgufConfig", "GgufQuantizer"]
