"""The shipped example targets plan without errors and come out as their comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.targets import load_targets

EXAMPLES = Path(__file__).parents[2] / "examples" / "planner"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_targets_plan(path: Path, shipped: CatalogSnapshot) -> None:
    plan = make_plan(load_targets(path), shipped)
    assert plan.feasible == (path.stem != "budget-too-small")
    if plan.feasible:
        assert plan.fleet and plan.rejected
    else:
        assert plan.binding_constraints and plan.relaxations
