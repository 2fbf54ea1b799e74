"""Helpers shared by the dashboard tests: waiting on the app, a recorded fleet history."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from quantplan.tui.app import QuantplanApp


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until ``predicate`` holds (workers and timers included)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("the app did not reach the expected state in time")
        # Short polls: most waits are for a worker that is done within a few milliseconds,
        # and the test process (an xdist worker) has nothing else to do while it sleeps.
        await pilot.pause(0.01)
    await pilot.pause()


async def catalog_loaded(pilot: Pilot) -> None:
    app = pilot.app
    assert isinstance(app, QuantplanApp)
    await wait_until(pilot, lambda: not app.catalog_state.loading)


def plain_text(widget: Static) -> str:
    """What a Static shows, as plain text (Rich tables included), at a roomy width."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()
