"""The advisor's details pane gives the price line the CLI plan output gives: the hourly price,
its date (STALE past the limit, or when unknown) and its source, judged on the dashboard's clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from textual.widgets import Static
from tui_support import catalog_loaded, plain_text, wait_until

from quantplan.planner.plan import Plan, load_plan
from quantplan.tui.app import QuantplanApp
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.viewmodels.plan_view import option_details, option_rows

FIXED_PLAN = load_plan(Path(__file__).parent / "fixtures" / "plan-llama-3.1-8b.yaml")


def dated(plan: Plan, price_date: str | None, source: str | None) -> Plan:
    """The plan with its choice's price dated and sourced as given."""
    assert plan.choice is not None
    choice = plan.choice.model_copy(update={"price_date": price_date, "price_source": source})
    return plan.model_copy(update={"choice": choice, "fleet": (choice,)})


def test_option_details_give_the_price_date_and_source() -> None:
    plan = dated(FIXED_PLAN, "2026-11-01", "list price fixture")
    chosen = option_rows(plan)[0]
    assert chosen.chosen
    fresh = dict(option_details(chosen, today=date(2026, 11, 30)))["price"]
    assert fresh.endswith(", of 2026-11-01; list price fixture") and "STALE" not in fresh
    stale = dict(option_details(chosen, today=date(2026, 11, 30), max_price_age_days=7))["price"]
    assert "of 2026-11-01 (STALE: 29 days old, over 7); list price fixture" in stale
    undated = option_rows(dated(FIXED_PLAN, None, None))[0]
    line = dict(option_details(undated, today=date(2026, 11, 30)))["price"]
    assert "date unknown (STALE?); source not recorded" in line


async def test_chosen_option_pane_shows_the_price_line(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app()
    app.services.today = lambda: date(2026, 12, 31)  # the price is 60 days old on this clock
    plan = dated(FIXED_PLAN, "2026-11-01", "list price fixture")
    async with app.run_test(size=(120, 50)) as pilot:
        await catalog_loaded(pilot)
        screen = app.screen
        assert isinstance(screen, AdvisorScreen)
        screen.show_plan(plan)
        await wait_until(pilot, lambda: screen.plan is not None)
        await pilot.pause()
        details = " ".join(plain_text(screen.query_one("#option-details", Static)).split())
        assert "Chosen option" in details
        assert "of 2026-11-01; list price fixture" in details
        app.services.today = lambda: date(2027, 3, 1)  # 120 days: past the 90-day limit
        screen.show_plan(plan)
        await pilot.pause()
        details = " ".join(plain_text(screen.query_one("#option-details", Static)).split())
        assert "of 2026-11-01 (STALE: 120 days old, over 90); list price fixture" in details
