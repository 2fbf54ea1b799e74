"""Quantization methods behind one interface (``base.Quantizer``) and the ``quantize`` entry.

Public API::

    from quantplan.agent.quantize import quantize
    manifest = quantize("default", "gptq", {"scheme": "W4A16"})   # ArtifactManifest, cached
"""

from quantplan.agent.quantize.api import QUANTIZERS, build_config, get_quantizer, quantize

__all__ = ["QUANTIZERS", "build_config", "get_quantizer", "quantize"]
