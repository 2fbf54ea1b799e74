"""Snapshot tests: every screen in a fixed state, compared with the committed SVGs.

The scenarios are the README's screenshots (quantplan.tui.screenshots). The advisor shows a
committed plan file (fixtures/) rather than planning, so these check rendering and do not move
when the planner's numbers do. After a deliberate change to a screen, update the baselines with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the new SVGs before
committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from quantplan.planner.plan import load_plan
from quantplan.tui.screenshots import SCENARIOS, Scenario

FIXED_PLAN = load_plan(Path(__file__).parent / "fixtures" / "plan-llama-3.1-8b.yaml")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_screen_matches_snapshot(
    scenario: Scenario, catalog_url: str, snap_compare: Callable[..., Any]
) -> None:
    async def run_before(pilot: Pilot) -> None:
        await scenario.reach(pilot, FIXED_PLAN)

    app = scenario.build_app(catalog_url)
    assert snap_compare(app, terminal_size=scenario.size, run_before=run_before)
