"""Fleet screen: no cluster, a recorded history, a live simulated stream, a lost stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher, RichLog, Static
from textual.widgets._footer import FooterKey
from tui_support import plain_text, wait_until

from quantplan.agent.cluster.events import EventBatch, FleetEvent
from quantplan.tui.app import QuantplanApp
from quantplan.tui.fleet.simulated import SimulatedFleet, SimulatedFleetSource
from quantplan.tui.fleet.sources import (
    FleetUnavailable,
    PolledFleetSource,
    RayFleetSource,
    ReplayFleetSource,
    SourceUnavailable,
    connect_fleet_source,
)
from quantplan.tui.screens.fleet import FleetScreen
from quantplan.tui.widgets.live_table import LiveTable


async def fleet_screen(pilot: Pilot) -> FleetScreen:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, FleetScreen))
    screen = pilot.app.screen
    assert isinstance(screen, FleetScreen)
    return screen


async def test_without_a_cluster_it_says_how_to_start_one(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app(mode="fleet", fleet=connect_fleet_source(None))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await fleet_screen(pilot)
        message = plain_text(screen.query_one("#no-cluster-message", Static))
        assert "quantplan cluster up" in message
        assert "no cluster address given" in message
        await pilot.press("n")  # tab keys do nothing harmful without a cluster
        assert not screen.query_one("#fleet-live").display


async def test_recorded_history_fills_every_tab(
    make_app: Callable[..., QuantplanApp], replay_source: ReplayFleetSource
) -> None:
    app = make_app(mode="fleet", fleet=replay_source)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fleet_screen(pilot)
        nodes = screen.query_one("#nodes", LiveTable)
        await wait_until(pilot, lambda: nodes.row_count == 3 and screen.state.replan_dirty is False)
        await pilot.pause(0.3)
        assert nodes.get_cell("node-2", "state") == "lost"
        assert nodes.get_cell("node-1", "jobs") == "1"
        assert nodes.get_cell("node-0", "cost") == "0.186"
        summary = plain_text(screen.query_one("#fleet-summary", Static))
        assert "recorded test fleet" in summary and "2 joined, 1 lost" in summary
        assert "$0.186/M tok" in summary
        banner = screen.query_one("#replan", Static)
        assert banner.display and "9% over the prediction" in plain_text(banner)

        tabs = screen.query_one("#fleet-tabs", ContentSwitcher)
        await pilot.press("j")
        assert tabs.current == "jobs" and app.focused is screen.query_one("#jobs")
        jobs = screen.query_one("#jobs", LiveTable)
        assert jobs.row_keys == ["bench-1", "quantize-1"]
        # The running benchmark shows its real step count; the finished quantize job, which
        # reported no fraction, shows none.
        assert jobs.get_cell("bench-1", "progress") == "█████░░░  67%"
        assert jobs.get_cell("bench-1", "detail") == "2/3 levels done, 8 in flight"
        assert jobs.get_cell("quantize-1", "progress") == "-"
        await pilot.press("d")
        deployments = screen.query_one("#deployments", LiveTable)
        assert deployments.row_count == 1
        (deployment,) = deployments.row_keys
        assert deployments.get_cell(deployment, "cost") == "0.186 | 0.170"
        assert deployments.get_cell(deployment, "ttft") == "247 | 230"  # slowest replica | plan
        await pilot.press("e")
        log = screen.query_one("#events", RichLog)
        text = "\n".join(line.text for line in log.lines)
        assert "node node-2 (c7i.8xlarge) lost: heartbeat missed" in text
        assert "report run-1 (profile) recorded" in text
        assert "replan_proposed" in text


async def test_simulated_stream_updates_live(make_app: Callable[..., QuantplanApp]) -> None:
    source = SimulatedFleetSource(SimulatedFleet(nodes=20, seed=3), period_s=0.05)
    app = make_app(mode="fleet", fleet=source)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fleet_screen(pilot)
        nodes = screen.query_one("#nodes", LiveTable)
        await wait_until(pilot, lambda: nodes.row_count == 20)
        await wait_until(pilot, lambda: nodes.get_cell("node-0000", "tokens") != "-")
        first = screen.state.events_applied
        before = nodes.get_cell("node-0000", "tokens")
        await wait_until(pilot, lambda: nodes.get_cell("node-0000", "tokens") != before)
        assert screen.state.events_applied > first
        # Job progress and replica latency move live too, also while their tab is hidden.
        await pilot.press("j")
        jobs = screen.query_one("#jobs", LiveTable)
        await wait_until(pilot, lambda: jobs.row_count > 0)
        progress = jobs.get_cell("quantize-0", "progress")
        await wait_until(pilot, lambda: jobs.get_cell("quantize-0", "progress") != progress)
        await pilot.press("d")
        deployments = screen.query_one("#deployments", LiveTable)
        await wait_until(pilot, lambda: deployments.row_count > 0)
        first = deployments.row_keys[0]
        ttft = deployments.get_cell(first, "ttft")
        assert ttft.split(" | ")[1] in ("180", "900")  # the simulated plan's GPU/CPU prediction
        await wait_until(pilot, lambda: deployments.get_cell(first, "ttft") != ttft)
        assert "SIMULATED" in plain_text(screen.query_one("#fleet-summary", Static))


class BrokenLink:
    """An event source whose connection fails: the I/O seam, swapped for a failing one."""

    def events_since(self, since: int, *, timeout_s: float = 0.0, limit: int = 500) -> EventBatch:
        raise ConnectionError("collector unreachable")


async def test_a_lost_stream_is_shown_not_raised(make_app: Callable[..., QuantplanApp]) -> None:
    app = make_app(mode="fleet", fleet=PolledFleetSource(BrokenLink(), description="Ray at test"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fleet_screen(pilot)
        await wait_until(pilot, lambda: screen.stream_error is not None)
        await pilot.pause(0.3)
        summary = screen.query_one("#fleet-summary", Static)
        assert "lost the fleet stream: ConnectionError: collector unreachable" in plain_text(
            summary
        )
        assert summary.has_class("-error")


class Unreachable:
    """A source that cannot reach its cluster (what RayFleetSource raises on a failed connect)."""

    description = "Ray cluster at 10.0.0.99:6379"

    async def events(self) -> AsyncIterator[Sequence[FleetEvent]]:
        raise FleetUnavailable("cannot connect to the cluster at '10.0.0.99:6379': timed out")
        yield ()  # an async generator that fails on first read


async def test_an_unreachable_cluster_turns_into_the_start_hint(
    make_app: Callable[..., QuantplanApp],
) -> None:
    app = make_app(mode="fleet", fleet=Unreachable())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await fleet_screen(pilot)
        await wait_until(pilot, lambda: screen.query_one("#no-cluster").display)
        message = plain_text(screen.query_one("#no-cluster-message", Static))
        assert "cannot connect to the cluster at '10.0.0.99:6379'" in message
        assert "quantplan cluster up" in message
        await pilot.pause(0.4)  # the refresh tick must not trip over the missing tables


def test_no_address_means_no_source() -> None:
    result = connect_fleet_source(None)
    assert isinstance(result, SourceUnavailable) and "--address" in result.reason
    assert isinstance(connect_fleet_source("auto"), RayFleetSource)  # connects lazily


@pytest.mark.slow  # waits for 2,000 live updates: about 7 s on the 2-core machine
async def test_switching_tabs_keeps_the_footer_and_table_caches_stay_small(
    make_app: Callable[..., QuantplanApp],
) -> None:
    source = SimulatedFleetSource(SimulatedFleet(nodes=20, seed=5), period_s=0.05)
    app = make_app(mode="fleet", fleet=source)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fleet_screen(pilot)
        await wait_until(pilot, lambda: screen.query_one("#nodes", LiveTable).row_count == 20)
        footer_keys = list(screen.query(FooterKey))
        assert footer_keys
        for key in "jdnjd":
            await pilot.press(key)
        await pilot.pause(0.1)
        # Focus moved between tables whose keys are not shown: no key widget was rebuilt.
        assert list(screen.query(FooterKey)) == footer_keys
        applied = screen.state.events_applied
        await wait_until(pilot, lambda: screen.state.events_applied > applied + 2_000)
        await pilot.pause(0.3)
        # Live updates keep at most one built line per row, whatever the number of updates.
        for table in screen.query(LiveTable):
            assert set(table._strips) <= set(table.row_keys)
