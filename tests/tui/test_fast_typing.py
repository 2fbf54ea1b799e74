"""Fast typing into the advisor's Model field: every character arrives, whatever the app is doing.

Keys are typed three ways: one at a time through Pilot, in a burst queued before the app handles
the first (as a terminal delivers a fast typist's keys when the app is busy), and while a CPU-bound
thread competes for the interpreter. The app is kept busy with what it really does meanwhile: a
catalog reload, and a plan that finishes while the user is still typing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from textual import events
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.widgets import DataTable, Input
from tui_support import catalog_loaded, wait_until

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.plan import Plan
from quantplan.planner.targets import Targets
from quantplan.tui.app import QuantplanApp
from quantplan.tui.screens.advisor import AdvisorScreen
from quantplan.tui.services import CatalogService, DashboardServices, PlannerService

LONG_NAME = "Meta-Llama-3.1-70B-Instruct-GPTQ-INT4-g128-act-order-v2.1-calibrated-on-ultrachat"
SUFFIX = "-Instruct-AWQ-INT4-g128-from-a-very-long-repository-name-v0.3"


@dataclass
class GatedPlanner(PlannerService):
    """The real planner, held at the gate until the test lets the plan finish."""

    started: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    def make_plan(
        self, targets: Targets, snapshot: CatalogSnapshot, *, catalog_revision: str | None = None
    ) -> Plan:
        self.started.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return super().make_plan(targets, snapshot, catalog_revision=catalog_revision)


def _advisor(app: QuantplanApp) -> AdvisorScreen:
    assert isinstance(app.screen, AdvisorScreen)
    return app.screen


async def _empty_model_field(pilot: Pilot) -> Input:
    field = pilot.app.screen.query_one("#input-model", Input)
    field.focus()
    await pilot.press("end", "ctrl+u")
    assert field.value == ""
    return field


def _burst(app: QuantplanApp, text: str) -> None:
    """Queue every key of ``text`` at once, as keys pile up from a terminal while the app is
    busy: none is handled before the last is queued."""
    for character in text:
        key = character if character.isalnum() else _character_to_key(character)
        app.post_message(events.Key(key, character))


@contextmanager
def _cpu_burner(threads: int = 1) -> Iterator[None]:
    """Threads that keep the interpreter busy (they take the GIL in turn with the app)."""
    stop = threading.Event()

    def burn() -> None:
        total = 0
        while not stop.is_set():
            total += sum(i * i for i in range(2000))

    workers = [threading.Thread(target=burn, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join()


async def _idle(pilot: Pilot) -> None:
    for _ in range(3):
        await pilot.pause()


async def test_a_long_name_typed_fast_arrives_whole(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        field = await _empty_model_field(pilot)
        await pilot.press(*LONG_NAME)
        assert field.value == LONG_NAME
        await pilot.press("end", "ctrl+u")
        _burst(app, LONG_NAME)
        await wait_until(pilot, lambda: len(field.value) >= len(LONG_NAME))
        await _idle(pilot)
        assert field.value == LONG_NAME
        assert _advisor(app).form.model == LONG_NAME  # what validation and planning will read


@pytest.mark.slow  # every key waits its turn for the interpreter: 15-30 s on 2 shared cores
async def test_typing_while_a_thread_burns_cpu_and_the_catalog_reloads(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await catalog_loaded(pilot)
        field = await _empty_model_field(pilot)
        with _cpu_burner():
            app.reload_catalog()  # the catalog is read again meanwhile (as after an import)
            _burst(app, LONG_NAME[:50])
            await pilot.press(*LONG_NAME[50:60])
            app.reload_catalog()
            _burst(app, LONG_NAME[60:])
            await wait_until(pilot, lambda: len(field.value) >= len(LONG_NAME), timeout=30)
            await wait_until(pilot, lambda: not app.catalog_state.loading, timeout=30)
            await _idle(pilot)
        assert field.value == LONG_NAME
        assert app.focused is field


@pytest.mark.parametrize("size", [(100, 40), (80, 24)])
async def test_a_plan_that_finishes_while_the_user_types_takes_no_keys(
    catalog_url: str, size: tuple[int, int]
) -> None:
    """Enter plans, and the user goes on typing; the plan lands between two keys. Before, the
    results took the focus (and, below 100 columns, hid the form), so every key after that went
    to the options table."""
    planner = GatedPlanner()
    app = QuantplanApp(DashboardServices(catalog=CatalogService(catalog_url), planner=planner))
    async with app.run_test(size=size) as pilot:
        await catalog_loaded(pilot)
        screen = _advisor(app)
        field = await _empty_model_field(pilot)
        await pilot.press(*"Llama-3.1-8B", "enter")
        await wait_until(pilot, lambda: planner.started.is_set())
        half = len(SUFFIX) // 2
        await pilot.press(*SUFFIX[:half])
        planner.gate.set()
        await wait_until(pilot, lambda: screen.plan is not None)
        await pilot.press(*SUFFIX[half:])
        assert field.value == "Llama-3.1-8B" + SUFFIX
        assert app.focused is field
        assert screen.query_one("#targets-form").display  # not hidden under the user's hands
        assert screen.query_one("#options", DataTable).row_count > 0  # the results are shown


async def test_keys_queued_when_the_plan_lands_still_reach_the_field(
    make_app: Callable[..., QuantplanApp],
) -> None:
    """The plan is shown while typed keys are still queued, not yet handled: they are the
    user's typing all the same (the results stay back), and go to the field."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        screen = _advisor(app)
        field = await _empty_model_field(pilot)
        await pilot.press(*"Llama-3.1-8B", "enter")
        await wait_until(pilot, lambda: screen.plan is not None)
        plan = screen.plan
        assert plan is not None
        assert app.focused is screen.query_one("#options", DataTable)  # waited on: forward
        await pilot.press("ctrl+b")  # the form back, after the first plan made room
        assert app.focused is field
        await pilot.press("end")
        _burst(app, SUFFIX)
        screen.show_plan(plan)  # lands before any queued key is handled
        await wait_until(pilot, lambda: len(field.value) >= len("Llama-3.1-8B" + SUFFIX))
        await _idle(pilot)
        assert field.value == "Llama-3.1-8B" + SUFFIX
        assert app.focused is field


async def test_a_plan_asked_for_and_waited_on_still_brings_the_results_forward(
    catalog_url: str,
) -> None:
    """With no key typed since Enter, the results take the focus and, in 80 columns, the width."""
    planner = GatedPlanner()
    app = QuantplanApp(DashboardServices(catalog=CatalogService(catalog_url), planner=planner))
    async with app.run_test(size=(80, 24)) as pilot:
        await catalog_loaded(pilot)
        screen = _advisor(app)
        await _empty_model_field(pilot)
        await pilot.press(*"Llama-3.1-8B", "enter")
        await wait_until(pilot, lambda: planner.started.is_set())
        planner.gate.set()
        await wait_until(pilot, lambda: screen.plan is not None)
        await _idle(pilot)
        table = screen.query_one("#options", DataTable)
        assert app.focused is table
        assert not screen.query_one("#targets-form").display
