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
    assert parse_node_spec("c7i.xlarge:2, c7i.large") == [("c7i.xlarge", 2), ("c7i.large", 1)]
    with pytest.raises(QuantplanError, match="cannot read node spec"):
        parse_node_spec("c7i.xlarge:zero")
    with pytest.raises(UnknownNameError) as unknown:
        cluster_up("c7i.xlarg:1", state_dir=Path("/nonexistent-never-created"))
    assert "c7i.xlarge" in (unknown.value.hint or "")


@pytest.mark.ray_cluster
@pytest.mark.integration
@pytest.mark.slow
def test_cluster_up_binds_loopback_only_requires_the_token_and_comes_down(tmp_path: Path):
    state_dir = tmp_path / "cluster"
    state = cluster_up("c7i.xlarge:1,c7i.large:1", state_dir=state_dir, head_cpus=2)
    try:
        assert state.address.startswith("127.0.0.1:")
        types = sorted(n.instance_type or "head" for n in state.nodes)
        assert types == ["c7i.large", "c7i.xlarge", "head"]
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
    finally:
        assert cluster_down(state_dir)
    assert load_state(state_dir) is None
    assert not any(psutil.pid_exists(p.pid) and p.status() != "zombie" for p in processes)
