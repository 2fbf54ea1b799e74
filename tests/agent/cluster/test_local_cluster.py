"""`quantplan cluster up/down`: real Ray nodes on this machine, loopback only, token auth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from quantplan.agent.cluster.local import (
    cluster_down,
    cluster_environment,
    cluster_up,
    load_state,
    parse_node_spec,
)
from quantplan.errors import QuantplanError, UnknownNameError


def test_node_specs_are_read_and_checked() -> None:
    assert parse_node_spec("c7i.xlarge:2, c7i.large, c7i.xlarge@spot:3") == [
        ("c7i.xlarge", 2, False),
        ("c7i.large", 1, False),
        ("c7i.xlarge", 3, True),
    ]
    for bad in ("c7i.xlarge:zero", "c7i.xlarge@preemptible", "@spot:2", "c7i.xlarge@"):
        with pytest.raises(QuantplanError, match="cannot read node spec") as caught:
            parse_node_spec(bad)
        assert "INSTANCE[@spot][:COUNT]" in (caught.value.hint or "")
    with pytest.raises(UnknownNameError) as unknown:
        cluster_up("c7i.xlarg:1", state_dir=Path("/nonexistent-never-created"))
    assert "c7i.xlarge" in (unknown.value.hint or "")


def test_spot_nodes_are_named_and_labelled_apart_from_on_demand_ones() -> None:
    from quantplan.agent.cluster.local import build_request
    from quantplan.agent.cluster.local_host import worker_labels

    request = build_request("c7i.xlarge,c7i.xlarge@spot:2", database_url="sqlite://")
    names = [(w.name, w.spot) for w in request.workers]
    assert names == [
        ("c7i.xlarge-1", False),
        ("c7i.xlarge-spot-1", True),
        ("c7i.xlarge-spot-2", True),
    ]
    assert [worker_labels(w)["ray.io/market-type"] for w in request.workers] == [
        "on-demand",
        "spot",
        "spot",
    ]


@pytest.mark.ray_cluster
@pytest.mark.integration
@pytest.mark.slow
def test_cluster_up_binds_loopback_only_requires_the_token_and_comes_down(tmp_path: Path):
    state_dir = tmp_path / "cluster"
    state = cluster_up("c7i.xlarge:1,c7i.large@spot:1", state_dir=state_dir, head_cpus=2)
    try:
        assert state.address.startswith("127.0.0.1:")
        types = sorted((n.instance_type or "head", n.spot) for n in state.nodes)
        assert types == [("c7i.large", True), ("c7i.xlarge", False), ("head", False)]
        with pytest.raises(QuantplanError, match="already running"):
            cluster_up("c7i.xlarge:1", state_dir=state_dir)

        processes = [psutil.Process(state.host_pid)]
        processes += processes[0].children(recursive=True)
        pids = {p.pid for p in processes}
        listening = [
            c.laddr.ip
            for c in psutil.net_connections(kind="tcp")
            if c.pid in pids and c.status == psutil.CONN_LISTEN
        ]
        assert listening, "the cluster listens nowhere?"
        assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening

        probe = (
            "import ray, sys\n"
            f"ray.init(address='{state.address}', log_to_driver=False)\n"
            "print(len(ray.nodes()))\n"
        )
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        with_token = {**base_env, **cluster_environment(state_dir)}
        ok = subprocess.run(
            [sys.executable, "-c", probe],
            env=with_token,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "3", ok.stderr[-500:]
        no_token = {**with_token}
        no_token.pop("RAY_AUTH_TOKEN_PATH")
        no_token["RAY_AUTH_MODE"] = "disabled"
        refused = subprocess.run(
            [sys.executable, "-c", probe],
            env=no_token,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode != 0

        # `status` says which cluster "auto" joined: the one `cluster up` recorded.
        status = subprocess.run(
            [sys.executable, "-m", "quantplan", "status"],
            env={**base_env, "QUANTPLAN_CLUSTER_DIR": str(state_dir)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr[-500:]
        assert f"cluster: the local cluster (`quantplan cluster up`) at {state.address}" in (
            status.stdout
        )
        assert "c7i.large (spot)" in status.stdout  # Ray's market-type label, read back
        # With no cluster recorded, "auto" does not join this one (Ray's process scan finds
        # it): it says there is nothing to attach to.
        unrecorded = subprocess.run(
            [sys.executable, "-m", "quantplan", "status"],
            env={
                **base_env,
                "QUANTPLAN_CLUSTER_DIR": str(tmp_path / "no-cluster"),
                "RAY_TMPDIR": str(tmp_path / "no-ray"),  # no `ray start` record either
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert unrecorded.returncode == 2, unrecorded.stdout + unrecorded.stderr[-500:]
        assert "Traceback" not in unrecorded.stderr
        first = unrecorded.stderr.strip().splitlines()[0]
        assert "no cluster to attach to: no local cluster is running" in first, first
    finally:
        assert cluster_down(state_dir)
    assert load_state(state_dir) is None
    assert not any(psutil.pid_exists(p.pid) and p.status() != "zombie" for p in processes)


def test_cluster_down_stops_the_engines_its_agents_noted(tmp_path: Path, monkeypatch) -> None:
    """Engines run in process groups of their own, so stopping the nodes leaves them running;
    `cluster down` stops the groups its nodes' agents noted, and only those."""
    import json
    import time

    from quantplan.agent.cluster.local_host import ClusterState, NodeRecord
    from quantplan.agent.cluster.replicas import replicas_dir

    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(tmp_path / "data"))

    def session(*command: str) -> subprocess.Popen:
        return subprocess.Popen(list(command), start_new_session=True)

    host = session(sys.executable, "-c", "import time; time.sleep(60)")
    # An engine with a child (as vLLM's engine core is): the whole group must go.
    engine = session("sh", "-c", "sleep 60 & sleep 60")
    elsewhere = session("sleep", "60")  # noted by another cluster's node: left alone
    state_dir = tmp_path / "cluster"
    state_dir.mkdir()
    (state_dir / "host.pid").write_text(str(host.pid))
    nodes = (NodeRecord(name="w1", node_id="node-1", instance_type="c7i.xlarge", num_cpus=4),)
    state = ClusterState(address="127.0.0.1:1", host_pid=host.pid, nodes=nodes, temp_dir="")
    (state_dir / "state.json").write_text(state.model_dump_json())
    replicas_dir().mkdir(parents=True)
    for replica, process, node in (("r1", engine, "node-1"), ("r2", elsewhere, "node-9")):
        note = {"pid": process.pid, "node_id": node, "state": "starting"}
        (replicas_dir() / f"{replica}.json").write_text(json.dumps(note))
    time.sleep(0.2)  # the shell has started its child
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == engine.pid]
    assert len(group) == 3  # sh and its two sleeps
    try:
        assert cluster_down(state_dir, timeout_s=10)
        engine.wait(10)
        host.wait(10)
        assert not [p for p in group if p.is_running() and p.status() != "zombie"]
        assert elsewhere.poll() is None and (replicas_dir() / "r2.json").exists()
    finally:
        for process in (host, engine, elsewhere):
            process.kill()
            process.wait(10)


def test_stopping_a_group_returns_once_its_members_have_exited(monkeypatch) -> None:
    """A killed process exits only when the scheduler next runs it, so on a loaded host a
    group's members outlive the SIGKILL for a moment (cluster down once returned with both of
    an engine's children still runnable). A SIGKILL delivered 0.5 s late stands in for that
    delay here: the stop must still return only once the members are gone."""
    import contextlib
    import signal
    import threading
    import time

    from quantplan.agent.cluster.replicas import stop_process_group

    # Every process of the group ignores SIGTERM, so only the (late) SIGKILL stops them.
    engine = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & sleep 60"], start_new_session=True
    )
    real_killpg = os.killpg

    def deliver(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            real_killpg(pgid, sig)

    def late_killpg(pgid: int, sig: int) -> None:
        if sig == signal.SIGKILL:
            threading.Timer(0.5, deliver, (pgid, sig)).start()
        else:
            real_killpg(pgid, sig)

    try:
        time.sleep(0.2)  # the shell has started its children
        group = [p for p in psutil.process_iter() if _pgid(p.pid) == engine.pid]
        assert len(group) == 3  # sh and its two sleeps
        monkeypatch.setattr(os, "killpg", late_killpg)
        stop_process_group(engine.pid, grace_s=0.3)
        assert not [p for p in group if p.is_running() and p.status() != "zombie"]
    finally:
        deliver(engine.pid, signal.SIGKILL)
        engine.wait(10)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
