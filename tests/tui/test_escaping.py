"""Text the dashboard did not write (errors, catalog values, file names) is shown as it is, never
read as Rich markup; and every busy state ("Importing...", "Planning...") ends, whatever fails.

``[bold]x[/`` is the text that crashed the app: Rich reads ``[/`` as a closing tag with nothing
open (MarkupError). A lone ``[`` must survive too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from tui_support import catalog_loaded, plain_text, wait_until

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.errors import QuantplanError
from quantplan.planner.plan import Plan
from quantplan.planner.targets import Targets
from quantplan.tui.app import QuantplanApp
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.screens.catalog import CatalogScreen
from quantplan.tui.screens.dialogs import PathPrompt
from quantplan.tui.services import CatalogService, DashboardServices, PlannerService
from quantplan.tui.widgets.form_field import FormField

HOSTILE = "bad value [bold]x[/ and ["


@dataclass
class FailingImports(CatalogService):
    """A catalog that loads, but whose imports raise ``error``."""

    error: Exception | None = None

    def import_files(self, paths: list[Path]) -> list[tuple[str, dict[str, int]]]:
        assert self.error is not None
        raise self.error


@dataclass
class FailingPlanner(PlannerService):
    error: Exception | None = None

    def make_plan(self, targets: Targets, snapshot: CatalogSnapshot) -> Plan:
        assert self.error is not None
        raise self.error


def _app(catalog: CatalogService, mode: str, planner: PlannerService | None = None) -> QuantplanApp:
    services = DashboardServices(catalog=catalog, planner=planner or PlannerService())
    return QuantplanApp(services, initial_mode=mode)


async def _catalog_screen(pilot: Pilot) -> CatalogScreen:
    await catalog_loaded(pilot)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CatalogScreen))
    screen = pilot.app.screen
    assert isinstance(screen, CatalogScreen)
    await wait_until(pilot, lambda: screen.table_view is not None)
    return screen


async def _import(pilot: Pilot, path: Path) -> None:
    await pilot.press("i")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, PathPrompt))
    pilot.app.screen.query_one("#dialog-path", Input).value = str(path)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CatalogScreen))


def _status(screen: CatalogScreen) -> str:
    return plain_text(screen.query_one("#catalog-status", Static))


def _notifications(app: QuantplanApp) -> list[str]:
    return [notification.message for notification in app._notifications]


async def _import_ends_with_error(
    app: QuantplanApp, path: Path, expected: str
) -> tuple[str, list[str]]:
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _catalog_screen(pilot)
        await _import(pilot, path)
        await wait_until(pilot, lambda: "Importing" not in _status(screen), timeout=20)
        await pilot.pause(0.2)  # the toast is drawn: a markup error would surface here
        status = _status(screen)
        assert screen.query_one("#catalog-status").has_class("-error")
        assert expected in status, status
        return status, _notifications(app)


async def test_import_error_with_markup_is_shown_verbatim(catalog_url: str, tmp_path: Path) -> None:
    source = tmp_path / "rows [x].yaml"
    source.write_text("kind: hardware\nrows: []\n")
    failing = FailingImports(catalog_url, error=QuantplanError(HOSTILE, hint="fix [it]"))
    app = _app(failing, "catalog")
    status, toasts = await _import_ends_with_error(app, source, HOSTILE)
    assert "fix [it]" in status
    assert any(HOSTILE in toast for toast in toasts)


async def test_an_unexpected_import_failure_ends_the_busy_state(
    catalog_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "rows.yaml"
    source.write_text("kind: hardware\nrows: []\n")
    app = _app(FailingImports(catalog_url, error=RuntimeError(HOSTILE)), "catalog")
    status, _ = await _import_ends_with_error(app, source, f"RuntimeError: {HOSTILE}")
    assert "Nothing imported" in status


async def test_importing_a_binary_file_ends_with_a_visible_error(
    make_app: Callable[..., QuantplanApp], tmp_path: Path, seeded_sqlite_url: str
) -> None:
    source = tmp_path / "model [q4].bin"
    source.write_bytes(bytes(range(256)) * 64)  # not UTF-8, NUL bytes: what a weights file is
    app = make_app(mode="catalog", url=seeded_sqlite_url)
    status, toasts = await _import_ends_with_error(app, source, "Nothing imported")
    assert "model [q4].bin" in status
    assert toasts and "Nothing imported" in toasts[-1]


async def test_catalog_values_with_markup_are_shown_verbatim(
    make_app: Callable[..., QuantplanApp], tmp_path: Path, seeded_sqlite_url: str
) -> None:
    source = tmp_path / "accel.yaml"
    source.write_text(
        "kind: hardware\nrows:\n"
        "- {name: Accel-9, kind: gpu, vendor: example, isa_flags: 'avx[/]512 [', memory_gb: 32,\n"
        f"   memory_bandwidth_gbps: 1000, source: '{HOSTILE}'}}\n"
    )
    app = make_app(mode="catalog", url=seeded_sqlite_url)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await _catalog_screen(pilot)
        before = app.catalog_state.snapshot
        await _import(pilot, source)
        await wait_until(pilot, lambda: app.catalog_state.snapshot is not before, timeout=20)
        await wait_until(pilot, lambda: screen.kind == "hardware" and screen.table_view is not None)
        table = screen.query_one("#catalog-table", DataTable)
        row = [str(cell) for cell in table.get_row("hardware:Accel-9")]
        assert "avx[/]512 [" in row
        table.move_cursor(row=table.get_row_index("hardware:Accel-9"))
        await pilot.pause(0.2)
        assert HOSTILE in plain_text(screen.query_one("#catalog-details", Static))


async def test_catalog_that_cannot_be_opened_shows_the_error_verbatim(catalog_url: str) -> None:
    @dataclass
    class Broken(CatalogService):
        def load(self) -> CatalogSnapshot:
            raise QuantplanError(HOSTILE)

    app = _app(Broken(catalog_url), "catalog")
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await pilot.pause(0.2)
        assert HOSTILE in _status(app.screen)  # type: ignore[arg-type]


async def test_planner_errors_with_markup_end_planning_with_the_error(catalog_url: str) -> None:
    for error, shown in (
        (QuantplanError(HOSTILE, hint="[/]"), f"{HOSTILE} ([/])"),
        (ValueError(HOSTILE), f"ValueError: {HOSTILE}"),
    ):
        planner = FailingPlanner(error=error)
        app = _app(CatalogService(catalog_url), "advisor", planner)
        async with app.run_test(size=(100, 40)) as pilot:
            await catalog_loaded(pilot)
            screen = app.screen
            assert isinstance(screen, AdvisorScreen)
            await pilot.press("ctrl+r")
            status = screen.query_one("#plan-status", Static)
            await wait_until(pilot, lambda: "Planning" not in plain_text(status))  # noqa: B023
            await pilot.pause(0.2)
            assert shown in plain_text(status)
            assert status.has_class("-error")


async def test_form_errors_quote_the_typed_text_verbatim(catalog_url: str) -> None:
    app = _app(CatalogService(catalog_url), "advisor")
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        field = app.screen.query_one("#field-requests_per_s", FormField)
        app.screen.query_one("#input-requests_per_s", Input).focus()
        await pilot.press("end", "ctrl+u", *"[/]")
        await pilot.pause(0.2)
        assert "'[/]' is not a number" in plain_text(field.query_one(".field-error", Static))
