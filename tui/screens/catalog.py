"""Catalog: browse and filter every kind of catalog row with its provenance; import a file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from quantplan.catalog.records import KIND_ORDER
from quantplan.errors import QuantplanError
from quantplan.tui.screens.dialogs import PathPrompt
from quantplan.tui.state import CatalogState, Dashboard
from quantplan.tui.viewmodels.catalog_view import (
    KIND_TITLES,
    CatalogRow,
    CatalogTable,
    catalog_table,
    record_details,
)
from quantplan.tui.widgets.key_values import KeyValues


class CatalogScreen(Screen[None]):
    """What the planner knows: hardware, prices, models, schemes, support, measurements."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("i", "import_file", "Import"),
        Binding("k", "focus_kind", "Kind"),
        Binding("r", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="catalog")
        self.kind = "instances"
        self.filter_text = ""
        self.table_view: CatalogTable | None = None
        self._rows: dict[str, CatalogRow] = {}

    @property
    def quantplan(self) -> Dashboard:
        return cast(Dashboard, self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="catalog-body"):
            with Horizontal(id="catalog-controls"):
                yield Select(
                    [(KIND_TITLES[k], k) for k in KIND_ORDER],
                    value=self.kind,
                    allow_blank=False,
                    id="catalog-kind",
                    compact=True,
                )
                yield Input(
                    placeholder="filter: words, or field=value (e.g. cloud=aws L4)",
                    id="catalog-filter",
                    compact=True,
                )
            yield Static("Loading the catalog...", id="catalog-status")
            yield DataTable(id="catalog-table", cursor_type="row", zebra_stripes=True)
            yield KeyValues(id="catalog-details")
        yield Footer()

    def on_mount(self) -> None:
        self.quantplan.catalog_changed.subscribe(self, self._on_catalog)
        self._on_catalog(self.quantplan.catalog_state)

    def _on_catalog(self, state: CatalogState) -> None:
        if state.error is not None:
            hint = f"\n{state.hint}" if state.hint else ""
            self._status(f"The catalog could not be opened: {state.error}{hint}", error=True)
        self._refill()

    # ---------------------------------------------------------------- rendering

    def _refill(self) -> None:
        snapshot = self.quantplan.catalog_state.snapshot
        if snapshot is None:
            return
        view = catalog_table(snapshot, self.kind, self.filter_text)
        self.table_view = view
        table = self.query_one("#catalog-table", DataTable)
        table.clear(columns=True)
        for column, label in zip(view.columns, view.labels, strict=True):
            table.add_column(label, key=column)
        self._rows = {row.key: row for row in view.rows}
        for row in view.rows:  # catalog values are data, never markup: "[" is a valid name
            table.add_row(*(Text(cell) for cell in row.cells), key=row.key)
        table.display = bool(view.rows)
        details = self.query_one("#catalog-details", KeyValues)
        if view.rows:
            shown = f"{len(view.rows)} of {view.total}" if self.filter_text else str(view.total)
            self._status(f"{KIND_TITLES[self.kind]}: {shown} rows. Enter/arrows show details.")
            self._show_details(view.rows[0])
        else:
            self._status(view.empty_message, error=False)
            details.show([])

    def _show_details(self, row: CatalogRow) -> None:
        fields, provenance = record_details(row.record)
        pairs = [*fields, ("-- provenance", ""), *provenance] if provenance else fields
        self.query_one("#catalog-details", KeyValues).show(pairs, title=row.key)

    def _status(self, message: str, error: bool = False) -> None:
        status = self.query_one("#catalog-status", Static)
        status.update(Text(message))  # errors and file names quote users' text: not markup
        status.set_class(error, "-error")

    # ---------------------------------------------------------------- events

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "catalog-kind" and isinstance(event.value, str):
            self.kind = event.value
            self._refill()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "catalog-filter":
            self.filter_text = event.value
            self._refill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "catalog-filter":
            self.query_one("#catalog-table", DataTable).focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = self._rows.get(event.row_key.value or "")
        if row is not None:
            self._show_details(row)

    # ---------------------------------------------------------------- actions

    def action_focus_filter(self) -> None:
        self.query_one("#catalog-filter", Input).focus()

    def action_focus_kind(self) -> None:
        self.query_one("#catalog-kind", Select).focus()

    def action_reload(self) -> None:
        self.quantplan.reload_catalog()

    def action_import_file(self) -> None:
        prompt = PathPrompt(
            "Import a catalog file (.json, .yaml or .csv; all rows or none)",
            "",
            must_exist=True,
            action_label="Import",
        )
        self.app.push_screen(prompt, self._import_from)

    def _import_from(self, path: Path | None) -> None:
        if path is not None:
            self._status(f"Importing {path}...")
            self.import_file(path)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def import_file(self, path: Path) -> None:
        """Import off the UI thread; whatever happens, "Importing..." gives way to an outcome."""
        failure: str | None = f"Import of {path} was interrupted; nothing imported."
        try:
            results = self.quantplan.services.catalog.import_files([path])
            kind, counts = results[0]
            summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
            failure = None
            self.app.call_from_thread(self._imported, kind, f"Imported {path.name}: {summary}")
        except QuantplanError as error:
            hint = f"\nhint: {error.hint}" if error.hint else ""
            failure = f"Nothing imported. {error.message}{hint}"
        except Exception as error:  # a reader's bug, a binary file: shown, never a stuck status
            failure = f"Nothing imported from {path}. {type(error).__name__}: {error}"
        finally:
            if failure is not None:
                self.app.call_from_thread(self._import_failed, failure)

    def _import_failed(self, message: str) -> None:
        self._status(message, error=True)
        self.notify(message, severity="error", timeout=10, markup=False)

    def _imported(self, kind: str, message: str) -> None:
        self.kind = kind
        self.query_one("#catalog-kind", Select).value = kind
        self.notify(message, markup=False)
        self.quantplan.reload_catalog()

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Import catalog file", "All rows or none", self.action_import_file)
        yield SystemCommand("Filter catalog", "Words or field=value", self.action_focus_filter)
