"""Advisor: validation as you type, planning in a worker, save/report/apply, error states."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Static, TabbedContent
from tui_support import catalog_loaded, plain_text, wait_until

from quantplan.planner.plan import load_plan
from quantplan.tui.app import QuantplanApp
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.screens.dialogs import PathPrompt
from quantplan.tui.widgets.form_field import FormField


def advisor(app: QuantplanApp) -> AdvisorScreen:
    screen = app.screen
    assert isinstance(screen, AdvisorScreen)
    return screen


async def retype(pilot: Pilot, field: str, text: str) -> None:
    """Focus a form field, clear it and type ``text`` key by key."""
    pilot.app.screen.query_one(f"#input-{field}", Input).focus()
    await pilot.press("end", "ctrl+u", *text)


def status_text(app: QuantplanApp) -> str:
    return plain_text(app.screen.query_one("#plan-status", Static))


async def plan_now(pilot: Pilot) -> AdvisorScreen:
    screen = advisor(pilot.app)  # type: ignore[arg-type]
    before = screen.plan
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: screen.plan is not before)
    return screen


async def test_plan_fills_options_pareto_and_why_not(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        screen = await plan_now(pilot)
        assert screen.plan is not None and screen.plan.feasible
        table = screen.query_one("#options", DataTable)
        assert table.row_count >= 2
        assert str(table.get_row_at(0)[0]).endswith("*")  # the choice is marked and first
        assert status_text(app).startswith("Deploy ")
        details = plain_text(screen.query_one("#option-details", Static))
        assert "Chosen option" in details
        await pilot.press("down")  # highlighting another option explains that one
        assert "Option 2" in plain_text(screen.query_one("#option-details", Static))
        tabs = screen.query_one("#result-tabs", TabbedContent)
        tabs.active = "tab-why-not"
        await pilot.pause()
        why_not = plain_text(screen.query_one("#why-not", Static))
        for rejection in screen.plan.rejected:
            assert rejection.family in why_not


async def test_validation_as_you_type(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        screen = advisor(app)
        button = screen.query_one("#plan-button", Button)
        assert not button.disabled
        await retype(pilot, "requests_per_s", "5x")
        field = screen.query_one("#field-requests_per_s", FormField)
        assert "'5x' is not a number" in plain_text(field.query_one(".field-error", Static))
        assert button.disabled
        await pilot.press("ctrl+r")  # refused, and the status says why
        assert "Fix 1 field" in status_text(app)
        assert screen.plan is None
        await pilot.press("backspace")
        assert not button.disabled
        assert field.query_one(".field-error").has_class("-empty")


async def test_unknown_model_is_caught_with_a_suggestion(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        await retype(pilot, "model", "Qwen2.5-7")
        error = app.screen.query_one("#field-model .field-error", Static)
        assert "did you mean Qwen2.5-7B" in plain_text(error)
        await pilot.press("enter")
        assert advisor(app).plan is None


async def test_infeasible_targets_show_what_binds(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        await retype(pilot, "max_usd_per_month", "50")
        screen = await plan_now(pilot)
        assert screen.plan is not None and not screen.plan.feasible
        assert "budget.max_usd_per_month" in status_text(app)
        assert screen.query_one("#plan-status").has_class("-error")
        details = plain_text(screen.query_one("#option-details", Static))
        assert "relax budget.max_usd_per_month" in details
        await pilot.press("ctrl+g")  # nothing to apply
        await pilot.pause()
        assert any("nothing to apply" in n.message for n in app._notifications)


async def test_save_plan_and_write_report(
    make_app: Callable[..., QuantplanApp], tmp_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        await pilot.press("ctrl+s")  # no plan yet: says so instead of asking for a path
        assert "Make a plan first" in status_text(app)
        screen = await plan_now(pilot)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one("#dialog-path", Input).value = str(tmp_path / "plan.yaml")
        await pilot.press("enter")
        await wait_until(pilot, lambda: (tmp_path / "plan.yaml").exists())
        assert load_plan(tmp_path / "plan.yaml") == screen.plan

        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        app.screen.query_one("#dialog-path", Input).value = str(tmp_path / "capacity.html")
        await pilot.press("enter")
        await wait_until(pilot, lambda: (tmp_path / "capacity.md").exists(), timeout=30)
        assert "<svg" in (tmp_path / "capacity.html").read_text()


async def test_escape_cancels_the_save_dialog(
    make_app: Callable[..., QuantplanApp], tmp_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        await plan_now(pilot)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, AdvisorScreen))
        assert not list(tmp_path.iterdir())


async def test_apply_without_cluster_support_explains(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        await plan_now(pilot)
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: bool(app._notifications))
        (note,) = list(app._notifications)
        # Started without --address: nothing is applied anywhere, and the message says how.
        assert note.severity == "error"
        assert "without --address" in note.message and "quantplan apply" in note.message


async def test_unreadable_catalog_is_an_error_state(
    make_app: Callable[..., QuantplanApp], tmp_path: Path
) -> None:
    broken = tmp_path / "not-a-database.db"
    broken.write_text("this is not SQLite")
    app = make_app(url=f"sqlite:///{broken}")
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        assert app.catalog_state.error is not None
        assert "could not be opened" in status_text(app)
        assert app.screen.query_one("#plan-button", Button).disabled
        await pilot.press("ctrl+r")
        assert "not loaded" in status_text(app)
