"""Where the Fleet screen's events come from: one small interface, several sources.

The events are the cluster's own contract, :mod:`quantplan.agent.cluster.events`. A
:class:`FleetSource` yields them in batches; the screen does not care whether they come from the
collector actor on a Ray cluster, an in-process :class:`~quantplan.agent.cluster.events.EventBus`
(the simulator, tests) or a recorded list -- it folds them into
:class:`~quantplan.tui.viewmodels.fleet_state.FleetState`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from quantplan.agent.cluster.events import EventSource, FleetEvent

START_CLUSTER_HINT = (
    'Start a local cluster with `quantplan cluster up --nodes "cpu-small:2,cpu-large:1"`, '
    "then open the dashboard again with `quantplan dashboard --address auto`."
)


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

    Each poll runs in a thread, so a slow cluster never blocks the UI. When the collector
    restarts (a new epoch) reading starts over at the new epoch's first event; the view-model
    folds full statuses, so replaying them is harmless.
    """

    source: EventSource
    description: str
    poll_timeout_s: float = 0.5
    batch_limit: int = 5_000

    async def events(self) -> AsyncIterator[Sequence[FleetEvent]]:
        epoch: str | None = None
        cursor = 0
        while True:
            batch = await asyncio.to_thread(
                self.source.events_since,
                cursor,
                timeout_s=self.poll_timeout_s,
                limit=self.batch_limit,
            )
            if epoch is not None and batch.epoch != epoch:
                cursor, epoch = 0, batch.epoch
                continue
            epoch, cursor = batch.epoch, batch.next_seq
            if batch.events:
                yield batch.events


@dataclass(frozen=True)
class SourceUnavailable:
    """Why there is no live fleet, and how to get one."""

    reason: str
    hint: str = START_CLUSTER_HINT


def connect_fleet_source(address: str | None) -> FleetSource | SourceUnavailable:
    """The collector's stream on the cluster at ``address``, or the reason there is none."""
    if address is None:
        return SourceUnavailable("no cluster address given (--address auto)")
    try:
        # Imports Ray: only done when the user asked for a cluster.
        from quantplan.agent.cluster.collector_actor import connect_events
    except ImportError as error:
        return SourceUnavailable(f"this install cannot reach a Ray cluster: {error}")
    try:
        source = connect_events(address)
    except Exception as error:  # no cluster, or no collector on it: say so, keep the dashboard
        return SourceUnavailable(f"cannot connect to the cluster at {address!r}: {error}")
    return PolledFleetSource(source, description=f"Ray cluster at {address}")
