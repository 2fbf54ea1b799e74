"""What the screens share through the app: the catalog state and the dashboard's seams.

Kept below the app and its screens: the app builds the screens, and the screens need only this
(the state they render and the services they call), not the app class itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from textual.signal import Signal

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.tui.services import DashboardServices


@dataclass(frozen=True)
class CatalogState:
    """The catalog as the screens see it: loading, loaded, or failed with a reason."""

    snapshot: CatalogSnapshot | None = None
    error: str | None = None
    hint: str | None = None

    @property
    def loading(self) -> bool:
        return self.snapshot is None and self.error is None


class Dashboard(Protocol):
    """The part of the app a screen uses (``QuantplanApp`` provides it; mypy checks that)."""

    services: DashboardServices
    catalog_state: CatalogState
    catalog_changed: Signal[CatalogState]
    user_inputs: int
    """Keys and mouse presses the app has taken from the terminal so far: a screen compares
    two readings to know whether the user did anything in between."""

    def reload_catalog(self) -> object:
        """Read the catalog again off the UI thread; ``catalog_changed`` announces the result."""
        ...
