"""Quantization methods behind one interface (``base.Quantizer``) and the ``quantize`` entry.

Each method is a folder here (``gptq/``, ``awq/``, ``int8/``, ``gguf/``) that registers its
quantizer in ``registry.QUANTIZERS``; importing this package imports every method folder.

Public API::

    from quantplan.agent.quantize import quantize
    manifest = quantize("default", "gptq", {"scheme": "W4A16"})   # ArtifactManifest, cached
"""

from quantplan.agent.quantize import awq, gguf, gptq, int8  # noqa: F401  (each registers itself)
from quantplan.agent.quantize.api import build_config, quantize
from quantplan.agent.quantize.registry import QUANTIZERS, get_quantizer

__all__ = ["QUANTIZERS", "build_config", "get_quantizer", "quantize"]
