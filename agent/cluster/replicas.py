"""Engine servers noted by node agents, so a crashed agent's servers are not left running.

Each agent writes ``<replica_id>.json`` (pid, node, port) when it starts a server and removes it
when it stops one. A restarted agent, or ``quantplan destroy``, stops what is still noted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from quantplan.agent.cluster.jobs import JobResult, StopJob
from quantplan.agent.cluster.naming import NAMESPACE, agent_name
from quantplan.paths import data_dir

if TYPE_CHECKING:
    from ray import ObjectRef

    from quantplan.agent.cluster.deployment_state import DeploymentState, ReplicaRecord


def replicas_dir(data: Path | None = None) -> Path:
    """Where agents note their servers: under ``data``, else the data directory."""
    return (data or data_dir()) / "replicas"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has stopped: only its parent's wait is missing (the agent that started it may
    # still hold it). Waiting the grace period on it would only delay the SIGKILL of the rest.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def _live_group_members(pgid: int) -> list[int]:
    """The pids in process group ``pgid`` that have not exited (zombies have)."""
    import psutil

    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
    return members


def stop_process_group(pid: int, grace_s: float = 10.0, exit_wait_s: float = 5.0) -> None:
    """SIGTERM a server's process group (servers run in their own), SIGKILL after ``grace_s``,
    then wait up to ``exit_wait_s`` until no process of the group is left.

    The leader's exit says nothing about the rest of the group (vLLM's engine core, a shell's
    children), and a killed process only exits once the scheduler runs it: on a loaded host the
    members can still be alive, runnable, for a moment after the signal. Returning only when they
    are gone means "stopped" holds for whoever looks next (ports and memory released)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + exit_wait_s
    while _live_group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def note_server(replica_id: str, note: dict[str, object]) -> Path:
    """Note (or update) the engine server of ``replica_id``: written atomically, so a reader
    never sees half a note."""
    directory = replicas_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{replica_id}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(note))
    temporary.replace(path)
    return path


def stop_noted_servers(
    node_id: str | None = None,
    *,
    node_ids: set[str] | None = None,
    replica_ids: set[str] | None = None,
    data: Path | None = None,
) -> list[str]:
    """Stop every noted server (only those of ``node_id``, of ``node_ids`` or of
    ``replica_ids``, when given): their whole process groups. Returns the replica ids.
    ``data`` is the data directory the agents wrote to, if not this process's."""
    stopped: list[str] = []
    directory = replicas_dir(data)
    if not directory.is_dir():
        return stopped
    for note_path in sorted(directory.glob("*.json")):
        if replica_ids is not None and note_path.stem not in replica_ids:
            continue
        try:
            note = json.loads(note_path.read_text())
            pid = int(note.get("pid", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        if node_id is not None and note.get("node_id") != node_id:
            continue
        if node_ids is not None and note.get("node_id") not in node_ids:
            continue
        if pid > 0:
            stop_process_group(pid)
        note_path.unlink(missing_ok=True)
        stopped.append(note_path.stem)
    return stopped


def healthy_replicas(state: DeploymentState | None) -> set[str]:
    import httpx

    healthy: set[str] = set()
    if state is None:
        return healthy
    with httpx.Client(timeout=3.0) as client:
        for replica_id, record in state.replicas.items():
            try:
                if client.get(record.base_url + "/v1/models").status_code == 200:
                    healthy.add(replica_id)
            except httpx.HTTPError:
                continue
    return healthy


def stop_replica(record: ReplicaRecord) -> None:
    """Stop a replica through its node agent; if the agent is gone, stop the noted process
    group (the agent notes it at launch), else the pid the replica answered with."""
    import ray  # here, not above: apply's validation must not import Ray

    job = StopJob(job_id=f"stop-{record.spec.replica_id}", replica_id=record.spec.replica_id)
    try:
        agent = ray.get_actor(agent_name(record.node_id), namespace=NAMESPACE)
        # The node agent answers a JobResult as JSON; Ray cannot type an undecorated method.
        reply: ObjectRef[str] = agent.run.remote(job.model_dump_json())
        answer = JobResult.model_validate_json(ray.get(reply, timeout=60))
        if answer.payload.get("stopped"):
            return
    except Exception:  # the agent or its node is gone: fall back to the noted pid
        pass
    if not stop_noted_servers(replica_ids={record.spec.replica_id}):
        stop_process_group(record.pid)
    if record.spec.accelerators:
        from quantplan.agent.cluster.gpu_lease import release_gpus  # imports Ray, as above

        release_gpus(record.spec.replica_id)  # the agent that held it is gone
