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
    ray_cluster.kill_and_replace(first_node)
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


def test_plan_that_cannot_fit_is_refused_before_anything_starts(ray_cluster: RayTestCluster):
    from plans import default_model_plan
    from quantplan.agent.cluster.apply import ApplyOptions, apply_plan
    from quantplan.agent.cluster.events import PlanEvent
    from quantplan.agent.cluster.validation import PlanRefusedError

    plan = default_model_plan()
    too_big = plan.model_copy(update={"fleet": (plan.fleet[0].model_copy(update={"replicas": 5}),)})
    since = RayEventSource().events_since(0).next_seq
    started = time.monotonic()
    with pytest.raises(PlanRefusedError) as refused:
        apply_plan(
            too_big,
            options=ApplyOptions(name="too-big", database_url=ray_cluster.database_url),
        )
    assert time.monotonic() - started < 60  # refused, not left pending
    assert any(
        "5 node(s) of c7i.xlarge; the cluster has 2 alive" in r for r in refused.value.reasons
    )
    events = RayEventSource().events_since(since, timeout_s=2).events
    refusals = [e for e in events if isinstance(e, PlanEvent) and e.state == "refused"]
    assert refusals and refusals[0].plan_id == "too-big"
    assert not [e for e in events if isinstance(e, PlanEvent) and e.state == "deploying"]
