"""Fixtures for the dashboard tests: one seeded catalog per session, apps built on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import textual._wait
from catalog_copy import copy_catalog

from quantplan.catalog.db import open_catalog
from quantplan.catalog.snapshot import CatalogSnapshot, load_snapshot
from quantplan.tui.app import QuantplanApp
from quantplan.tui.fleet.sample import sample_history as recorded_fleet
from quantplan.tui.fleet.sources import FleetSource, ReplayFleetSource, SourceUnavailable
from quantplan.tui.services import CatalogService, DashboardServices

# Pilot waits for the app to go idle after every key and pause: it sleeps in slices of
# SLEEP_GRANULARITY (20 ms) until a slice in which the process used less than SLEEP_IDLE of CPU
# (a twentieth of the slice). A key that makes the app re-render costs a few slices, about 0.1 s
# per key, which the typing tests (80-character names, one key at a time) pay hundreds of times.
# Slices of 5 ms keep the same rule (idle = under 5 % of a slice busy) and cut the wait per key
# to what the app's own work takes; tests never rely on it for correctness (Pilot still drains
# the screen's message queues after each key, and state is awaited with wait_until).
PILOT_IDLE_SLICE_S = 0.005


@pytest.fixture(autouse=True)
def quick_pilot_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textual._wait, "SLEEP_GRANULARITY", PILOT_IDLE_SLICE_S)
    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", PILOT_IDLE_SLICE_S / 20)


@pytest.fixture(autouse=True)
def no_heap_settling(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard collects and freezes its heap once its catalog is loaded (tui/app.py
    ``settle_heap``: it keeps later full collections off the UI thread's way). In a test
    process that is a full collection of the whole test session's heap per app, about 0.17 s
    each, and nothing a test checks depends on it, so it is skipped, except for the tests that
    ask for ``heap_settling`` (the one that checks it)."""
    if "heap_settling" not in request.fixturenames:
        monkeypatch.setattr("quantplan.tui.app.settle_heap", lambda: None)


@pytest.fixture
def heap_settling() -> None:
    """Keep the dashboard's real heap settling in this test (see ``no_heap_settling``)."""


@pytest.fixture(scope="session")
def catalog_url(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> str:
    """A migrated, seeded SQLite catalog shared by the read-only tests (a copy of the session's
    seeded catalog, so the tests that import into theirs never touch the template)."""
    path = tmp_path_factory.mktemp("tui-catalog") / "catalog.db"
    return f"sqlite:///{copy_catalog(seeded_catalog_file, path)}"


@pytest.fixture(scope="session")
def catalog_snapshot(catalog_url: str) -> CatalogSnapshot:
    return load_snapshot(open_catalog(catalog_url))


@pytest.fixture
def make_app(catalog_url: str) -> Callable[..., QuantplanApp]:
    def build(
        *,
        fleet: FleetSource | SourceUnavailable | None = None,
        url: str | None = None,
        mode: str = "advisor",
        theme: str = "textual-dark",
    ) -> QuantplanApp:
        services = DashboardServices(catalog=CatalogService(url or catalog_url))
        if fleet is not None:
            services.fleet = fleet
        return QuantplanApp(services, initial_mode=mode, theme=theme)

    return build


@pytest.fixture
def replay_source() -> ReplayFleetSource:
    return ReplayFleetSource(recorded_fleet(), batch_size=5, description="recorded test fleet")


@pytest.fixture
def plan_dir(tmp_path: Path) -> Path:
    return tmp_path
