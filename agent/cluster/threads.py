"""The thread count engines and toolchains start with on a cluster node.

Ray sets ``OMP_NUM_THREADS=1`` in every actor that reserves no CPU
(``ray._private.utils.set_omp_num_threads_if_unset``: a guard against many small tasks each
spawning a thread per core). The node agent and the endpoint's engine replicas reserve none on
purpose -- the engine's threads are the whole node's -- so every process they start inherited
that 1: a vLLM CPU replica ran its torch kernels on one thread (the README demo's replica on
2 vCPUs made 23.7 output tok/s at 4 requests where ``quantplan serve`` made several times that),
and llm-compressor quantized on one. Dropping Ray's value lets each engine and toolchain pick
its own default, as it does under ``quantplan serve``; a plan's ``threads`` still sets it
explicitly, and a value the node itself was started with is kept.
"""

from __future__ import annotations

import contextlib
import os

VARIABLE = "OMP_NUM_THREADS"


def _parent_environment() -> dict[str, str] | None:
    """The environment of the process that started this worker (its raylet), if readable."""
    import psutil

    with contextlib.suppress(psutil.Error):
        parent = psutil.Process().parent()
        if parent is not None:
            return dict(parent.environ())
    return None


def release_ray_thread_cap() -> bool:
    """Undo Ray's ``OMP_NUM_THREADS=1`` in this actor process (see the module doc); True when
    it was dropped. Called once where an actor that starts engines or toolchains begins."""
    import ray

    if os.environ.get(VARIABLE) != "1" or not ray.is_initialized():
        return False
    if ray.get_runtime_context().get_assigned_resources().get("CPU") is not None:
        return False  # a CPU reservation: Ray's value follows it, as the actor asked
    parent = _parent_environment()
    if parent is not None and VARIABLE in parent:
        return False  # the node was started with it: someone chose it
    del os.environ[VARIABLE]
    return True
