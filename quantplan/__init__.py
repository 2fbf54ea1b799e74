"""quantplan: decide which quantized LLM deployment to run, from measurements, then run it.

The distribution maps the repository's top-level folders onto one namespace:
``quantplan.catalog`` (catalog/), ``quantplan.planner`` (planner/), ``quantplan.agent``
(agent/) and ``quantplan.tui`` (tui/).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # pyproject.toml is the one place the version is written; the install records it.
    __version__ = version("quantplan")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
