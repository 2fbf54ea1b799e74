"""The quantizers the agent can run, by method name (one folder under ``agent/quantize/`` each).

Each method folder registers its :class:`Quantizer` here when it is imported
(``quantize/__init__.py`` imports them all). Method names are the catalog's
(catalog/registry.py METHODS): a quantizer for a method the catalog does not know is refused.
"""

from __future__ import annotations

from quantplan.agent.quantize.base import Quantizer
from quantplan.catalog.registry import METHODS, Registry

QUANTIZERS: Registry[Quantizer] = Registry("quantization method", within=METHODS)


def register_quantizer(quantizer: Quantizer) -> Quantizer:
    """Make ``quantizer`` available under its ``method`` name."""
    if METHODS.find(quantizer.method) != quantizer.method:
        raise ValueError(
            f"{type(quantizer).__name__}.method {quantizer.method!r} is not a canonical "
            "method name of catalog/registry.py"
        )
    return QUANTIZERS.register(quantizer.method, quantizer)


def get_quantizer(method: str) -> Quantizer:
    """The quantizer for ``method`` (any case); an unknown one is refused with near misses."""
    return QUANTIZERS.get(method)
