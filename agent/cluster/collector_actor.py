"""The collector as a Ray actor: one per cluster, named, detached, restartable, on the head node.

Everything crossing the actor boundary is JSON text validated on both sides (reports, events,
answers), never pickled objects of ours. ``max_task_retries=-1`` makes callers' submissions
survive a collector restart (delivered at least once; run ids make that exactly once in the
catalog), and the spool on the head node's disk carries accepted reports across the restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import ray

from quantplan.agent.cluster.collector import CollectorStats, ReportCollector, SubmitResult
from quantplan.agent.cluster.events import EventBatch, FleetEvent, parse_event
from quantplan.agent.cluster.naming import NAMESPACE
from quantplan.agent.cluster.traffic import TrafficShare
from quantplan.catalog.reports import MeasurementReport
from quantplan.errors import QuantplanError
from quantplan.paths import data_dir

if TYPE_CHECKING:
    from ray import ObjectRef

COLLECTOR_NAME = "quantplan-collector"
HEAD_NODE_RESOURCE = "node:__internal_head__"
"""Ray's built-in resource that only the head node has: pins the collector (and its spool)."""


def default_spool_dir() -> Path:
    return data_dir() / "collector-spool"


# Ray's typed overloads of remote() omit the actor-only options (max_concurrency), which it
# accepts at run time.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)  # type: ignore[call-overload]
class CollectorActor:
    def __init__(self, database_url: str, spool_dir: str) -> None:
        self._collector = ReportCollector(database_url, Path(spool_dir))
        self._collector.start()  # drains whatever an earlier incarnation spooled

    def submit(self, reports: list[str]) -> str:
        return self._collector.submit(reports).model_dump_json()

    def publish(self, event: str) -> int:
        return self._collector.publish(parse_event(event)).seq

    def add_traffic(self, share: str) -> None:
        self._collector.add_traffic(TrafficShare.model_validate_json(share))

    def events_since(self, since: int, timeout_s: float, limit: int) -> str:
        batch = self._collector.bus.events_since(since, timeout_s=timeout_s, limit=limit)
        return batch.model_dump_json()

    def flush(self) -> bool:
        return self._collector.flush()

    def stats(self) -> str:
        return self._collector.stats().model_dump_json()

    def epoch(self) -> str:
        return self._collector.bus.epoch


def start_collector(database_url: str, spool_dir: Path | None = None) -> ray.actor.ActorHandle:
    """The cluster's collector, started on the head node if it is not running yet."""
    spool = spool_dir or default_spool_dir()
    handle = CollectorActor.options(  # type: ignore[attr-defined]
        name=COLLECTOR_NAME,
        namespace=NAMESPACE,
        lifetime="detached",  # outlives the `quantplan apply` process that started it
        get_if_exists=True,
        resources={HEAD_NODE_RESOURCE: 0.001},
    ).remote(database_url, str(spool))
    ray.get(handle.epoch.remote())
    return handle


def get_collector() -> ray.actor.ActorHandle:
    try:
        return ray.get_actor(COLLECTOR_NAME, namespace=NAMESPACE)
    except ValueError:
        raise NoCollectorError(
            "this Ray cluster has no quantplan collector yet",
            hint="`quantplan cluster up` starts one; on another cluster, `quantplan apply` does",
        ) from None


def _json_answer(reference: ObjectRef[str], timeout_s: float) -> str:
    """A collector method's answer: JSON text (see the module docstring). Said here because Ray
    types a handle's methods only for actor methods declared with ``ray.method``."""
    return ray.get(reference, timeout=timeout_s)


class NoCollectorError(QuantplanError, ValueError):
    """The cluster runs no collector (a ValueError too, as Ray's lookup raised)."""


class CollectorClient:
    """What node agents and apply use to send reports and events (validated both ways)."""

    def __init__(self, handle: ray.actor.ActorHandle | None = None) -> None:
        self.handle = handle or get_collector()

    def submit(self, reports: list[MeasurementReport], timeout_s: float = 120) -> SubmitResult:
        texts = [report.model_dump_json() for report in reports]
        answer = _json_answer(self.handle.submit.remote(texts), timeout_s)
        return SubmitResult.model_validate_json(answer)

    def publish(self, event: FleetEvent) -> None:
        # Fire and forget: a dashboard missing one event is better than a job waiting on it.
        self.handle.publish.remote(event.model_dump_json())

    def stats(self, timeout_s: float = 30) -> CollectorStats:
        return CollectorStats.model_validate_json(
            _json_answer(self.handle.stats.remote(), timeout_s)
        )

    def flush(self, timeout_s: float = 120) -> bool:
        return bool(ray.get(self.handle.flush.remote(), timeout=timeout_s))


class RayEventSource:
    """The collector's event stream as an :class:`~quantplan.agent.cluster.events.EventSource`."""

    def __init__(self, handle: ray.actor.ActorHandle | None = None) -> None:
        self.handle = handle or get_collector()

    def events_since(self, since: int, *, timeout_s: float = 0.0, limit: int = 500) -> EventBatch:
        answer = _json_answer(
            self.handle.events_since.remote(since, timeout_s, limit), timeout_s + 30
        )
        return EventBatch.model_validate_json(answer)


def connect_events(address: str = "auto") -> RayEventSource:
    """Attach to a running cluster and return its event stream (for the dashboard).

    Example::

        from quantplan.agent.cluster.collector_actor import connect_events
        from quantplan.agent.cluster.events import subscribe
        for event in subscribe(connect_events("auto")):
            ...
    """
    from quantplan.agent.cluster.local import attach

    attach(address)
    return RayEventSource()
