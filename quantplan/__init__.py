"""quantplan: decide which quantized LLM deployment to run, from measurements, then run it.

The distribution maps the repository's top-level folders onto one namespace:
``quantplan.catalog`` (catalog/), ``quantplan.planner`` (planner/), ``quantplan.agent``
(agent/) and ``quantplan.tui`` (tui/).
"""

__version__ = "0.1.0"
