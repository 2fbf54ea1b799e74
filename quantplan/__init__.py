"""quantplan: decide which quantized LLM deployment to run, from measurements, then run it.

The distribution maps the repository's top-level folders onto one namespace:
``quantplan.catalog`` (catalog/), ``quantplan.planner`` (planner/), ``quantplan.agent``
(agent/) and ``quantplan.tui`` (tui/).

The Python API (docs/api.md) is imported on first use, so ``import quantplan`` and the CLI's
start-up stay light:

* :func:`plan(targets, catalog=...) <quantplan.api.plan>` -> :class:`Plan`;
* :func:`report(targets, catalog=...) <quantplan.api.report>` -> :class:`Report`;
* ``quantplan.catalog.open(url)`` -> :class:`Catalog`;
* the models: :class:`Targets`, :class:`Plan`, :class:`Deployment`, and
  :class:`QuantplanError`, the one error type a caller needs to catch.
"""

from importlib import import_module
from typing import Any

from quantplan._version import __version__

_EXPORTS = {
    "plan": "quantplan.api",
    "report": "quantplan.api",
    "open_catalog": "quantplan.api",
    "Catalog": "quantplan.api",
    "Report": "quantplan.api",
    "Targets": "quantplan.planner.targets",
    "Plan": "quantplan.planner.plan",
    "Deployment": "quantplan.planner.plan",
    "QuantplanError": "quantplan.errors",
}
_SUBPACKAGES = ("catalog", "planner", "agent", "tui")

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:  # `quantplan.catalog.open(...)` after a bare `import quantplan`
        return import_module(f"quantplan.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quantplan' has no attribute {name!r}")
    return getattr(import_module(module), name)
