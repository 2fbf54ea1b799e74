"""The dashboard as a new user meets it: options cheapest first (as Help says), something has
focus at start, the palette offers plan/save/report/apply, and at 80x24 the $/month of every
option is readable."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import DataTable
from tui_support import catalog_loaded, wait_until

from quantplan.tui.app import QuantplanApp
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.viewmodels.plan_view import option_rows


async def _plan(pilot) -> AdvisorScreen:  # type: ignore[no-untyped-def]
    screen = pilot.app.screen
    assert isinstance(screen, AdvisorScreen)
    before = screen.plan
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: screen.plan is not before)
    return screen


async def test_options_are_cheapest_first(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await catalog_loaded(pilot)
        screen = await _plan(pilot)
        assert screen.plan is not None and screen.plan.feasible
        rows = option_rows(screen.plan)
        costs = [row.usd_per_month for row in rows]
        assert costs == sorted(costs) and rows[0].chosen
        table = screen.query_one("#options", DataTable)
        shown = [float(str(table.get_row_at(i)[4]).replace(",", "")) for i in range(len(rows))]
        assert shown == sorted(shown)


async def test_something_has_focus_at_start(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await catalog_loaded(pilot)
        assert app.focused is not None


async def test_palette_offers_the_advisor_commands(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await catalog_loaded(pilot)
        titles = {command.title for command in app.screen.screen_commands()}  # type: ignore[attr-defined]
        assert {"Plan", "Save plan", "Capacity report", "Apply plan"} <= titles


async def test_cost_column_is_readable_at_80x24(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        screen = await _plan(pilot)
        await pilot.pause()
        table = screen.query_one("#options", DataTable)
        region = table.content_region
        assert region.width > 0
        # Every column up to p95 TTFT ($/month among them) fits inside the visible width.
        widths = [column.get_render_width(table) for column in table.ordered_columns[:7]]
        assert sum(widths) <= region.width, (widths, region.width)
