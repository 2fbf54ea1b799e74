"""The shell: screen switching, help, themes, the command palette, 80 columns, the CLI."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Callable

from textual.command import CommandPalette
from textual.widgets import DataTable
from tui_support import catalog_loaded, wait_until

from quantplan.tui.app import DARK_THEME, LIGHT_THEME, QuantplanApp
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.screens.catalog import CatalogScreen
from quantplan.tui.screens.fleet import FleetScreen
from quantplan.tui.screens.help import HelpScreen


async def test_function_keys_switch_screens(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        assert isinstance(app.screen, AdvisorScreen)
        await pilot.press("f4")
        assert isinstance(app.screen, CatalogScreen)
        await pilot.press("f3")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("f2")
        assert isinstance(app.screen, AdvisorScreen)


async def test_the_long_lived_heap_is_frozen_while_the_app_runs_and_released_after(
    make_app: Callable[..., QuantplanApp], heap_settling: None
) -> None:
    """Full collections skip what the dashboard keeps for good (they stalled the UI under a
    busy fleet stream); after the app, nothing stays frozen for the rest of the process."""
    app = make_app()
    gc.unfreeze()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        assert gc.get_freeze_count() > 100_000
    assert gc.get_freeze_count() == 0


async def test_help_opens_and_closes(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app(mode="catalog")
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, CatalogScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_theme_toggles_between_light_and_dark(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == DARK_THEME
        await pilot.press("ctrl+t")
        assert app.theme == LIGHT_THEME
        await pilot.press("ctrl+t")
        assert app.theme == DARK_THEME


async def test_command_palette_reaches_screens_and_actions(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for expected in ("Advisor", "Fleet", "Catalog", "Plan", "Save plan", "Apply plan"):
            assert expected in titles
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Catalog")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CatalogScreen))


async def test_every_screen_works_in_80_by_24(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        await pilot.press("ctrl+r")
        advisor = app.screen
        assert isinstance(advisor, AdvisorScreen)
        await wait_until(pilot, lambda: advisor.plan is not None)
        await pilot.pause()
        table = advisor.query_one("#options", DataTable)
        # The form made room: the deciding columns (rank, scheme, instance, replicas, $/month,
        # $/M tokens, p95 TTFT) are all on screen.
        assert not advisor.query_one("#targets-form").display
        shown = sum(c.get_render_width(table) for c in table.ordered_columns[:7])
        assert shown <= table.size.width
        await pilot.press("ctrl+b")  # the form comes back, focused
        assert advisor.query_one("#targets-form").display
        assert app.focused is advisor.query_one("#input-model")
        for key in ("f3", "f4", "f1"):
            await pilot.press(key)
            await pilot.pause()


def test_dashboard_command_is_registered_and_checks_its_screen_name() -> None:
    command = [sys.executable, "-m", "quantplan", "dashboard", "--screen", "flet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown screen 'flet'" in result.stderr and "did you mean fleet" in result.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "quantplan", "dashboard", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "--simulated-fleet" in helped.stdout
