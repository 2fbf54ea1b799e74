"""A real multi-node Ray cluster on this machine for the cluster tests (head + 2 workers).

Nodes are real raylets with their own worker processes, started through
``ray.cluster_utils.Cluster`` on 127.0.0.1; every test module that uses it gets a fresh one
and it is always torn down, even when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantplan.agent.cluster.local_host import WorkerRequest

WORKER_TYPE = "c7i.xlarge"


@dataclass
class RayTestCluster:
    cluster: object
    workers: list
    database_url: str
    spool: Path
    collector: object
    data_dir: Path
    """The node agents' data directory (replica notes): a driver that must find what they
    noted, as the CLI does on a `cluster up` cluster, sets QUANTPLAN_DATA_DIR to it."""

    def node_of(self, node_id: str):
        return next(n for n in self.workers if n.node_id == node_id)

    def kill_raylet(self, node_id: str) -> int:
        """``kill -9`` the raylet of a worker node, as a crashed machine would lose it; returns
        its pid. The node's other processes are left to notice on their own."""
        from quantplan.agent.cluster.local_host import _raylet_pid

        pid = _raylet_pid(self.node_of(node_id))
        assert pid is not None, "the node has no raylet process"
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self, node_id: str) -> None:
        """Kill a worker node outright (no graceful shutdown), as a cloud losing an instance
        (or taking a spot one back) would."""
        self.cluster.remove_node(self.node_of(node_id), allow_graceful=False)  # type: ignore[attr-defined]
        self.workers = [n for n in self.workers if n.node_id != node_id]

    def kill_and_replace(self, node_id: str) -> None:
        """Kill a worker node outright, then add a fresh one of the same type, as a cloud
        autoscaler would after losing an instance."""
        self.kill(node_id)
        self.add_worker()

    def add_worker(self, *, spot: bool = False):  # type: ignore[no-untyped-def]
        """A fresh WORKER_TYPE node; ``spot`` labels it spot capacity, as `cluster up`'s
        ``TYPE@spot`` does. Returns Ray's node."""
        from quantplan.agent.cluster.local_host import NODE_RESOURCE, instance_resource
        from quantplan.agent.cluster.naming import MARKET_LABEL

        # The new node's processes inherit this environment, where the autouse fixture has
        # put the running test's own data directory: its agent must note servers where the
        # other agents do.
        previous = os.environ.get("QUANTPLAN_DATA_DIR")
        os.environ["QUANTPLAN_DATA_DIR"] = str(self.data_dir)
        try:
            node = self.cluster.add_node(  # type: ignore[attr-defined]
                object_store_memory=80 * 1024 * 1024,
                node_ip_address="127.0.0.1",
                num_cpus=4,
                resources={instance_resource(WORKER_TYPE): 1, NODE_RESOURCE: 1},
                labels={MARKET_LABEL: "spot"} if spot else {},
            )
        finally:
            if previous is None:
                os.environ.pop("QUANTPLAN_DATA_DIR", None)
            else:
                os.environ["QUANTPLAN_DATA_DIR"] = previous
        self.workers.append(node)
        self.cluster.wait_for_nodes()  # type: ignore[attr-defined]
        return node


def start_test_cluster(
    tmp: Path, workers: int = 2, extra_workers: tuple[WorkerRequest, ...] = ()
) -> RayTestCluster:
    """Head + ``workers`` CPU workers of WORKER_TYPE, then ``extra_workers`` declared as `cluster
    up` declares them (instance type, and fake GPUs when a request has them)."""
    # Ray's socket paths must stay under 108 bytes: a short directory, not pytest's tmp path.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="qp-ray-", dir="/tmp")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Node agents inherit this process's environment when the nodes start: keep what they
    # write (replica notes) in the test's directory, not the user's.
    data = tmp / "data"
    os.environ["QUANTPLAN_DATA_DIR"] = str(data)
    from quantplan.agent.cluster.local import use_loopback_driver

    use_loopback_driver()
    import ray
    from ray.cluster_utils import Cluster

    from quantplan.agent.cluster.collector_actor import NAMESPACE, start_collector
    from quantplan.agent.cluster.local_host import (
        HEAD_RESOURCE,
        NODE_RESOURCE,
        instance_resource,
        worker_resources,
    )
    from quantplan.catalog.db import open_catalog

    common = {"object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **common,
            "num_cpus": 4,
            "resources": {HEAD_RESOURCE: 1},
            "include_dashboard": False,
        },
    )
    try:
        nodes = [
            cluster.add_node(
                **common,
                num_cpus=4,
                resources={instance_resource(WORKER_TYPE): 1, NODE_RESOURCE: 1},
            )
            for _ in range(workers)
        ]
        nodes += [
            cluster.add_node(
                **common,
                num_cpus=worker.num_cpus,
                num_gpus=worker.fake_gpus,
                resources=worker_resources(worker),
            )
            for worker in extra_workers
        ]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        database_url = f"sqlite:///{tmp / 'catalog.db'}"
        open_catalog(database_url)  # migrate and seed once, before the collector opens it
        spool = tmp / "spool"
        collector = start_collector(database_url, spool)
    except BaseException:
        ray.shutdown()
        cluster.shutdown()
        raise
    return RayTestCluster(cluster, nodes, database_url, spool, collector, data)


def stop_test_cluster(test_cluster: RayTestCluster) -> None:
    import ray

    from quantplan.agent.cluster.replicas import stop_noted_servers

    ray.shutdown()
    test_cluster.cluster.shutdown()  # type: ignore[attr-defined]
    # As `cluster down` does: engines run in process groups of their own and outlive their
    # nodes; a test that failed halfway must not leave one serving.
    stop_noted_servers(data=test_cluster.data_dir)
    shutil.rmtree(os.environ.pop("RAY_TMPDIR", ""), ignore_errors=True)
