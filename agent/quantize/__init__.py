"""Quantization methods behind one interface (``base.Quantizer``) and the ``quantize`` entry.

Each method is a folder here (``gptq/``, ``awq/``, ``int8/``, ``fp8/``, ``gguf/``) that
registers its quantizer in ``registry.QUANTIZERS``; importing this package imports every
method folder it finds, so a new method is its folder and nothing here.

Public API::

    from quantplan.agent.quantize import quantize
    manifest = quantize("default", "gptq", {"scheme": "W4A16"})   # ArtifactManifest, cached
"""

import importlib
import pkgutil

from quantplan.agent.quantize.api import build_config, quantize
from quantplan.agent.quantize.registry import QUANTIZERS, get_quantizer

for _folder in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg):
    importlib.import_module(f"{__name__}.{_folder}")  # each method folder registers itself

__all__ = ["QUANTIZERS", "build_config", "get_quantizer", "quantize"]
