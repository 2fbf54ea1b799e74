"""One labelled form input with its validation message underneath."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static


class FormField(Vertical):
    """Label, input, and an error line that is empty while the value is valid."""

    DEFAULT_CSS = """
    FormField { height: auto; }
    FormField .field-error { color: $error; height: auto; }
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
        error.update(message or "")
        error.set_class(not message, "-empty")
        self.query_one(Input).set_class(bool(message), "-invalid")
