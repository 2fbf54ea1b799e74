"""What a GPU replica's measured profile is filed under, and the provenance it carries.

A profile measured on GPUs belongs to the catalog's row of that GPU ("NVIDIA H200" -> H200),
with ``hardware_count`` = the replica's GPUs, so the planner's cost per token for that GPU
learns from it like it learns from CPU measurements. Its ``details["gpu"]`` say exactly what
ran: the model nvidia-smi names, the count, memory, compute capability, driver and CUDA
versions, the GPUs Ray gave the replica, and the engine's toolchain with its versions.

A GPU the mapping does not know is refused before the benchmark runs: filed under the nearest
catalog name (an H100 PCIe under H100-SXM, say) it would teach the planner the wrong GPU's
speed, and a made-up name would join no price. Fake GPUs (a test cluster's logical ones) are
never filed under a catalog GPU: their profile keeps the host's CPU name and says "fake".
Pure: no Ray, no nvidia-smi; the node agent passes its inventory in.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.toolchains.gpu import AcceleratorInventory
from quantplan.errors import QuantplanError

RECORDED = "recorded nvidia-smi output (tests/agent/cluster/nvidia_smi/)"
DRIVER_NAMING = "name as NVIDIA's driver reports it for this product (not recorded here)"
NVIDIA_SMI_TO_CATALOG: dict[str, tuple[str, str]] = {
    # nvidia-smi --query-gpu=name -> (catalog hardware name, where the name string comes from)
    "NVIDIA H200": ("H200", RECORDED),
    "NVIDIA H100 80GB HBM3": ("H100-SXM", RECORDED),
    "NVIDIA L4": ("L4", RECORDED),
    "NVIDIA A10G": ("A10G", RECORDED),
    "NVIDIA H100 NVL": ("H100-NVL", DRIVER_NAMING),
    "NVIDIA A10": ("A10", DRIVER_NAMING),
    "NVIDIA L40S": ("L40S", DRIVER_NAMING),
    "Tesla T4": ("T4", DRIVER_NAMING),
    "Tesla V100-SXM2-16GB": ("V100-16GB", DRIVER_NAMING),
    "Tesla V100-PCIE-16GB": ("V100-16GB", DRIVER_NAMING),
    "NVIDIA A100-SXM4-40GB": ("A100-40GB", DRIVER_NAMING),
    "NVIDIA A100-PCIE-40GB": ("A100-40GB", DRIVER_NAMING),
    "NVIDIA A100-SXM4-80GB": ("A100-80GB-SXM", DRIVER_NAMING),
    "NVIDIA A100 80GB PCIe": ("A100-80GB-PCIe", DRIVER_NAMING),
}
"""Exact names only: the catalog tells SXM from PCIe parts and memory sizes apart, which
Ray's accelerator type (``H100``, ``A100``) does not."""


class UnknownGpuError(QuantplanError):
    """The node's GPU has no catalog hardware name: its profile would be misfiled."""

    kind = "unsupported_hardware"


class GpuProfilePlacement(BaseModel):
    """Where a GPU replica's profile row goes and what provenance it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hardware: str | None = Field(
        description="Catalog hardware name of the GPU; None for fake GPUs (the host's CPU "
        "name is used, never a GPU's)"
    )
    hardware_count: int = Field(ge=1, description="GPUs the replica serves on")
    description: str = Field(description="The run's hardware, in words (runs.hardware)")
    details: dict[str, Any] = Field(description="details['gpu'] of the profile row")


def catalog_gpu_name(gpu_name: str) -> str:
    """The catalog hardware name of an nvidia-smi GPU name; unknown ones are refused."""
    known = NVIDIA_SMI_TO_CATALOG.get(gpu_name.strip())
    if known is None:
        raise UnknownGpuError(
            f"GPU {gpu_name.strip()[:80]!r} has no catalog hardware name; a profile measured "
            "on it would be filed under a GPU it is not",
            hint="add the GPU to the catalog's hardware and its nvidia-smi name to "
            "NVIDIA_SMI_TO_CATALOG in agent/cluster/gpu_provenance.py",
        )
    return known[0]


def gpu_profile_placement(
    inventory: AcceleratorInventory,
    gpus: int,
    *,
    visible_devices: tuple[str, ...] = (),
    engine_toolchain: str | None = None,
    engine_versions: dict[str, str] | None = None,
    planned_hardware: str | None = None,
) -> GpuProfilePlacement:
    """The profile placement of a replica serving on ``gpus`` of the node's ``inventory``."""
    if not inventory.count or gpus < 1:
        raise UnknownGpuError(
            f"a GPU replica's profile needs the node's GPUs; this node reports "
            f"{inventory.describe()}",
            hint="the node's nvidia-smi output could not be used: see the node agent's log",
        )
    gpu: dict[str, Any] = {
        "count": gpus,
        "node_gpus": inventory.count,
        "accelerator_type": inventory.accelerator_type,
        "cuda_visible_devices": ",".join(visible_devices) or None,
        "engine_toolchain": engine_toolchain,
        "engine_versions": dict(engine_versions or {}),
        "planned_hardware": planned_hardware,
    }
    if inventory.fake:
        gpu.update(fake=True, model=None, driver_version=None, cuda_version=None)
        return GpuProfilePlacement(
            hardware=None,
            hardware_count=gpus,
            description=f"{gpus}x {inventory.accelerator_type} (fake: logical Ray GPUs)",
            details={"gpu": gpu},
        )
    first = inventory.devices[0]
    hardware = catalog_gpu_name(first.name)
    gpu.update(
        fake=False,
        model=first.name,
        catalog_hardware=hardware,
        memory_mib=first.memory_mib,
        compute_capability=first.compute_capability,
        driver_version=first.driver_version,
        cuda_version=inventory.cuda_version,
    )
    cuda = f", CUDA {inventory.cuda_version}" if inventory.cuda_version else ""
    return GpuProfilePlacement(
        hardware=hardware,
        hardware_count=gpus,
        description=f"{gpus}x {first.name} (driver {first.driver_version}{cuda})"[:200],
        details={"gpu": gpu},
    )
