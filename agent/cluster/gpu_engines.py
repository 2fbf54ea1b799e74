"""The engines a GPU replica runs: vLLM's CUDA build and llama.cpp's CUDA server, on exactly the
GPUs Ray assigned to the replica.

A GPU replica's command and environment come from its assignment (``CUDA_VISIBLE_DEVICES``,
what Ray gave the replica's GPU lease) and from the plan (tensor parallel degree = its GPUs,
context length, sequences in flight, GPU memory share). Both engines subclass the CPU engines
of ``agent.serve`` and change only what a GPU changes: the toolchain (``vllm-cuda``; llama.cpp's
CUDA ``llama-server``), the GPU flags and the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.serve import LlamaServer, VllmServer
from quantplan.agent.serve.engine import ArtifactInfo, EngineServer, ServeOptions
from quantplan.agent.serve.host import HostHardware
from quantplan.agent.toolchains.gpu import AcceleratorInventory
from quantplan.errors import QuantplanError

# The degrees vLLM shards a replica over; the planner only proposes these (planner/hardware.py).
VALID_TENSOR_PARALLEL = (1, 2, 4, 8, 16)


class GpuAssignment(BaseModel):
    """The GPUs Ray gave one replica."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    visible_devices: tuple[str, ...] = Field(
        min_length=1, description="CUDA_VISIBLE_DEVICES of the replica's lease, in Ray's order"
    )
    accelerator_type: str | None = Field(default=None, description="Ray accelerator type")
    memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="Share of each GPU's memory the engine may take"
    )

    @property
    def count(self) -> int:
        return len(self.visible_devices)

    def environment(self) -> dict[str, str]:
        # PCI bus order: device numbers then mean what nvidia-smi and Ray's detection number.
        return {
            "CUDA_VISIBLE_DEVICES": ",".join(self.visible_devices),
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        }


def host_gpu_assignment(
    inventory: AcceleratorInventory, count: int, visible: str | None
) -> GpuAssignment:
    """The first ``count`` GPUs this process may use, for a replica started outside Ray
    (``quantplan serve --gpus``): the devices ``CUDA_VISIBLE_DEVICES`` (``visible``) names, in
    its order, else every GPU nvidia-smi lists. Refused in one line when there are fewer."""
    if not inventory.count:
        raise QuantplanError(
            f"--gpus {count}: nvidia-smi lists no NVIDIA GPU on this host",
            hint="serve on the CPU (leave out --gpus), or run this on a GPU host",
        )
    if visible is None:
        usable = [str(device.index) for device in inventory.devices]
    else:
        # CUDA reads the list up to its first invalid entry; -1 or nothing hides every GPU.
        usable = []
        for entry in (part.strip() for part in visible.split(",")):
            if not entry or entry == "-1":
                break
            usable.append(entry)
    if len(usable) < count:
        found = f"this host has {inventory.describe()}"
        if visible is not None:
            found = f"CUDA_VISIBLE_DEVICES={visible!r} leaves {len(usable)} of them ({found})"
        raise QuantplanError(
            f"--gpus {count}: {found}",
            hint=f"ask for at most {len(usable)}, or widen CUDA_VISIBLE_DEVICES"
            if usable
            else "unset CUDA_VISIBLE_DEVICES, or name the GPUs to use in it",
        )
    return GpuAssignment(
        visible_devices=tuple(usable[:count]), accelerator_type=inventory.accelerator_type
    )


def _refuse_without_gpu(engine: str, hardware: HostHardware) -> tuple[bool, str] | None:
    if hardware.device_kind != "gpu":
        return False, (
            f"{engine}'s CUDA build needs an NVIDIA GPU; this host has none ({hardware.describe()})"
        )
    return None


class VllmCudaServer(VllmServer):
    """vLLM's OpenAI server from the ``vllm-cuda`` toolchain, tensor parallel over the replica's
    GPUs."""

    toolchain: ClassVar[str] = "vllm-cuda"

    def __init__(self, assignment: GpuAssignment) -> None:
        if assignment.count not in VALID_TENSOR_PARALLEL:
            raise QuantplanError(
                f"vLLM runs tensor parallel over {', '.join(map(str, VALID_TENSOR_PARALLEL))} "
                f"GPUs, not {assignment.count}",
                hint="re-plan: the planner only gives vLLM replicas valid GPU counts",
            )
        self.cuda = True
        self.assignment = assignment

    def can_run(self, hardware: HostHardware, model: ArtifactInfo) -> tuple[bool, str]:
        if model.format != "hf":
            return False, "vLLM serves Hugging Face checkpoints here; use llama.cpp for GGUF"
        refused = _refuse_without_gpu("vLLM", hardware)
        if refused is not None:
            return refused
        return True, (
            f"{model.quant_method} on vLLM CUDA, tensor parallel {self.assignment.count} "
            f"({hardware.gpu_name})"
        )

    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        base = super().command(python, model, options, port)
        extra = list(options.extra_args)
        command = base[: len(base) - len(extra)] if extra else base
        command += [
            "--tensor-parallel-size",
            str(self.assignment.count),
            "--gpu-memory-utilization",
            f"{self.assignment.memory_fraction:g}",
        ]
        if options.parallel_slots:
            command += ["--max-num-seqs", str(options.parallel_slots)]
        return command + extra

    def environment(self, options: ServeOptions) -> dict[str, str]:
        env = self.assignment.environment()
        if options.threads:
            env["OMP_NUM_THREADS"] = str(options.threads)
        return env


class LlamaCudaServer(LlamaServer):
    """llama.cpp's CUDA ``llama-server``: the layers split across the replica's GPUs
    (``--split-mode layer``), every one of them (``-ngl`` all) unless the plan puts only the
    first N there and the rest on the host (``gpu_layers`` N, partial offload)."""

    def __init__(self, assignment: GpuAssignment, *, binary: Path | None = None) -> None:
        super().__init__(cuda=True, binary=binary)
        self.assignment = assignment

    def can_run(self, hardware: HostHardware, model: ArtifactInfo) -> tuple[bool, str]:
        refused = _refuse_without_gpu("llama.cpp", hardware)
        return refused if refused is not None else super().can_run(hardware, model)

    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        # A GPU replica with no layer on its GPU is no plan's: 0 (and -1) mean all of them.
        layers = options.gpu_layers if options.gpu_layers > 0 else -1  # -1: -ngl 999
        placed = options.model_copy(update={"gpu_layers": layers})
        command = super().command(python, model, placed, port)
        extra = list(options.extra_args)
        head = command[: len(command) - len(extra)] if extra else command
        if self.assignment.count > 1:
            head += ["--split-mode", "layer"]
        return head + extra

    def environment(self, options: ServeOptions) -> dict[str, str]:
        return {**super().environment(options), **self.assignment.environment()}


def gpu_engine(engine: str, assignment: GpuAssignment) -> EngineServer:
    """The CUDA server of ``engine`` on ``assignment``'s GPUs."""
    if engine == "vllm":
        return VllmCudaServer(assignment)
    if engine == "llama.cpp":
        return LlamaCudaServer(assignment)
    raise QuantplanError(f"engine {engine!r} has no GPU server here", hint="use vllm or llama.cpp")


def gpu_host_hardware(host: HostHardware, inventory: AcceleratorInventory) -> HostHardware:
    """The host as a GPU engine's ``can_run`` sees it: its CPU, and its GPUs (fake ones named so,
    with no memory or capability: nothing was measured)."""
    if not inventory.count:
        return host
    first = inventory.devices[0] if inventory.devices else None
    name = first.name if first else f"{inventory.accelerator_type} (fake)"
    return host.model_copy(
        update={
            "device_kind": "gpu",
            "gpu_name": name,
            "gpu_memory_gb": first.memory_mib * 1.048576 / 1000 if first else None,
            "compute_capability": float(first.compute_capability) if first else None,
        }
    )
