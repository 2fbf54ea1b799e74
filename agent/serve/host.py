"""What this host offers an engine: CPU ISA flags, cores, memory, and an NVIDIA GPU if any."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field


class HostHardware(BaseModel):
    """The facts ``can_run`` checks decide on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_kind: Literal["cpu", "gpu"] = Field(description="gpu when a CUDA GPU is visible")
    cpu_model: str = Field(default="", description="CPU model name from /proc/cpuinfo")
    cpu_flags: frozenset[str] = Field(default=frozenset(), description="ISA flags, lower case")
    logical_cpus: int = Field(ge=1)
    threads_per_core: int = Field(
        default=1, ge=1, description="Logical CPUs a core, as the OS shows them (a VM's guess)"
    )
    memory_gb: float = Field(gt=0, description="Host RAM in GB")
    gpu_name: str | None = None
    gpu_memory_gb: float | None = None
    compute_capability: float | None = Field(default=None, description="e.g. 9.0 for Hopper")

    def describe(self) -> str:
        if self.device_kind == "gpu":
            return f"{self.gpu_name} (cc {self.compute_capability}, {self.gpu_memory_gb:.0f} GB)"
        return f"{self.cpu_model or platform.machine()} x{self.logical_cpus} CPUs"


def _cpuinfo() -> tuple[str, frozenset[str]]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return platform.processor(), frozenset()
    model, flags = "", frozenset[str]()
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        if key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def _nvidia_gpu() -> tuple[str, float, float] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total,compute_cap",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if len(parts) != 3:
        return None
    return parts[0], float(parts[1]) / 1024, float(parts[2])


def _threads_per_core() -> int:
    logical, cores = psutil.cpu_count(logical=True), psutil.cpu_count(logical=False)
    return max(1, round(logical / cores)) if logical and cores else 1


@lru_cache(maxsize=1)
def detect_host() -> HostHardware:
    """This machine, probed once per process."""
    model, flags = _cpuinfo()
    gpu = _nvidia_gpu()
    return HostHardware(
        device_kind="gpu" if gpu else "cpu",
        cpu_model=model,
        cpu_flags=flags,
        logical_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        threads_per_core=_threads_per_core(),
        memory_gb=psutil.virtual_memory().total / 1e9,
        gpu_name=gpu[0] if gpu else None,
        gpu_memory_gb=gpu[1] if gpu else None,
        compute_capability=gpu[2] if gpu else None,
    )


def measure_memory_bandwidth_gbps(size_mb: int = 256, repeats: int = 5) -> float:
    """Sustained copy bandwidth of this host (read + write bytes per second), best of N.

    A STREAM-style copy with numpy: what decoding on this machine can at best read. Used as the
    peak for bandwidth utilization when the catalog has no figure for this host.
    """
    import time

    import numpy as np

    source = np.ones(size_mb * 1024 * 1024 // 8, dtype=np.float64)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best / 1e9
