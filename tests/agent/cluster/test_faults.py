"""Faults on a real multi-node Ray cluster: lost nodes, a restarted collector, outages."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import pytest
from conftest import benchmark_report
from quantplan.agent.cluster.collector_actor import CollectorClient, RayEventSource
from quantplan.agent.cluster.events import JobEvent
from quantplan.agent.cluster.jobs import ProbeJob
from quantplan.agent.cluster.scheduler import run_job
from quantplan.catalog.db import open_catalog
from quantplan.catalog.reports import list_runs
from ray_fixtures import WORKER_TYPE, RayTestCluster

pytestmark = [pytest.mark.ray_cluster, pytest.mark.integration, pytest.mark.slow]


def wait_for_job_start(job_id: str, timeout_s: float = 60) -> str:
    """The node a job started on, read from the collector's event stream."""
    source = RayEventSource()
    deadline = time.monotonic() + timeout_s
    since = 0
    while time.monotonic() < deadline:
        batch = source.events_since(since, timeout_s=1.0)
        since = batch.next_seq
        for event in batch.events:
            if isinstance(event, JobEvent) and event.job_id == job_id and event.state == "started":
                assert event.node_id is not None
                return event.node_id
    raise AssertionError(f"job {job_id} never started")


def run_in_thread(function, *args, **kwargs):
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_job_reruns_on_another_matching_node_when_its_node_dies(ray_cluster: RayTestCluster):
    client = CollectorClient()
    job = ProbeJob(job_id=f"probe-{uuid.uuid4().hex[:8]}", seconds=20)
    thread, outcome = run_in_thread(
        run_job, job, instance_types={WORKER_TYPE}, collector=client, timeout_s=120
    )
    first_node = wait_for_job_start(job.job_id)
    ray_cluster.cluster.remove_node(ray_cluster.node_of(first_node), allow_graceful=False)
    ray_cluster.workers = [n for n in ray_cluster.workers if n.node_id != first_node]
    thread.join(180)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.status == "succeeded"
    assert result.node_id != first_node
    assert result.instance_type == WORKER_TYPE


def test_collector_restart_flushes_buffered_reports(ray_cluster: RayTestCluster) -> None:
    import ray

    client = CollectorClient()
    path = ray_cluster.database_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, timeout=0, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # the catalog is unavailable to the collector
    reports = [benchmark_report() for _ in range(25)]
    try:
        assert client.submit(reports[:15]).accepted == 15
        time.sleep(1)
        ray.kill(client.handle, no_restart=False)  # the collector dies with reports spooled
        # Submitted while it restarts: Ray retries the call on the new incarnation.
        assert client.submit(reports[15:]).accepted == 10
        stats = client.stats()
        assert stats.pending >= 10
    finally:
        blocker.rollback()
        blocker.close()
    deadline = time.monotonic() + 60
    while client.stats().pending and time.monotonic() < deadline:
        time.sleep(0.5)
    engine = open_catalog(ray_cluster.database_url)
    runs = [r["id"] for r in list_runs(engine, limit=10_000)]
    wanted = {r.run.run_id for r in reports}
    assert sorted(r for r in runs if r in wanted) == sorted(wanted)
