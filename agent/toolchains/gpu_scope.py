"""The GPUs the current job holds, and what that changes for the toolchains it runs.

A node agent runs a quantize job on GPUs Ray leased it (``agent/cluster/gpu_lease.py``). Inside
:func:`using_gpus` the job's code asks for toolchains by their usual names ("llmcompressor") and
gets the host's toolchain for them (:func:`~quantplan.agent.toolchains.specs.host_toolchain`:
the CUDA build, "llmcompressor-cuda"), and every step it starts sees exactly the leased GPUs
(``CUDA_VISIBLE_DEVICES``). The quantizers themselves stay unaware of GPUs: one seam, here.

The scope is a context variable, so it holds for the thread (or task) that entered it and for
nothing else: the agent runs other jobs (a CPU replica's serve job) concurrently in other
threads, and they must not inherit the quantize job's GPUs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from pydantic import BaseModel, ConfigDict, Field

from quantplan.errors import QuantplanError


class GpuScope(BaseModel):
    """The GPUs a job holds while it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    visible_devices: tuple[str, ...] = Field(
        min_length=1, description="CUDA_VISIBLE_DEVICES of the job's GPU lease, in Ray's order"
    )
    fake: bool = Field(
        default=False, description="Logical GPUs of a test node (no device behind them)"
    )

    def environment(self) -> dict[str, str]:
        # PCI bus order: device numbers then mean what nvidia-smi and Ray's detection number.
        return {
            "CUDA_VISIBLE_DEVICES": ",".join(self.visible_devices),
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }


_current: ContextVar[GpuScope | None] = ContextVar("quantplan_gpu_scope", default=None)


def current_gpus() -> GpuScope | None:
    """The GPUs the running job holds, or None (a CPU job, or no job at all)."""
    return _current.get()


@contextlib.contextmanager
def using_gpus(visible_devices: tuple[str, ...], *, fake: bool = False) -> Iterator[GpuScope]:
    """Run the block as a job holding ``visible_devices``: toolchains resolve to their GPU
    builds and steps see only these GPUs."""
    scope = GpuScope(visible_devices=visible_devices, fake=fake)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


class NoGpuForStepError(QuantplanError):
    """A CUDA toolchain's step was about to run where no GPU is there for it."""


def refuse_step_without_gpu(toolchain: str, requires_gpu: bool) -> None:
    """Refuse to run a step of a CUDA toolchain unless the job holds GPUs or the host has one:
    started anyway, it would fail deep inside torch ("no CUDA GPUs are available")."""
    if not requires_gpu or current_gpus() is not None:
        return
    from quantplan.agent.toolchains.gpu import detect_gpus

    if not detect_gpus():
        raise NoGpuForStepError(
            f"toolchain {toolchain} is a CUDA build and needs an NVIDIA GPU; this host has none "
            "(nvidia-smi lists no GPU) and the job holds none",
            hint="run the job on a GPU node (apply places GPTQ/AWQ there when the cluster has "
            "one); CPU hosts quantize with the llmcompressor toolchain",
        )
