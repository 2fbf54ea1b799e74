"""A GPU replica's GPUs, held from Ray for as long as the replica runs.

The engine server is a process of the node agent, which asks Ray for no GPUs itself. Each GPU
replica gets a lease instead: a small named actor on the agent's node that asks Ray for exactly
the replica's GPUs (``num_gpus``) of the plan's accelerator type (Ray's convention: a sliver of
``accelerator_type:<T>``). Ray picks free GPUs, sets the lease's ``CUDA_VISIBLE_DEVICES``, and
that is what the engine gets. Two replicas on one node therefore never share a GPU, and a
replica Ray cannot give GPUs to fails at once instead of sharing or waiting forever.
"""

from __future__ import annotations

import contextlib
import os

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from quantplan.agent.cluster.naming import ACCELERATOR_TYPE_PREFIX, NAMESPACE
from quantplan.errors import QuantplanError

LEASE_PREFIX = "quantplan-gpus-"
PLACE_TIMEOUT_S = 30.0
ACCELERATOR_TYPE_SHARE = 0.001
"""What a task asks of ``accelerator_type:<T>`` (Ray's own ``accelerator_type=`` option asks the
same): enough to require the type, never enough to exclude another replica."""


class GpuLeaseError(QuantplanError):
    """Ray could not give a replica its GPUs on its node."""

    kind = "unsupported_hardware"


@ray.remote(num_cpus=0, max_restarts=0)
class GpuLease:
    """Holds its GPUs while it lives; says which ones Ray gave it."""

    def visible_devices(self) -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def lease_name(replica_id: str) -> str:
    return LEASE_PREFIX + replica_id[:120]


def acquire_gpus(
    replica_id: str,
    node_id: str,
    gpus: int,
    accelerator_type: str | None,
    *,
    timeout_s: float = PLACE_TIMEOUT_S,
    detached: bool = True,
) -> tuple[str, ...]:
    """Lease ``gpus`` GPUs on ``node_id`` for ``replica_id`` (again: the same lease); returns
    their ``CUDA_VISIBLE_DEVICES`` entries.

    A replica's lease is detached: its engine outlives a restarted agent, which releases the
    lease by name. A job's lease (``detached=False``) belongs to the agent's worker process and
    dies with it, so a job cut short by a crash never keeps its GPUs."""
    # A GPU whose type Ray does not name (accelerator_type None) is leased by count alone.
    resources = (
        {ACCELERATOR_TYPE_PREFIX + accelerator_type: ACCELERATOR_TYPE_SHARE}
        if accelerator_type
        else {}
    )
    lease = GpuLease.options(  # type: ignore[attr-defined]
        name=lease_name(replica_id),
        namespace=NAMESPACE,
        lifetime="detached" if detached else None,
        get_if_exists=True,
        num_gpus=gpus,
        resources=resources,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote()
    answer = lease.visible_devices.remote()
    ready, _ = ray.wait([answer], timeout=timeout_s)
    if not ready:
        release_gpus(replica_id)
        what = f"{gpus} GPU(s)" + (f" of type {accelerator_type}" if accelerator_type else "")
        raise GpuLeaseError(
            f"Ray could not give {replica_id} {what} on node {node_id[:12]} within "
            f"{timeout_s:g} s: the node declares fewer, or other replicas hold them",
            hint="see `quantplan status` for the node's GPUs and what runs there",
        )
    devices = tuple(d for d in ray.get(answer).split(",") if d.strip())
    if len(devices) != gpus:
        release_gpus(replica_id)
        raise GpuLeaseError(
            f"Ray gave {replica_id} CUDA_VISIBLE_DEVICES={','.join(devices)!r}, not {gpus} GPU(s)",
            hint="RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES must not be set on GPU nodes",
        )
    return devices


def release_gpus(replica_id: str) -> None:
    """Give the replica's GPUs back to Ray (nothing to do when it holds none)."""
    with contextlib.suppress(ValueError):  # no such lease
        ray.kill(ray.get_actor(lease_name(replica_id), namespace=NAMESPACE))
