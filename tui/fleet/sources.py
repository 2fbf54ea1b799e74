"""Where the Fleet screen's events come from: one small interface, several sources.

The events are the cluster's own contract, :mod:`quantplan.agent.cluster.events`. A
:class:`FleetSource` yields them in batches; the screen does not care whether they come from the
collector actor on a Ray cluster, an in-process :class:`~quantplan.agent.cluster.events.EventBus`
(the simulator, tests) or a recorded list -- it folds them into
:class:`~quantplan.tui.viewmodels.fleet_state.FleetState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from quantplan.agent.cluster.events import EventSource, FleetEvent

START_CLUSTER_HINT = (
    'Start a local cluster with `quantplan cluster up --nodes "c7i.xlarge:2,c7i.large:1"`, '
    "then open the dashboard again with `quantplan dashboard --address auto`."
)


T = TypeVar("T")


async def in_daemon_thread(function: Callable[[], T]) -> T:
    """Run blocking cluster I/O off the event loop, in a daemon thread.

    Not ``asyncio.to_thread``: its executor is joined when the loop closes, so a call stuck on
    an unreachable cluster (Ray retries for minutes) would keep the dashboard from quitting.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T) -> None:
        if not future.done():
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            result = function()
        except BaseException as error:
            # RuntimeError: the loop closed meanwhile (the dashboard quit); nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fail, error)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=run, daemon=True, name="fleet-io").start()
    return await future


class FleetUnavailable(Exception):
    """The source cannot reach a fleet; the screen shows how to get one instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class FleetSource(Protocol):
    """A stream of fleet events in batches; it ends when the source is exhausted."""

    @property
    def description(self) -> str:
        """Where the events come from, for the screen's header."""
        ...

    def events(self) -> AsyncIterator[Sequence[FleetEvent]]: ...


@dataclass
class ReplayFleetSource:
    """Replays a fixed list of events in batches: recorded sessions, tests, screenshots."""

    recorded: Sequence[FleetEvent]
    batch_size: int = 100
    description: str = "recorded events"

    async def events(self) -> AsyncIterator[Sequence[FleetEvent]]:
        for start in range(0, len(self.recorded), self.batch_size):
            yield self.recorded[start : start + self.batch_size]
            await asyncio.sleep(0)


@dataclass
class PolledFleetSource:
    """Long-polls an :class:`EventSource` (the collector actor, or an in-process bus).

    One daemon thread polls back to back and hands batches to the event loop, so receiving
    and validating the next batch overlaps with drawing the last one and a slow cluster never
    blocks the UI. When the collector restarts (a new epoch) reading starts over at the new
    epoch's first event; the view-model folds full statuses, so replaying them is harmless.
    """

    source: EventSource
    description: str
    poll_timeout_s: float = 0.5
    # Validating a batch holds the GIL: batches of 1,000 keep each stall of the UI thread to
    # about 10 ms while polling often enough for 10,000+ events/s.
    batch_limit: int = 1_000
    max_pending_batches: int = 20

    def _poll(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Sequence[FleetEvent] | BaseException],
        stop: threading.Event,
    ) -> None:
        epoch: str | None = None
        cursor = 0
        try:
            while not stop.is_set():
                if queue.qsize() > self.max_pending_batches:  # the UI is behind: let it catch up
                    stop.wait(0.01)
                    continue
                batch = self.source.events_since(
                    cursor, timeout_s=self.poll_timeout_s, limit=self.batch_limit
                )
                if epoch is not None and batch.epoch != epoch:
                    cursor, epoch = 0, batch.epoch
                    continue
                epoch, cursor = batch.epoch, batch.next_seq
                if batch.events:
                    loop.call_soon_threadsafe(queue.put_nowait, batch.events)
        except BaseException as error:
            # RuntimeError from call_soon_threadsafe: the loop closed (the dashboard quit).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, error)

    async def events(self) -> AsyncIterator[Sequence[FleetEvent]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Sequence[FleetEvent] | BaseException] = asyncio.Queue()
        stop = threading.Event()
        poller = threading.Thread(
            target=self._poll, args=(loop, queue, stop), daemon=True, name="fleet-poll"
        )
        poller.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()


@dataclass(frozen=True)
class SourceUnavailable:
    """Why there is no live fleet, and how to get one."""

    reason: str
    hint: str = START_CLUSTER_HINT


@dataclass
class RayFleetSource:
    """The collector actor's stream on a Ray cluster; connects when first read, off the UI."""

    address: str

    @property
    def description(self) -> str:
        return f"Ray cluster at {self.address}"

    def _connect(self) -> EventSource:
        try:
            # Imports Ray: only done when the user asked for a cluster.
            from quantplan.agent.cluster.collector_actor import connect_events
        except ImportError as error:
            raise FleetUnavailable(f"this install cannot reach a Ray cluster: {error}") from None
        try:
            return connect_events(self.address)
        except Exception as error:  # no cluster or no collector there: a reason, not a crash
            raise FleetUnavailable(
                f"cannot connect to the cluster at {self.address!r}: {error}"
            ) from None

    async def events(self) -> AsyncIterator[Sequence[FleetEvent]]:
        source = await in_daemon_thread(self._connect)
        async for batch in PolledFleetSource(source, self.description).events():
            yield batch


def connect_fleet_source(address: str | None) -> FleetSource | SourceUnavailable:
    """The fleet source for ``address`` (connected lazily), or why there is none."""
    if address is None:
        return SourceUnavailable("no cluster address given (--address auto)")
    return RayFleetSource(address)
