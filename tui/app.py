"""The quantplan dashboard: an app shell with three screens (advisor, fleet, catalog).

The app owns the shared state every screen needs -- the catalog snapshot and the services -- and
publishes catalog changes through a signal; screens render and call services, nothing more.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from typing import ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal

from quantplan.errors import QuantplanError
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.screens.catalog import CatalogScreen
from quantplan.tui.screens.fleet import FleetScreen
from quantplan.tui.screens.help import HelpScreen
from quantplan.tui.services import DashboardServices
from quantplan.tui.state import CatalogState, Dashboard

DARK_THEME = "textual-dark"
LIGHT_THEME = "textual-light"


def settle_heap() -> None:
    """Collect once, then take what survived out of the collector's future passes.

    The dashboard's heap is mostly long-lived (modules, widgets, the catalog): about 650k
    objects, which every full collection walked again. Under a busy fleet stream those passes
    ran every couple of seconds and stalled the UI for 75-100 ms each, the slowest key presses
    of the fleet benchmark. Frozen objects are still freed by reference counting; only cycles
    among them are left alone, which is why garbage is collected first.
    """
    gc.collect()
    gc.freeze()


class QuantplanApp(App[None]):
    """Advisor, fleet and catalog over one catalog and one (optional) cluster."""

    TITLE = "quantplan"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, str | Callable[[], Screen]]] = {
        "advisor": AdvisorScreen,
        "fleet": FleetScreen,
        "catalog": CatalogScreen,
    }
    DEFAULT_MODE = "advisor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "switch_mode('advisor')", "Advisor"),
        Binding("f3", "switch_mode('fleet')", "Fleet"),
        Binding("f4", "switch_mode('catalog')", "Catalog"),
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
    ]

    def __init__(
        self,
        services: DashboardServices | None = None,
        *,
        initial_mode: str = "advisor",
        theme: str = DARK_THEME,
    ) -> None:
        if initial_mode in self.MODES:
            # Textual composes its DEFAULT_MODE's screen first: opening straight on the fleet or
            # the catalog would otherwise compose and style the advisor too (about 0.3 s of
            # CPU), only to switch away from it; it is composed when first shown instead.
            # An unknown name keeps the class's default, so switch_mode below refuses it.
            setattr(self, "DEFAULT_MODE", initial_mode)  # noqa: B010 (a ClassVar, per app)
        super().__init__()
        self.services = services or DashboardServices()
        self.catalog_state = CatalogState()
        self.catalog_changed: Signal[CatalogState] = Signal(self, "catalog-changed")
        self.user_inputs = 0
        self._initial_mode = initial_mode
        self.theme = theme

    def on_mount(self) -> None:
        self.sub_title = "catalog: loading"
        self.reload_catalog()
        if self._initial_mode != self.DEFAULT_MODE:
            self.switch_mode(self._initial_mode)

    async def on_event(self, event: events.Event) -> None:
        # Counted as the app takes each one from its queue, before it goes to the focused
        # widget: a callback queued behind them (call_later) sees every key typed before it.
        if isinstance(event, (events.Key, events.MouseDown)) and not event.is_forwarded:
            self.user_inputs += 1
        await super().on_event(event)

    def on_unmount(self) -> None:
        # Hand the frozen objects back to the collector: whatever runs after the dashboard in
        # this process (a test session runs hundreds of apps) must not keep its cycles forever.
        gc.unfreeze()

    # ---------------------------------------------------------------- catalog

    @work(thread=True, exclusive=True, group="catalog", exit_on_error=False)
    def reload_catalog(self) -> None:
        """Open (migrate, seed on first use) and read the catalog off the UI thread."""
        try:
            state = CatalogState(snapshot=self.services.catalog.load())
        except QuantplanError as error:
            state = CatalogState(error=error.message, hint=error.hint)
        except Exception as error:  # e.g. a file that is not a database: shown, never raised
            state = CatalogState(
                error=f"{type(error).__name__}: {error}",
                hint="check --db / QUANTPLAN_DB; `quantplan catalog where` shows the path in use",
            )
        self.call_from_thread(self._set_catalog, state)

    def _set_catalog(self, state: CatalogState) -> None:
        first_load = self.catalog_state.loading
        self.catalog_state = state
        if first_load:
            # Loaded or not, the heap is now what stays: modules, widgets and the catalog.
            settle_heap()
        if state.snapshot is not None:
            snap = state.snapshot
            self.sub_title = (
                f"catalog: {len(snap.models)} models, {len(snap.instances)} instance types, "
                f"{len(snap.profiles)} profiles"
            )
        else:
            self.sub_title = "catalog: unavailable"
        self.catalog_changed.publish(state)

    # ---------------------------------------------------------------- actions

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT_THEME if self.theme == DARK_THEME else DARK_THEME

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Advisor", "Targets in, ranked plan out", lambda: self.switch_mode("advisor")
        )
        yield SystemCommand(
            "Fleet", "Live nodes, jobs and deployments", lambda: self.switch_mode("fleet")
        )
        yield SystemCommand(
            "Catalog", "Browse and import catalog data", lambda: self.switch_mode("catalog")
        )
        yield SystemCommand("Help", "Screens and keys", self.action_help)
        yield SystemCommand(
            "Toggle light/dark theme", "Switch between light and dark", self.action_toggle_theme
        )
        yield SystemCommand("Reload catalog", "Read the catalog again", self.reload_catalog)
        yield from getattr(screen, "screen_commands", lambda: ())()
        yield from super().get_system_commands(screen)


# The screens see the app as a Dashboard (tui/state.py); mypy checks here that the app is one.
_APP_IS_A_DASHBOARD: type[Dashboard] = QuantplanApp
