"""A Footer that rebuilds its keys only when the keys it shows change.

Textual's Footer removes and remounts every key widget whenever the screen's bindings are
updated, which happens on every focus change, even when the keys it shows stay the same. On the
fleet screen each tab switch moves the focus, and that remount was most of the switch's cost
(profiled on the 1,000-node bench: about 70 ms of CPU per switch on this 2-core machine, against
a few ms without it).
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class SteadyFooter(Footer):
    """Same keys, same widgets: a focus change that leaves the shown keys alone costs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple[object, ...] | None = None

    def _shown_keys(self, screen: Screen[Any]) -> tuple[object, ...]:
        palette = self.app.COMMAND_PALETTE_BINDING
        return tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
            if binding.show or key == palette
        )

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if self.is_attached and screen is self.screen and self.app.app_focus:
            shown = self._shown_keys(screen)
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)
