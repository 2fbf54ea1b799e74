"""Small modal dialogs: ask for a file path."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class PathPrompt(ModalScreen[Path | None]):
    """Asks for a path; dismisses with it (Enter / OK) or None (Escape / Cancel)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, default: str, *, must_exist: bool = False, action_label: str = "OK"
    ) -> None:
        super().__init__()
        self._title = title
        self._default = default
        self._must_exist = must_exist
        self._action_label = action_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self._title, id="dialog-title")
            yield Input(value=self._default, id="dialog-path")
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button(self._action_label, variant="primary", id="dialog-ok")
                yield Button("Cancel", id="dialog-cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._accept()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "dialog-ok":
            self._accept()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def show_error(self, message: str) -> None:
        self.query_one("#dialog-error", Static).update(Text(message))  # names a typed path

    def _accept(self) -> None:
        text = self.query_one("#dialog-path", Input).value.strip()
        if not text:
            self.show_error("type a file path")
            return
        path = Path(text).expanduser()
        if self._must_exist and not path.is_file():
            self.show_error(f"no such file: {path}")
            return
        self.dismiss(path)
