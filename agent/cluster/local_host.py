"""The process that hosts a local multi-node Ray cluster (``quantplan cluster up``).

Run as ``python -m quantplan.agent.cluster.local_host STATE_DIR``. It reads the wanted nodes
from ``STATE_DIR/request.json``, starts a Ray head and one Ray node per worker -- each a real
raylet with its own worker processes, all bound to 127.0.0.1 -- writes ``STATE_DIR/state.json``
when every node has joined, and stops them all on SIGTERM.

Why not ``ray start`` per node: Ray 2.60's ``ray start`` rewrites a 127.0.0.1 node address to the
host's routable address for worker nodes (``services.resolve_ip_for_localhost``), and a node
started on any other address binds its gRPC servers to every interface. Starting the nodes
through ``ray.cluster_utils.Cluster`` (the same ``ray._private.node.Node`` that ``ray start``
uses) keeps every node on the loopback interface.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from ray._private.node import Node

LOG = logging.getLogger("quantplan.local_host")
HEAD_RESOURCE = "quantplan:head"
NODE_RESOURCE = "quantplan:node"


def instance_resource(instance_type: str) -> str:
    """The custom resource naming a node's catalog instance type, e.g. instance:c7i.xlarge."""
    return f"instance:{instance_type}"


class WorkerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Node name, e.g. c7i.xlarge-1")
    instance_type: str
    num_cpus: int = Field(ge=1, description="Logical CPUs declared to Ray")
    fake_gpus: int = Field(
        default=0, ge=0, description="Logical GPUs declared to Ray (no device behind them)"
    )
    accelerator_type: str | None = Field(
        default=None, description="Ray accelerator type of the fake GPUs, e.g. L4"
    )
    spot: bool = Field(default=False, description="Stands for spot capacity (TYPE@spot)")


def worker_labels(worker: WorkerRequest) -> dict[str, str]:
    """Ray's market-type label, as a cloud node group sets it: spot or on-demand."""
    from quantplan.agent.cluster.naming import MARKET_LABEL, SPOT

    return {MARKET_LABEL: SPOT if worker.spot else "on-demand"}


class ClusterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    head_cpus: int = Field(default=4, ge=1)
    workers: tuple[WorkerRequest, ...]
    object_store_mb: int = Field(default=150, ge=75)


class NodeRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    node_id: str
    instance_type: str | None = Field(description="None for the head")
    num_cpus: int
    raylet_pid: int | None = None
    fake_gpus: int = Field(default=0, ge=0, description="Logical GPUs only: no device exists")
    accelerator_type: str | None = None
    spot: bool = False


class ClusterState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="GCS address to pass to ray.init")
    host_pid: int = Field(description="This process: SIGTERM it to stop the cluster")
    nodes: tuple[NodeRecord, ...]
    temp_dir: str


def worker_resources(worker: WorkerRequest) -> dict[str, float]:
    """A worker's custom resources: its instance type, and for fake GPUs the accelerator type
    (Ray's convention) and the marker that says they are fake. ``GPU`` itself is num_gpus."""
    from quantplan.agent.cluster.naming import FAKE_GPU_RESOURCE
    from quantplan.agent.toolchains.gpu import fake_inventory, ray_resources

    resources = {instance_resource(worker.instance_type): 1.0, NODE_RESOURCE: 1.0}
    if worker.fake_gpus and worker.accelerator_type:
        declared = ray_resources(fake_inventory(worker.accelerator_type, worker.fake_gpus))
        declared.pop("GPU")
        resources |= declared | {FAKE_GPU_RESOURCE: float(worker.fake_gpus)}
    return resources


def _raylet_pid(node: object) -> int | None:
    processes = getattr(node, "all_processes", {}) or {}
    for kind, infos in processes.items():
        if "raylet" in str(kind).lower() and infos:
            return int(infos[0].process.pid)
    return None


def main(state_dir: Path) -> None:
    from ray.cluster_utils import Cluster

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    request = ClusterRequest.model_validate_json((state_dir / "request.json").read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    object_store_bytes = request.object_store_mb * 1024 * 1024
    common = {"object_store_memory": object_store_bytes, "num_gpus": 0}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **common,
            "num_cpus": request.head_cpus,
            "resources": {HEAD_RESOURCE: 1},
            "include_dashboard": False,
            "node_ip_address": "127.0.0.1",
        },
    )
    # Started by Cluster(initialize_head=True); Ray declares the attribute by its first value, None.
    head_node = cast("Node", cluster.head_node)
    try:
        nodes = [
            NodeRecord(
                name="head",
                node_id=head_node.node_id,
                instance_type=None,
                num_cpus=request.head_cpus,
                raylet_pid=_raylet_pid(head_node),
            )
        ]
        for worker in request.workers:
            node = cluster.add_node(
                object_store_memory=object_store_bytes,
                num_gpus=worker.fake_gpus,
                num_cpus=worker.num_cpus,
                resources=worker_resources(worker),
                labels=worker_labels(worker),
                node_ip_address="127.0.0.1",
                node_name=worker.name,
            )
            nodes.append(
                NodeRecord(
                    name=worker.name,
                    node_id=node.node_id,
                    instance_type=worker.instance_type,
                    num_cpus=worker.num_cpus,
                    raylet_pid=_raylet_pid(node),
                    fake_gpus=worker.fake_gpus,
                    accelerator_type=worker.accelerator_type,
                    spot=worker.spot,
                )
            )
        cluster.wait_for_nodes()
        state = ClusterState(
            address=cluster.address,
            host_pid=os.getpid(),
            nodes=tuple(nodes),
            temp_dir=os.environ.get("RAY_TMPDIR", ""),
        )
        temporary = state_dir / ".state.json.tmp"
        temporary.write_text(state.model_dump_json(indent=2))
        temporary.replace(state_dir / "state.json")
        LOG.info("cluster up at %s with %d nodes", cluster.address, len(nodes))
        stop.wait()
    finally:
        LOG.info("stopping the cluster")
        cluster.shutdown()
        (state_dir / "state.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
