"""Faults on a real multi-node Ray cluster: lost nodes, a restarted collector, outages."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import benchmark_report
from ray_fixtures import WORKER_TYPE, RayTestCluster

from quantplan.agent.cluster.collector_actor import CollectorClient, RayEventSource
from quantplan.agent.cluster.events import JobEvent
from quantplan.agent.cluster.jobs import ProbeJob
from quantplan.agent.cluster.scheduler import run_job
from quantplan.catalog.db import open_catalog
from quantplan.catalog.reports import list_runs

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


def test_dry_run_moves_nothing(ray_cluster: RayTestCluster, monkeypatch) -> None:
    """First in the module, while no node agent exists yet: a dry run that accepts the plan
    starts no agent and publishes no event (the fixture's collector sees nothing)."""
    import ray
    from plans import llama_cpp_plan

    from quantplan.agent.cluster import apply as apply_module
    from quantplan.agent.cluster.node_agent import NAMESPACE, agent_name

    # The side effects are under test, not the toolchains: pretend they are built.
    monkeypatch.setattr(
        apply_module, "built_toolchains", lambda: {"llama-cpp", "llama-server", "vllm-cpu"}
    )
    since = RayEventSource().events_since(0).next_seq
    outcome = apply_module.apply_plan(
        llama_cpp_plan(),
        options=apply_module.ApplyOptions(
            name="dry", database_url=ray_cluster.database_url, dry_run=True
        ),
    )
    assert outcome.status == "dry_run" and outcome.diff[0].startswith("+ dry-gguf-f16")
    assert not RayEventSource().events_since(since, timeout_s=1).events
    for node in ray_cluster.workers:
        with pytest.raises(ValueError):
            ray.get_actor(agent_name(node.node_id), namespace=NAMESPACE)


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
    from plans import llama_cpp_plan

    from quantplan.agent.cluster.apply import ApplyOptions, apply_plan
    from quantplan.agent.cluster.events import PlanEvent
    from quantplan.agent.cluster.validation import PlanRefusedError

    too_big = llama_cpp_plan(replicas=5)
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


@pytest.fixture
def stub_server(tmp_path):
    """The serving stub of the serve tests: a real HTTP server process streaming tokens."""
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).parents[1] / "serving_stub.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--token-delay", "0.02"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base_url
    process.terminate()
    process.wait(10)


def test_benchmark_node_killed_mid_run_reruns_and_writes_one_row(
    ray_cluster: RayTestCluster, stub_server: str
) -> None:
    from quantplan.agent.cluster.jobs import BenchmarkJob
    from quantplan.catalog.snapshot import load_snapshot

    client = CollectorClient()
    job = BenchmarkJob(
        job_id=f"bench-{uuid.uuid4().hex[:8]}",
        base_url=stub_server,
        served_model="stub",
        model="SmolLM2-135M-Instruct",
        scheme="bf16",
        engine="vllm",
        hardware="Xeon-SapphireRapids",
        usd_per_hour=0.1785,
        concurrencies=(1,),
        input_tokens=16,
        output_tokens=32,
        num_requests=20,  # about 13 s at 20 ms per token: long enough to be cut
    )
    thread, outcome = run_in_thread(
        run_job, job, instance_types={WORKER_TYPE}, collector=client, timeout_s=300
    )
    first_node = wait_for_job_start(job.job_id)
    time.sleep(3)  # mid-run: requests are streaming
    ray_cluster.kill_and_replace(first_node)
    thread.join(300)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.status == "succeeded", result.detail
    assert result.node_id != first_node
    assert client.flush()
    engine = open_catalog(ray_cluster.database_url)
    runs = [r for r in list_runs(engine, limit=10_000) if r["id"] == job.job_id]
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    rows = [p for p in load_snapshot(engine).profiles if p.run_id == job.job_id]
    assert len(rows) == 1
    assert rows[0].details["cluster_node"] == result.node_id  # measured by the second attempt


@pytest.mark.toolchain
def test_quantize_node_killed_mid_run_leaves_no_half_artifact(
    ray_cluster: RayTestCluster, tmp_path
) -> None:
    from quantplan.agent.artifacts import ArtifactStore, describe_files
    from quantplan.agent.cluster.jobs import QuantizeJob
    from quantplan.agent.toolchains import find_toolchain

    if find_toolchain("llama-cpp") is None:
        pytest.skip("the llama-cpp toolchain is not built (quantplan toolchain install llama-cpp)")
    store_url = str(tmp_path / "artifacts")
    client = CollectorClient()
    job = QuantizeJob(
        job_id=f"quantize-{uuid.uuid4().hex[:8]}",
        method="gguf",
        options={"type": "Q8_0", "measure_layer_error": False},
        store_url=store_url,
    )
    thread, outcome = run_in_thread(
        run_job, job, instance_types={WORKER_TYPE}, collector=client, timeout_s=900
    )
    first_node = wait_for_job_start(job.job_id)
    time.sleep(4)  # inside the toolchain step (conversion to F16, then quantization)
    ray_cluster.kill_and_replace(first_node)
    thread.join(900)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.status == "succeeded", result.detail
    assert result.node_id != first_node
    store = ArtifactStore(store_url)
    manifests = store.list()
    schemes = [m.scheme for m in manifests]
    # One Q8_0 artifact (the F16 intermediate is kept as its own shared artifact), each whole.
    assert schemes.count("gguf-q8_0") == 1 and len(schemes) == len(set(schemes))
    for manifest in manifests:
        files, _ = describe_files(store.local_dir(manifest))
        on_disk = {f.path: f.sha256 for f in files if f.path != "manifest.json"}
        assert on_disk == {f.path: f.sha256 for f in manifest.files}
    # Every other entry in the store is a hidden staging directory, never a published one.
    published = {p for p in (tmp_path / "artifacts").iterdir() if not p.name.startswith(".")}
    assert published == {store.local_dir(m) for m in manifests}
    assert client.flush()
    runs = [r for r in list_runs(open_catalog(ray_cluster.database_url)) if r["id"] == job.job_id]
    assert len(runs) == 1


def test_node_agents_report_hardware_placed_by_instance_type_and_restart(
    ray_cluster: RayTestCluster,
) -> None:
    import ray

    from quantplan.agent.cluster.events import HardwareFacts, NodeEvent
    from quantplan.agent.cluster.node_agent import start_node_agents

    agents = start_node_agents()
    # The fixture's own list of live workers: a node an earlier test killed can still read
    # "Alive" in ray.nodes() until Ray's health check notices, and its agent cannot answer.
    workers = {node.node_id for node in ray_cluster.workers}
    assert {a.node_id for a in agents} == workers  # one agent per worker node, none on the head
    assert start_node_agents()[0].handle._actor_id == agents[0].handle._actor_id  # idempotent
    facts = HardwareFacts.model_validate_json(ray.get(agents[0].handle.hardware.remote()))
    assert facts.node_id == agents[0].node_id and facts.instance_type == WORKER_TYPE
    assert facts.logical_cpus == 4 and facts.memory_gb > 0 and facts.cpu_model

    since = RayEventSource().events_since(0).next_seq
    ray.kill(agents[0].handle, no_restart=False)  # the agent's process dies; its node does not
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            assert ray.get(agents[0].handle.ping.remote(), timeout=10) == agents[0].node_id
            break
        except ray.exceptions.RayActorError:
            time.sleep(0.5)
    events = RayEventSource().events_since(since, timeout_s=5).events
    restarted = [e for e in events if isinstance(e, NodeEvent) and e.state == "restarted"]
    assert restarted and restarted[0].node_id == agents[0].node_id


def _engines_serving(directory: Path) -> list[psutil.Process]:
    """Live processes whose command line names a file under ``directory``: the engines serving
    this test's artifacts, wherever they run."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(
            str(directory) in part for part in cmdline
        ):
            found.append(process)
    return found


def _note_of_a_starting_engine(
    prefix: str, timeout_s: float, apply_thread: threading.Thread, outcome: dict[str, object]
) -> dict[str, object]:
    """The first replica note of a launched engine still waiting for its health check."""
    from quantplan.agent.cluster.replicas import replicas_dir

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert apply_thread.is_alive(), f"apply ended before an engine launched: {outcome}"
        for path in replicas_dir().glob(f"{prefix}*.json"):
            with contextlib.suppress(OSError, ValueError):
                note = json.loads(path.read_text())
                if note.get("state") == "starting":
                    return {**note, "replica_id": path.stem}
        time.sleep(0.01)
    raise AssertionError(f"no engine was launched within {timeout_s:g} s")


@pytest.mark.toolchain
@pytest.mark.engine
def test_node_lost_while_apply_starts_replicas_is_recorded_and_cleaned_up(
    ray_cluster: RayTestCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of a worker's raylet while its llama.cpp replica loads: apply says which replica
    and node in one line, records a failed serve run, status shows both replicas (one healthy,
    one failed), and destroy then the cluster-down sweep leave no engine of this test running
    -- the lost node's engine, orphaned in its own process group, included."""
    from plans import llama_cpp_plan

    from quantplan.agent.cluster.apply import ApplyOptions, apply_plan
    from quantplan.agent.cluster.fleet_ops import destroy, fleet_status
    from quantplan.agent.cluster.replicas import stop_noted_servers
    from quantplan.agent.cluster.validation import built_toolchains
    from quantplan.errors import QuantplanError

    if not {"llama-cpp", "llama-server"} <= built_toolchains():
        pytest.skip("llama-server is not built (quantplan toolchain install llama-cpp)")
    # One data directory for this driver and the agents, as for the CLI on a `cluster up`
    # cluster: destroy finds the lost node's engine through the note its agent wrote.
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(ray_cluster.data_dir))
    artifacts = tmp_path / "artifacts"
    options = ApplyOptions(
        name="node-loss",
        database_url=ray_cluster.database_url,
        store_url=str(artifacts),
        benchmark=False,
        startup_timeout_s=120,
    )
    started = time.monotonic()
    thread, outcome = run_in_thread(apply_plan, llama_cpp_plan(replicas=2), options=options)
    lost_node = None
    try:
        victim = _note_of_a_starting_engine("node-loss", 300, thread, outcome)
        lost_node = str(victim["node_id"])
        ray_cluster.kill_raylet(lost_node)
        killed = time.monotonic()
        thread.join(240)
        assert not thread.is_alive(), "apply did not return after losing a node"
        print(  # stage times, for when this test gets slow
            f"engine launched {killed - started:.1f} s after apply began; apply returned "
            f"{time.monotonic() - killed:.1f} s after the kill"
        )
        error = outcome.get("error")
        assert isinstance(error, QuantplanError), outcome
        assert "\n" not in error.message
        assert error.message.startswith("1 of 2 replica(s) did not start: "), error.message
        assert f"{victim['replica_id']}: node {lost_node[:12]} (c7i.xlarge) was lost" in (
            error.message
        )

        status = [r for r in fleet_status().replicas if r.deployment == "node-loss"]
        assert sorted(r.state for r in status) == ["failed", "healthy"]
        failed = next(r for r in status if r.state == "failed")
        assert failed.replica_id == victim["replica_id"] and failed.node_id == lost_node
        assert "was lost while it started" in failed.detail

        assert CollectorClient().flush()
        runs = list_runs(open_catalog(ray_cluster.database_url), status="failed")
        serve = [r for r in runs if r["kind"] == "serve" and victim["replica_id"] in r["id"]]
        assert len(serve) == 1 and serve[0]["error_kind"] == "interrupted"

        healthy = next(r for r in status if r.state == "healthy")
        assert httpx.get(healthy.endpoint + "/health", timeout=5).status_code == 200
        # The lost node's engine is still running when its worker died before seeing it
        # healthy (orphaned; destroy finds it through its note), stopped by its agent when the
        # agent saw it healthy first: both end below with nothing left.
        orphaned = len(_engines_serving(artifacts)) == 2
        print("the lost node's engine was", "orphaned" if orphaned else "stopped by its agent")
        assert len(_engines_serving(artifacts)) in (1, 2)
        left = [f"{failed.replica_id} (left by a failed start)"] if orphaned else []
        assert sorted(destroy("node-loss")) == sorted([healthy.replica_id, *left])
        # What `cluster down` sweeps after its nodes stop: nothing of this test is left.
        assert stop_noted_servers(node_ids={n.node_id for n in ray_cluster.workers}) == []
        deadline = time.monotonic() + 15
        while _engines_serving(artifacts) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _engines_serving(artifacts) == []
    finally:
        thread.join(240)  # an apply still starting engines would start them after the sweep
        if lost_node is not None:
            ray_cluster.kill_and_replace(lost_node)  # later tests get two live workers again
        for process in _engines_serving(artifacts):  # never leave an engine behind
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
