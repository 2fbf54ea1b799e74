"""A table for rows that change all the time (the fleet's nodes, jobs, deployments), on
Textual's line API.

DataTable re-renders every visible cell through Rich whenever any cell changes, which at a
thousand nodes updating ten times a second is most of the frame budget; and a DataTable coming
into view after updates re-renders all of it, which was most of the cost of switching the fleet's
tabs (about 30 ms of the 70 ms a switch to the jobs took, profiled). This widget keeps one
pre-built strip per row, rebuilds only the rows whose values changed, and draws only the lines on
screen; a repaint after an update costs a few string joins per visible changed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | tuple[str, str] | Text
"""A cell is its text, (text, rich style) for a coloured one, or Rich Text for several styles
(a progress bar)."""


def _plain(cell: Cell) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return cell if isinstance(cell, str) else cell[0]


@lru_cache(maxsize=64)
def _style(name: str) -> Style:
    return Style.parse(name)


def _text_segments(text: Text, width: int, console: Console) -> list[Segment]:
    """A Rich Text cell as segments: its spans' styles kept, cut or padded to ``width``."""
    fitted = text.copy()
    fitted.truncate(width, overflow="crop", pad=True)
    return [Segment(" "), *fitted.render(console, end=""), Segment(" ")]


class LiveTable(ScrollView, can_focus=True):
    """Fixed-width columns, a header line, a row cursor; rows are keyed.

    Two ways to feed it: :meth:`add_row` / :meth:`update_row` then :meth:`repaint` for a big
    table whose rows only come (the nodes), or :meth:`set_rows` for a small one whose rows come,
    go and move (the jobs); both rebuild only the rows whose cells changed.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"live-table--header", "live-table--cursor"}
    DEFAULT_CSS = """
    LiveTable { height: 1fr; }
    LiveTable > .live-table--header { text-style: bold; color: $text-accent; }
    LiveTable > .live-table--cursor { background: $block-cursor-background;
                                      color: $block-cursor-foreground; }
    LiveTable:blur > .live-table--cursor { background: $block-cursor-blurred-background; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    cursor_row: reactive[int] = reactive(0)

    def __init__(self, columns: Sequence[tuple[str, str, int]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._strips: dict[str, list[Segment]] = {}  # built lazily, dropped when a row changes
        self._width = sum(width + 2 for _, _, width in self.columns)

    # ---------------------------------------------------------------- data

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def add_row(self, key: str, cells: tuple[Cell, ...]) -> None:
        self._keys.append(key)
        self._cells[key] = cells
        self.virtual_size = Size(self._width, len(self._keys) + 1)
        self.refresh()

    def update_row(self, key: str, cells: tuple[Cell, ...]) -> None:
        """Store new values; the row is re-drawn at the next repaint if it is on screen."""
        self._cells[key] = cells
        self._strips.pop(key, None)

    def repaint(self) -> None:
        """Redraw after a batch of :meth:`update_row` (one repaint per batch, not per row)."""
        self.refresh()

    def set_rows(self, rows: Sequence[tuple[str, tuple[Cell, ...]]]) -> None:
        """Show exactly ``rows``, in order; the cursor stays on its row while that row is here.

        Rows whose cells did not change keep their built strips; nothing is redrawn when
        nothing changed.
        """
        keys = [key for key, _ in rows]
        cells = dict(rows)
        changed = [key for key in self._keys if cells.get(key) != self._cells[key]]
        if keys == self._keys and not changed:
            return
        for key in changed:
            self._strips.pop(key, None)
        cursor_key = self._keys[self.cursor_row] if self._keys else None
        self._keys, self._cells = keys, cells
        self.virtual_size = Size(self._width, len(keys) + 1)
        # The cursor follows its row; when the row went, it stays put, clamped to the rows left.
        self.cursor_row = keys.index(cursor_key) if cursor_key in cells else self.cursor_row
        self.refresh()

    def get_cell(self, key: str, column: str) -> str:
        """The cell's text, without its styles."""
        index = [c for c, _, _ in self.columns].index(column)
        return _plain(self._cells[key][index])

    def visible_rows(self) -> range:
        """Row indexes currently on screen (below the header line)."""
        first = round(self.scroll_offset.y)
        return range(first, min(len(self._keys), first + max(0, self.size.height - 1)))

    # ---------------------------------------------------------------- drawing

    def _row_segments(self, key: str) -> list[Segment]:
        segments = self._strips.get(key)
        if segments is None:
            segments = []
            for cell, (_, _, width) in zip(self._cells[key], self.columns, strict=True):
                if isinstance(cell, Text):
                    segments.extend(_text_segments(cell, width, self.app.console))
                    continue
                text, style = (cell, None) if isinstance(cell, str) else cell
                padded = " " + text[:width].ljust(width) + " "
                segments.append(Segment(padded, _style(style) if style else None))
            self._strips[key] = segments
        return segments

    def render_line(self, y: int) -> Strip:
        scroll_x = round(self.scroll_offset.x)
        width = self.size.width
        if y == 0:  # the header stays put while the rows scroll
            header = "".join(" " + label[:w].ljust(w) + " " for _, label, w in self.columns)
            style = self.get_component_rich_style("live-table--header")
            return Strip([Segment(header, style)]).crop(scroll_x, scroll_x + width)
        index = round(self.scroll_offset.y) + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, self.rich_style)
        strip = Strip(self._row_segments(self._keys[index]), self._width)
        if index == self.cursor_row:
            strip = strip.apply_style(self.get_component_rich_style("live-table--cursor"))
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    # ---------------------------------------------------------------- cursor

    def watch_cursor_row(self, old: int, new: int) -> None:
        # Keep the cursor on screen: rows start at line 1, below the header.
        top = round(self.scroll_offset.y)
        rows_shown = max(1, self.size.height - 1)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + rows_shown:
            self.scroll_to(y=new - rows_shown + 1, animate=False)
        self.refresh()

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self._keys) - 1)) if self._keys else 0

    def action_cursor(self, delta: int) -> None:
        self.cursor_row += delta

    def action_page(self, direction: int) -> None:
        self.cursor_row += direction * max(1, self.size.height - 2)

    def action_jump(self, row: int) -> None:
        self.cursor_row = row if row >= 0 else len(self._keys) - 1
