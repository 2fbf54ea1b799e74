"""Running a job on a matching node, and again on another one when its node is lost.

Ray does not move an actor pinned to a dead node, and the node agents run with
``max_task_retries=0`` on purpose: the driver, which knows which nodes match a job, picks the
next one. The job keeps its id (= run id) on every attempt, so the catalog gets one row however
many attempts it took, and quantize jobs commit their artifact atomically, so an attempt killed
halfway leaves no half artifact.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable

import ray
from ray.exceptions import (
    ActorUnavailableError,
    ActorUnschedulableError,
    GetTimeoutError,
    NodeDiedError,
    RayActorError,
)

from quantplan.agent.cluster.collector_actor import CollectorClient
from quantplan.agent.cluster.events import JobEvent, NodeEvent
from quantplan.agent.cluster.jobs import Job, JobResult
from quantplan.agent.cluster.node_agent import AgentRef, start_node_agents
from quantplan.errors import QuantplanError

LOG = logging.getLogger(__name__)
NODE_LOST_ERRORS = (RayActorError, ActorUnavailableError, ActorUnschedulableError, NodeDiedError)
"""What ``ray.get`` on an agent raises when its node is gone. ActorUnschedulableError: the agent
(pinned to its node, restartable) is being restarted on a node that no longer exists."""
_round_robin = itertools.count()


class NoMatchingNodeError(QuantplanError):
    """No alive node of the wanted instance types is left to run a job."""


class NodeLostError(NoMatchingNodeError):
    """A job lost its node(s) and no other matching node is left; ``lost_nodes`` in order."""

    def __init__(self, message: str, lost_nodes: list[str], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.lost_nodes = lost_nodes


def alive_agents(instance_types: Iterable[str] | None = None) -> list[AgentRef]:
    """Agents on alive nodes, of the given instance types (all if None)."""
    wanted = set(instance_types) if instance_types is not None else None
    alive = {node["NodeID"] for node in ray.nodes() if node.get("Alive")}
    return [
        agent
        for agent in start_node_agents()
        if agent.node_id in alive and (wanted is None or agent.instance_type in wanted)
    ]


def _publish(client: CollectorClient | None, event: object) -> None:
    if client is not None:
        client.publish(event)  # type: ignore[arg-type]


def run_job(
    job: Job,
    *,
    instance_types: Iterable[str] | None = None,
    prefer_node: str | None = None,
    exclude_nodes: Iterable[str] = (),
    collector: CollectorClient | None = None,
    max_attempts: int = 3,
    timeout_s: float = 1800.0,
) -> JobResult:
    """Run ``job`` on an alive matching node; rerun it on another when the node is lost.

    A job that *fails* (bad input, engine error) is not rerun: the failure is the answer. Only
    losing the node (or the agent process) moves the job, never onto ``exclude_nodes`` (nodes
    that other work of the caller holds).
    """
    types = set(instance_types) if instance_types is not None else None
    excluded = set(exclude_nodes)
    lost: list[str] = []
    for attempt in range(1, max_attempts + 1):
        candidates = [
            a for a in alive_agents(types) if a.node_id not in lost and a.node_id not in excluded
        ]
        if not candidates:
            wanted = ", ".join(sorted(types)) if types else "any type"
            if lost:
                raise NodeLostError(
                    f"job {job.job_id}: lost node(s) {', '.join(n[:12] for n in lost)}; no "
                    f"other free node of {wanted} is left to run it",
                    lost,
                    hint="add nodes of that type (`quantplan cluster up`) or change the plan",
                )
            raise NoMatchingNodeError(
                f"job {job.job_id}: no free alive node of {wanted} is left to run it",
                hint="add nodes of that type (`quantplan cluster up`) or change the plan",
            )
        preferred = [a for a in candidates if a.node_id == prefer_node]
        agent = preferred[0] if preferred else candidates[next(_round_robin) % len(candidates)]
        try:
            answer = ray.get(agent.handle.run.remote(job.model_dump_json()), timeout=timeout_s)
            result = JobResult.model_validate_json(answer)
            if not result.payload.get("node_lost"):
                return result
            # The agent outlived its raylet long enough to answer: the node is lost all the same.
            reason = result.detail
        except NODE_LOST_ERRORS as error:
            reason = type(error).__name__
        except GetTimeoutError:
            raise QuantplanError(
                f"job {job.job_id} ({job.kind}) did not finish within {timeout_s:g} s "
                f"on {agent.instance_type} node {agent.node_id[:12]}",
                hint="the node may be overloaded; see `quantplan status`",
            ) from None
        # The node is lost: note it, then try the next candidate.
        lost.append(agent.node_id)
        LOG.warning("job %s lost its node %s: %s", job.job_id, agent.node_id[:12], reason)
        _publish(
            collector,
            NodeEvent(
                node_id=agent.node_id,
                instance_type=agent.instance_type,
                state="lost",
                detail=f"lost while running job {job.job_id}",
            ),
        )
        _publish(
            collector,
            JobEvent(
                job_id=job.job_id,
                kind="serve" if job.kind in ("serve", "stop") else job.kind,
                node_id=agent.node_id,
                instance_type=agent.instance_type,
                state="retrying",
                attempt=attempt,
                detail=reason[:300],
            ),
        )
    raise NodeLostError(
        f"job {job.job_id}: lost its node {max_attempts} times; giving up",
        lost,
        hint="check the cluster's health with `quantplan status`",
    )
