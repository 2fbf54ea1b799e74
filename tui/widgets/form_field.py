"""One labelled form input with its validation message underneath."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static


class FormField(Vertical):
    """Label and input on one line, and an error line that shows only while invalid."""

    DEFAULT_CSS = """
    FormField { height: auto; }
    FormField > Horizontal { height: 1; }
    FormField Label { width: 15; color: $text-muted; }
    FormField Input { width: 1fr; }
    FormField Input.-invalid { background: $error 25%; }
    FormField .field-error { color: $error; height: auto; padding-left: 2; }
    FormField .field-error.-empty { display: none; }
    """

    def __init__(
        self,
        name: str,
        label: str,
        value: str,
        *,
        placeholder: str = "",
        suggester: Suggester | None = None,
    ) -> None:
        super().__init__(id=f"field-{name}")
        self.field_name = name
        self._label = label
        self._value = value
        self._placeholder = placeholder
        self._suggester = suggester

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(self._label)
            yield Input(
                value=self._value,
                placeholder=self._placeholder,
                suggester=self._suggester,
                id=f"input-{self.field_name}",
                compact=True,
            )
        yield Static("", classes="field-error -empty")

    def show_error(self, message: str | None) -> None:
        error = self.query_one(".field-error", Static)
        error.update(Text(message or ""))  # quotes what the user typed: never markup
        error.set_class(not message, "-empty")
        self.query_one(Input).set_class(bool(message), "-invalid")
