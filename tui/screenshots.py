"""The dashboard's screens in fixed, reproducible states: for snapshot tests and README images.

``python -m quantplan.tui.screenshots docs/screenshots`` writes one SVG per scenario, on a fresh
catalog in a temporary directory, with the planner's live answers. The snapshot tests drive the
same scenarios but show a committed plan file instead of planning, so they check the screens'
rendering and do not change whenever the planner's numbers improve.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from quantplan.planner.plan import Plan
from quantplan.tui.app import DARK_THEME, LIGHT_THEME, QuantplanApp
from quantplan.tui.fleet.sample import sample_history
from quantplan.tui.fleet.sources import (
    FleetSource,
    ReplayFleetSource,
    SourceUnavailable,
    connect_fleet_source,
)
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.screens.fleet import FleetScreen
from quantplan.tui.services import CatalogService, DashboardServices

Step = Callable[[Pilot, Plan | None], Awaitable[None]]
"""Brings the app into the scenario's state; a given plan is shown instead of planning anew."""


async def _until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("the dashboard did not reach the scenario's state")
        await pilot.pause(0.05)
    await pilot.pause()


def _app(pilot: Pilot) -> QuantplanApp:
    assert isinstance(pilot.app, QuantplanApp)
    return pilot.app


async def catalog_ready(pilot: Pilot, plan: Plan | None = None) -> None:
    await _until(pilot, lambda: not _app(pilot).catalog_state.loading)


async def planned(pilot: Pilot, plan: Plan | None = None) -> None:
    await catalog_ready(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, AdvisorScreen)
    if plan is not None:
        screen.show_plan(plan)
    else:
        await pilot.press("ctrl+r")
    await _until(pilot, lambda: screen.plan is not None)


def show_tab(tab: str) -> Step:
    async def step(pilot: Pilot, plan: Plan | None = None) -> None:
        await planned(pilot, plan)
        pilot.app.screen.query_one("#result-tabs", TabbedContent).active = tab
        await pilot.pause(0.2)

    return step


async def invalid_targets(pilot: Pilot, plan: Plan | None = None) -> None:
    await catalog_ready(pilot)
    screen = pilot.app.screen
    for field, text in (("model", "Llama-3.1-8"), ("requests_per_s", "5 rps")):
        screen.query_one(f"#input-{field}", Input).focus()
        await pilot.press("end", "ctrl+u", *text)
    screen.query_one("#input-model", Input).focus()
    await pilot.press("end")


async def catalog_filtered(pilot: Pilot, plan: Plan | None = None) -> None:
    await catalog_ready(pilot)
    await _until(pilot, lambda: getattr(pilot.app.screen, "table_view", None) is not None)
    await pilot.press("slash", *"cloud=aws L4")
    await pilot.press("enter")


def _fleet_events_applied(pilot: Pilot) -> int:
    screen = pilot.app.screen
    return screen.state.events_applied if isinstance(screen, FleetScreen) else 0


async def fleet_replayed(pilot: Pilot, plan: Plan | None = None) -> None:
    await catalog_ready(pilot)
    await _until(pilot, lambda: getattr(pilot.app.screen, "state", None) is not None)
    await _until(pilot, lambda: _fleet_events_applied(pilot) == len(sample_history()))
    # The replay ends after the last event, and its end repaints every view: waiting for that
    # (not for a refresh tick) keeps the picture the same on a loaded machine.
    await _until(pilot, lambda: getattr(pilot.app.screen, "stream_note", None) is not None)


def fleet_tab(key: str) -> Step:
    async def step(pilot: Pilot, plan: Plan | None = None) -> None:
        await fleet_replayed(pilot)
        await pilot.press(key)
        await pilot.pause(0.3)

    return step


async def help_open(pilot: Pilot, plan: Plan | None = None) -> None:
    await catalog_ready(pilot)
    await pilot.press("f1")
    await pilot.pause(0.2)


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str
    size: tuple[int, int]
    step: Step
    fleet: str = "none"  # "none" (no cluster) or "sample" (the recorded history)
    theme: str = DARK_THEME

    async def reach(self, pilot: Pilot, plan: Plan | None = None) -> None:
        """Run the scenario's step, then stop the text cursors blinking: a loaded machine can
        take longer than a blink between the last key and the picture, and the picture must not
        depend on which half of the blink it caught."""
        await self.step(pilot, plan)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    def build_app(self, catalog_url: str) -> QuantplanApp:
        fleet: FleetSource | SourceUnavailable = (
            ReplayFleetSource(sample_history(), batch_size=5, description="recorded sample fleet")
            if self.fleet == "sample"
            else connect_fleet_source(None)
        )
        services = DashboardServices(catalog=CatalogService(catalog_url), fleet=fleet)
        return QuantplanApp(services, initial_mode=self.mode, theme=self.theme)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("advisor-plan", "advisor", (110, 36), planned),
    Scenario("advisor-80x24", "advisor", (80, 24), planned),
    Scenario("advisor-validation", "advisor", (80, 24), invalid_targets),
    Scenario("advisor-pareto", "advisor", (110, 36), show_tab("tab-pareto")),
    Scenario("advisor-why-not", "advisor", (110, 36), show_tab("tab-why-not")),
    Scenario("advisor-light", "advisor", (110, 36), planned, theme=LIGHT_THEME),
    Scenario("catalog-instances", "catalog", (100, 30), catalog_filtered),
    Scenario("fleet-nodes", "fleet", (80, 24), fleet_replayed, fleet="sample"),
    Scenario("fleet-jobs", "fleet", (100, 24), fleet_tab("j"), fleet="sample"),
    Scenario("fleet-deployments", "fleet", (100, 24), fleet_tab("d"), fleet="sample"),
    Scenario("fleet-events", "fleet", (100, 24), fleet_tab("e"), fleet="sample"),
    Scenario("fleet-no-cluster", "fleet", (80, 24), catalog_ready),
    Scenario("help", "advisor", (100, 32), help_open),
)


async def save(scenario: Scenario, catalog_url: str, folder: Path) -> Path:
    app = scenario.build_app(catalog_url)
    async with app.run_test(size=scenario.size) as pilot:
        await scenario.reach(pilot, None)
        await pilot.pause(0.2)
        return Path(app.save_screenshot(f"{scenario.name}.svg", path=str(folder)))


def main(argv: list[str]) -> None:
    folder = Path(argv[0] if argv else "docs/screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{Path(workdir) / 'catalog.db'}"
        for scenario in SCENARIOS:
            written = asyncio.run(save(scenario, url, folder))
            sys.stdout.write(f"{written}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
