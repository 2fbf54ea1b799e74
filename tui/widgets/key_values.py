"""A two-column label/value panel (details of a highlighted row)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.widgets import Static


class KeyValues(Static):
    """Shows ``(label, value)`` pairs, optionally under a title; wraps long values.

    Labels and values are catalog and plan data, shown as they are: a "[" in them is text, not
    Rich markup (as markup, "[/" crashes the render).
    """

    def show(self, pairs: Sequence[tuple[str, str]], title: str | None = None) -> None:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        if title:
            table.add_row(Text(title, style="bold underline"), "")
        for label, value in pairs:
            table.add_row(Text(label), Text(value))
        self.update(table)
