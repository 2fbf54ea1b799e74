"""Catalog screen: browse kinds, filter, provenance, empty state, import (good and bad files)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from tui_support import catalog_loaded, plain_text, wait_until

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.tui.app import QuantplanApp
from quantplan.tui.screens.catalog import CatalogScreen
from quantplan.tui.screens.dialogs import PathPrompt

NEW_HARDWARE = """\
kind: hardware
rows:
- {name: TestAccel-9, kind: gpu, vendor: example, memory_gb: 32, memory_bandwidth_gbps: 1000,
   source: "a test row"}
"""
BAD_HARDWARE = """\
kind: hardware
rows:
- {name: Fine-1, kind: gpu, vendor: example, memory_gb: 32, memory_bandwidth_gbps: 1000, source: s}
- {name: Broken-2, kind: gpu, vendor: example, memory_bandwidth_gbps: -5, source: s}
"""


async def open_catalog_screen(pilot: Pilot) -> CatalogScreen:
    await catalog_loaded(pilot)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CatalogScreen))
    screen = pilot.app.screen
    assert isinstance(screen, CatalogScreen)
    await wait_until(pilot, lambda: screen.table_view is not None)
    return screen


def status(screen: CatalogScreen) -> str:
    return plain_text(screen.query_one("#catalog-status", Static))


async def test_browse_filter_and_provenance(
    make_app: Callable[..., QuantplanApp], catalog_snapshot: CatalogSnapshot
) -> None:
    app = make_app(mode="catalog")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_catalog_screen(pilot)
        table = screen.query_one("#catalog-table", DataTable)
        assert table.row_count == len(catalog_snapshot.instances)
        assert f"{len(catalog_snapshot.instances)} rows" in status(screen)
        details = plain_text(screen.query_one("#catalog-details", Static))
        assert "provenance" in details and "price_source" in details

        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"cloud=gcp L4")
        expected = [
            i for i in catalog_snapshot.instances if i.cloud == "gcp" and "L4" in i.hardware
        ]
        assert table.row_count == len(expected) > 0
        assert f"{len(expected)} of {len(catalog_snapshot.instances)}" in status(screen)
        await pilot.press("enter")  # to the table, whose rows explain themselves
        assert app.focused is table
        await pilot.press("down")
        second = expected[1] if len(expected) > 1 else expected[0]
        assert second.name in plain_text(screen.query_one("#catalog-details", Static))


async def test_every_kind_and_the_empty_state(
    make_app: Callable[..., QuantplanApp],
    catalog_snapshot: CatalogSnapshot,
    seeded_catalog_path: Path,
) -> None:
    app = make_app(mode="catalog")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_catalog_screen(pilot)
        kind = screen.query_one("#catalog-kind", Select)
        table = screen.query_one("#catalog-table", DataTable)
        for name in ("hardware", "models", "schemes", "support", "profiles", "quality"):
            kind.value = name
            await pilot.pause()
            assert table.row_count == len(getattr(catalog_snapshot, name)) > 0, name
    # The seed ships published profiles, so the empty state needs a catalog without any.
    path = seeded_catalog_path  # migrated and seeded
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM profile")
    app = make_app(mode="catalog", url=f"sqlite:///{path}")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_catalog_screen(pilot)
        screen.query_one("#catalog-kind", Select).value = "profiles"
        await pilot.pause()
        assert not screen.query_one("#catalog-table", DataTable).display
        assert "No measured profiles yet" in status(screen)


async def import_through_dialog(pilot: Pilot, path: Path) -> None:
    await pilot.press("i")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, PathPrompt))
    pilot.app.screen.query_one("#dialog-path", Input).value = str(path)
    await pilot.press("enter")


async def test_import_a_file(
    make_app: Callable[..., QuantplanApp], tmp_path: Path, seeded_sqlite_url: str
) -> None:
    source = tmp_path / "accel.yaml"
    source.write_text(NEW_HARDWARE)
    app = make_app(mode="catalog", url=seeded_sqlite_url)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_catalog_screen(pilot)
        before = app.catalog_state.snapshot
        await import_through_dialog(pilot, source)
        await wait_until(pilot, lambda: app.catalog_state.snapshot is not before, timeout=20)
        await pilot.pause()
        assert screen.kind == "hardware"
        assert "TestAccel-9" in [h.name for h in app.catalog_state.snapshot.hardware]  # type: ignore[union-attr]
        assert screen.query_one("#catalog-table", DataTable).get_row("hardware:TestAccel-9")


async def test_a_bad_file_imports_nothing_and_says_where(
    make_app: Callable[..., QuantplanApp], tmp_path: Path, seeded_sqlite_url: str
) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(BAD_HARDWARE)
    app = make_app(mode="catalog", url=seeded_sqlite_url)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_catalog_screen(pilot)
        count = len(app.catalog_state.snapshot.hardware)  # type: ignore[union-attr]
        await import_through_dialog(pilot, source)
        await wait_until(pilot, lambda: "Nothing imported" in status(screen), timeout=20)
        assert "row 2" in status(screen) and "memory_bandwidth_gbps" in status(screen)
        assert screen.query_one("#catalog-status").has_class("-error")
        app.reload_catalog()
        await pilot.pause(0.5)
        assert len(app.catalog_state.snapshot.hardware) == count  # type: ignore[union-attr]


async def test_import_dialog_refuses_a_missing_file(
    make_app: Callable[..., QuantplanApp], tmp_path: Path
) -> None:
    app = make_app(mode="catalog")
    async with app.run_test(size=(100, 40)) as pilot:
        await open_catalog_screen(pilot)
        await import_through_dialog(pilot, tmp_path / "missing.yaml")
        prompt = app.screen
        assert isinstance(prompt, PathPrompt)  # still open, with the reason
        assert "no such file" in plain_text(prompt.query_one("#dialog-error", Static))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, CatalogScreen))


async def test_first_render_shows_whole_prices(
    make_app: Callable[..., QuantplanApp], catalog_snapshot: CatalogSnapshot
) -> None:
    """The catalog table's first render once cut every column to its header's width, so a
    $0.089/h instance read "0.0"; each column is now as wide as its widest cell."""
    app = make_app(mode="catalog")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_catalog_screen(pilot)
        table = screen.query_one("#catalog-table", DataTable)
        view = screen.table_view
        assert view is not None
        cheap = min(catalog_snapshot.instances, key=lambda i: i.price_per_hour)
        assert cheap.price_per_hour < 0.1
        for index, key in enumerate(view.columns):
            widest = max(len(row.cells[index]) for row in view.rows)
            assert column_width(table, key) >= widest, key
        where = (cheap.cloud, cheap.name, cheap.region)
        (row,) = [r for r in view.rows if (r.record.cloud, r.record.name, r.record.region) == where]
        price = row.cells[list(view.columns).index("price_per_hour")]
        assert float(price) == cheap.price_per_hour  # the whole figure, not "0.0"
        assert column_width(table, "price_per_hour") >= len(price)


def column_width(table: DataTable, key: str) -> int:
    (column,) = [c for c in table.columns.values() if c.key.value == key]
    return column.get_render_width(table) - 2 * table.cell_padding
