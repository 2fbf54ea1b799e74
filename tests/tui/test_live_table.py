"""LiveTable: keyed rows, cheap updates, a cursor that stays on screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

from quantplan.tui.widgets.live_table import LiveTable

COLUMNS = (("name", "name", 8), ("value", "value", 6))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LiveTable(COLUMNS, id="table")


def rendered_lines(table: LiveTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def test_rows_render_update_and_scroll_with_the_cursor() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 6)) as pilot:  # header + 5 rows on screen
        table = app.query_one(LiveTable)
        for index in range(10):
            table.add_row(f"row-{index}", (f"row-{index}", (str(index), "green")))
        table.focus()
        await pilot.pause()
        lines = rendered_lines(table)
        assert lines[0].split() == ["name", "value"]
        assert lines[1].split() == ["row-0", "0"]
        table.update_row("row-1", ("row-1", "99999999"))  # cut to the column's width
        table.repaint()
        await pilot.pause()
        assert table.get_cell("row-1", "value") == "99999999"
        assert rendered_lines(table)[2].split() == ["row-1", "999999"]

        await pilot.press("down", "down", "down", "down", "down")
        assert table.cursor_row == 5
        assert 5 in table.visible_rows()  # scrolled so the cursor stays visible
        assert rendered_lines(table)[0].split() == ["name", "value"]  # header stays put
        await pilot.press("end")
        assert table.cursor_row == 9 and 9 in table.visible_rows()
        await pilot.press("pageup")
        assert table.cursor_row == 5  # a page is the rows shown less one, for context
        await pilot.press("home", "up")
        assert table.cursor_row == 0 and table.visible_rows()[0] == 0


async def test_set_rows_follows_the_cursor_row_and_keeps_styled_cells() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 6)) as pilot:
        table = app.query_one(LiveTable)
        table.set_rows([(key, (key, "1")) for key in ("a", "b", "c")])
        table.focus()
        await pilot.press("down")
        assert table.cursor_row == 1
        bar = Text("██", style="green")
        bar.append("░░ 50%", style="dim")
        # A row arrives on top, "b" moves down: the cursor moves with it.
        table.set_rows([("z", ("z", "0")), ("a", ("a", "1")), ("b", ("b", bar)), ("c", ("c", "1"))])
        await pilot.pause()
        assert table.row_keys == ["z", "a", "b", "c"] and table.cursor_row == 2
        assert table.get_cell("b", "value") == "██░░ 50%"  # the plain text, uncut
        line = table.render_line(3)
        assert line.text.split() == ["b", "██░░", "5"]  # cut to the column
        styles = {segment.text: segment.style for segment in line if segment.text.strip()}
        assert styles["██"].color is not None and styles["██"].color.name == "green"
        # The cursor's row went away: the cursor stays in range.
        table.set_rows([("z", ("z", "0"))])
        await pilot.pause()
        assert table.cursor_row == 0 and table.row_count == 1
