"""What NVIDIA GPUs a host has, from ``nvidia-smi``, and the Ray resources that describe them.

Parsing is pure (recorded outputs are the tests); only :func:`detect_accelerators` runs the tool.
The accelerator type follows Ray's convention (``accelerator_type:H100``): the model token of the
GPU's name, as Ray's own NVIDIA accelerator manager derives it, so a resource we declare for a
node and one Ray detects on a real GPU node are the same string.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from quantplan.errors import QuantplanError

QUERY_FIELDS = "name,memory.total,compute_cap,driver_version"
QUERY_COMMAND = ("nvidia-smi", f"--query-gpu={QUERY_FIELDS}", "--format=csv,noheader")
ACCELERATOR_TYPE_PREFIX = "accelerator_type:"
# ray/_private/accelerators/nvidia_gpu.py (Ray 2.60), NVIDIA_GPU_NAME_PATTERN: the first all-caps
# token with a digit after the brand ("NVIDIA H100 80GB HBM3" -> "H100", "NVIDIA A10G" -> "A10G").
_RAY_NAME_PATTERN = re.compile(r"\w+\s+((?:[A-Z]+\s+)*[A-Z0-9]*\d[A-Z0-9]*)")
_CUDA_VERSION = re.compile(r"CUDA Version:\s*([0-9]+(?:\.[0-9]+)*)")
_MEMORY = re.compile(r"^([0-9]+)\s*MiB$")
_CAPABILITY = re.compile(r"^[0-9]+\.[0-9]+$")


class GpuQueryError(QuantplanError):
    """nvidia-smi answered something this parser does not recognise."""


class GpuDevice(BaseModel):
    """One GPU as ``nvidia-smi --query-gpu`` lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0, description="Position in nvidia-smi's list (its device index)")
    name: str = Field(min_length=1, description="Marketing name, e.g. 'NVIDIA H100 80GB HBM3'")
    memory_mib: int = Field(gt=0, description="Total device memory in MiB")
    compute_capability: str = Field(pattern=r"^[0-9]+\.[0-9]+$", description="e.g. '9.0'")
    driver_version: str = Field(min_length=1, description="NVIDIA driver, e.g. '550.54.15'")

    @property
    def accelerator_type(self) -> str | None:
        return ray_accelerator_type(self.name)


class AcceleratorInventory(BaseModel):
    """A node's GPUs: detected ones, or logical ones a test cluster declares (``fake``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accelerator_type: str | None = Field(
        description="Ray's accelerator type of the GPUs (one type per node), None without GPUs"
    )
    count: int = Field(ge=0, description="GPUs on the node")
    devices: tuple[GpuDevice, ...] = Field(
        default=(), description="What nvidia-smi listed; empty for fake GPUs"
    )
    cuda_version: str | None = Field(
        default=None, description="Highest CUDA version the driver supports (nvidia-smi header)"
    )
    fake: bool = Field(
        default=False,
        description="Logical GPUs declared to Ray for tests: no device exists behind them",
    )

    @property
    def driver_version(self) -> str | None:
        return self.devices[0].driver_version if self.devices else None

    def describe(self) -> str:
        """e.g. '8x H100 (80 GB, cc 9.0, driver 550.54.15, CUDA 12.4)' or '4x L4 (fake)'."""
        if not self.count:
            return "no GPU"
        head = f"{self.count}x {self.accelerator_type}"
        if self.fake:
            return head + " (fake: logical Ray resources, no device)"
        first = self.devices[0]
        cuda = f", CUDA {self.cuda_version}" if self.cuda_version else ""
        return (
            f"{head} ({first.memory_mib / 1024:.0f} GiB, cc {first.compute_capability}, "
            f"driver {first.driver_version}{cuda})"
        )


def ray_accelerator_type(gpu_name: str) -> str | None:
    """Ray's accelerator type for an NVIDIA GPU name (what ``accelerator_type:<T>`` carries)."""
    match = _RAY_NAME_PATTERN.match(gpu_name.strip())
    result = match.group(1).replace(" ", "-") if match else None
    if result and len(result) > 1:
        return result
    cleaned = re.sub(r"^NVIDIA\s+", "", gpu_name.strip())
    return cleaned.replace(" ", "-") or None


def accelerator_type_for_hardware(hardware: str) -> str:
    """Ray's accelerator type of a catalog GPU hardware name: its model token, without the
    memory and form-factor suffixes Ray drops too ('H100-SXM' -> 'H100', 'A100-80GB-SXM' ->
    'A100', 'L4' -> 'L4')."""
    return hardware.split("-", 1)[0]


def parse_gpu_query(text: str) -> tuple[GpuDevice, ...]:
    """The GPUs in ``nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version
    --format=csv,noheader`` output (one line each; empty output: no GPU)."""
    devices = []
    for index, line in enumerate(line for line in text.splitlines() if line.strip()):
        # GPU names hold no commas; the last three fields never do.
        parts = [part.strip() for part in line.rsplit(",", 3)]
        if len(parts) != 4:
            raise GpuQueryError(
                f"cannot read nvidia-smi line {line.strip()[:120]!r}: expected 4 fields",
                hint=f"run `{' '.join(QUERY_COMMAND)}` and check the driver is loaded",
            )
        name, memory, capability, driver = parts
        memory_match = _MEMORY.match(memory)
        if memory_match is None or not _CAPABILITY.match(capability) or not driver:
            raise GpuQueryError(
                f"cannot read nvidia-smi line {line.strip()[:120]!r} (memory {memory!r}, "
                f"compute capability {capability!r}, driver {driver!r})",
                hint="a GPU in an error state reports [N/A]; see `nvidia-smi -q`",
            )
        devices.append(
            GpuDevice(
                index=index,
                name=name,
                memory_mib=int(memory_match.group(1)),
                compute_capability=capability,
                driver_version=driver,
            )
        )
    return tuple(devices)


def parse_cuda_version(header: str) -> str | None:
    """The 'CUDA Version: 12.4' of plain ``nvidia-smi``'s header, if it shows one."""
    match = _CUDA_VERSION.search(header)
    return match.group(1) if match else None


def inventory_from_outputs(query: str, header: str = "") -> AcceleratorInventory:
    """The node's inventory from the two recorded outputs. A node mixing GPU models is refused:
    Ray gives a node one accelerator type, and a replica's GPUs must match its plan's."""
    devices = parse_gpu_query(query)
    types = sorted({device.accelerator_type or device.name for device in devices})
    if len(types) > 1:
        raise GpuQueryError(
            f"this node mixes GPU models ({', '.join(types)}); a node serves one accelerator type",
            hint="run one Ray node per GPU model, each with CUDA_VISIBLE_DEVICES set to its GPUs",
        )
    return AcceleratorInventory(
        accelerator_type=types[0] if types else None,
        count=len(devices),
        devices=devices,
        cuda_version=parse_cuda_version(header) if devices else None,
    )


def fake_inventory(accelerator_type: str, count: int) -> AcceleratorInventory:
    """Logical GPUs for a test cluster: Ray schedules on them, no device exists."""
    return AcceleratorInventory(accelerator_type=accelerator_type, count=count, fake=True)


def ray_resources(inventory: AcceleratorInventory) -> dict[str, float]:
    """The Ray resources a node with ``inventory`` declares: ``GPU`` and, by Ray's convention,
    one unit of ``accelerator_type:<T>`` (tasks ask for a fraction of it to pick the type)."""
    if not inventory.count or inventory.accelerator_type is None:
        return {}
    return {
        "GPU": float(inventory.count),
        ACCELERATOR_TYPE_PREFIX + inventory.accelerator_type: 1.0,
    }


Runner = Callable[[list[str]], str]


def _run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout


def detect_accelerators(run: Runner | None = None) -> AcceleratorInventory:
    """This host's GPUs from nvidia-smi; no GPU when it is missing or fails (a CPU host)."""
    if run is None:
        if shutil.which("nvidia-smi") is None:
            return AcceleratorInventory(accelerator_type=None, count=0)
        run = _run
    try:
        query = run(list(QUERY_COMMAND))
        header = run(["nvidia-smi"]) if query.strip() else ""
    except (subprocess.SubprocessError, OSError):
        return AcceleratorInventory(accelerator_type=None, count=0)
    return inventory_from_outputs(query, header)


def detect_gpus() -> tuple[GpuDevice, ...]:
    """This host's GPUs (none on a CPU host)."""
    return detect_accelerators().devices
