"""The planner: targets + an immutable catalog snapshot in, a new, explained Plan out.

Pure: no database session, network, Ray or clock inside. Public entry points (imported lazily
so ``quantplan --help`` stays fast):

* :func:`make_plan(targets, snapshot) -> Plan` -- the cheapest plan meeting every target;
* :func:`prepare(targets, snapshot) -> PlanningContext` and :func:`plan_from_context` -- the
  same in two steps, for views that re-solve under other volumes or prices;
* :func:`capacity_report(context) -> CapacityReport` -- cost vs traffic per family, crossovers,
  headroom and spot sensitivity (``report.py`` renders it as HTML and Markdown);
* :class:`Targets`, :class:`Plan`, :func:`load_targets`, :func:`load_plan`, :func:`save_plan`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Targets": "quantplan.planner.targets",
    "Workload": "quantplan.planner.targets",
    "Slos": "quantplan.planner.targets",
    "QualityTarget": "quantplan.planner.targets",
    "Budget": "quantplan.planner.targets",
    "Constraints": "quantplan.planner.targets",
    "ModelShape": "quantplan.planner.targets",
    "load_targets": "quantplan.planner.targets",
    "Plan": "quantplan.planner.plan",
    "Deployment": "quantplan.planner.plan",
    "Estimate": "quantplan.planner.plan",
    "load_plan": "quantplan.planner.plan",
    "save_plan": "quantplan.planner.plan",
    "make_plan": "quantplan.planner.decide",
    "prepare": "quantplan.planner.decide",
    "plan_from_context": "quantplan.planner.decide",
    "PlanningContext": "quantplan.planner.decide",
    "capacity_report": "quantplan.planner.capacity",
    "CapacityReport": "quantplan.planner.capacity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quantplan.planner' has no attribute {name!r}")
    return getattr(import_module(module), name)
