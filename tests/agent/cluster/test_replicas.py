"""A real llama.cpp replica managed by a node agent on a multi-node Ray cluster: started on a
node of the asked type, answering OpenAI-style chat, stopped cleanly, and not orphaned when its
agent's process dies."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from ray_fixtures import WORKER_TYPE, RayTestCluster

from quantplan.agent.cluster.collector_actor import CollectorClient
from quantplan.agent.cluster.jobs import ServeJob, StopJob
from quantplan.agent.cluster.scheduler import run_job

pytestmark = [
    pytest.mark.ray_cluster,
    pytest.mark.engine,
    pytest.mark.toolchain,
    pytest.mark.integration,
    pytest.mark.slow,
]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return status != "Z"


def wait_gone(pid: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def shipped_gguf():
    from quantplan.agent.model_source import default_gguf
    from quantplan.agent.toolchains import find_toolchain

    if find_toolchain("llama-cpp") is None:
        pytest.skip("the llama-cpp toolchain is not built (quantplan toolchain install llama-cpp)")
    return default_gguf()


def _serve_gguf(replica: str, gguf, collector=None):  # type: ignore[no-untyped-def]
    """Start a llama.cpp replica of ``gguf`` on a worker through its node agent."""
    job = ServeJob(
        job_id=f"serve-{replica}",
        replica_id=replica,
        engine="llama.cpp",
        artifact_path=str(gguf),
        threads=1,
        startup_timeout_s=120,
    )
    return run_job(job, instance_types={WORKER_TYPE}, collector=collector)


def test_llama_cpp_replica_lifecycle_on_a_node_agent(ray_cluster: RayTestCluster, shipped_gguf):
    client = CollectorClient()
    replica = f"r-{uuid.uuid4().hex[:6]}"
    started = _serve_gguf(replica, shipped_gguf, collector=client)
    assert started.status == "succeeded", started.detail
    base_url, pid = started.payload["base_url"], started.payload["pid"]
    assert base_url.startswith("http://127.0.0.1:")
    answer = httpx.post(
        base_url + "/v1/chat/completions",
        json={
            "model": started.payload["served_model"],
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16,
            "temperature": 0,
        },
        timeout=60,
    ).json()
    assert answer["choices"][0]["message"]["content"].strip()
    # Ray gives an actor that reserves no CPU OMP_NUM_THREADS=1; the agent must not pass that on
    # to its engines (a vLLM CPU replica ran its kernels on one thread so).
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environment if v.startswith(b"OMP_NUM_THREADS=")]
    stopped = run_job(
        StopJob(job_id=f"stop-{replica}", replica_id=replica),
        instance_types={WORKER_TYPE},
        prefer_node=started.node_id,
        collector=client,
    )
    assert stopped.payload == {"stopped": True}
    assert wait_gone(pid)


def test_a_restarted_agent_stops_the_server_its_old_process_left(
    ray_cluster: RayTestCluster, shipped_gguf
):
    import ray

    from quantplan.agent.cluster.node_agent import NAMESPACE, agent_name

    replica = f"r-{uuid.uuid4().hex[:6]}"
    started = _serve_gguf(replica, shipped_gguf)
    assert started.status == "succeeded", started.detail
    pid = started.payload["pid"]
    agent = ray.get_actor(agent_name(started.node_id), namespace=NAMESPACE)
    ray.kill(agent, no_restart=False)  # the agent's process dies; the server would be orphaned
    assert wait_gone(pid, timeout_s=60), "the restarted agent did not stop the orphaned server"
