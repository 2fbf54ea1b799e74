"""Accelerator detection from recorded nvidia-smi outputs (H100, H200, L4, A10G hosts), the Ray
resources a node declares from it, and CUDA toolchains refused on a host without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantplan.agent.toolchains.build import NoGpuForToolchainError, refuse_without_gpu
from quantplan.agent.toolchains.gpu import (
    QUERY_COMMAND,
    GpuQueryError,
    accelerator_type_for_hardware,
    detect_accelerators,
    fake_inventory,
    inventory_from_outputs,
    ray_resources,
)
from quantplan.agent.toolchains.specs import get_spec, host_engine_toolchain

RECORDED = Path(__file__).parent / "nvidia_smi"


def recorded(host: str):  # type: ignore[no-untyped-def]
    return inventory_from_outputs(
        (RECORDED / f"{host}.csv").read_text(), (RECORDED / f"{host}-header.txt").read_text()
    )


@pytest.mark.parametrize(
    ("host", "ray_type", "count", "memory_mib", "capability", "driver", "cuda"),
    [
        ("h100x8", "H100", 8, 81559, "9.0", "550.54.15", "12.4"),
        ("h200", "H200", 1, 143771, "9.0", "580.65.06", "13.0"),
        ("l4", "L4", 1, 23034, "8.9", "535.183.01", "12.2"),
        ("a10gx4", "A10G", 4, 23028, "8.6", "535.183.01", "12.2"),
    ],
)
def test_recorded_nvidia_smi_outputs_become_an_inventory_and_ray_resources(
    host: str, ray_type: str, count: int, memory_mib: int, capability: str, driver: str, cuda: str
) -> None:
    inventory = recorded(host)
    assert (inventory.accelerator_type, inventory.count, inventory.cuda_version) == (
        ray_type,
        count,
        cuda,
    )
    assert inventory.driver_version == driver and not inventory.fake
    assert [d.index for d in inventory.devices] == list(range(count))
    assert {(d.memory_mib, d.compute_capability) for d in inventory.devices} == {
        (memory_mib, capability)
    }
    assert ray_resources(inventory) == {"GPU": float(count), f"accelerator_type:{ray_type}": 1.0}


def test_catalog_hardware_names_map_to_the_types_ray_detects() -> None:
    # The plan names catalog hardware; the node declares what nvidia-smi's name gives.
    pairs = {"H100-SXM": "h100x8", "H200": "h200", "L4": "l4", "A10G": "a10gx4"}
    for hardware, host in pairs.items():
        assert accelerator_type_for_hardware(hardware) == recorded(host).accelerator_type
    assert accelerator_type_for_hardware("A100-80GB-SXM") == "A100"


@pytest.mark.parametrize(
    "line",
    [
        "NVIDIA H100 80GB HBM3, [N/A], 9.0, 550.54.15",
        "NVIDIA L4, 23034 MiB",
        "NVIDIA L4, 23034 MiB, [Unknown Error], 535.183.01",
    ],
)
def test_unreadable_nvidia_smi_lines_are_refused_with_the_line(line: str) -> None:
    with pytest.raises(GpuQueryError) as caught:
        inventory_from_outputs(line + "\n")
    assert "cannot read nvidia-smi line" in caught.value.message
    assert "\n" not in caught.value.message


def test_a_node_mixing_gpu_models_is_refused() -> None:
    mixed = (RECORDED / "l4.csv").read_text() + (RECORDED / "h200.csv").read_text()
    with pytest.raises(GpuQueryError, match="mixes GPU models"):
        inventory_from_outputs(mixed)


def test_detection_runs_the_documented_query_and_a_cpu_host_has_no_gpu() -> None:
    asked: list[list[str]] = []

    def run(command: list[str]) -> str:
        asked.append(command)
        return (RECORDED / ("h200.csv" if len(command) > 1 else "h200-header.txt")).read_text()

    inventory = detect_accelerators(run)
    assert asked == [list(QUERY_COMMAND), ["nvidia-smi"]]
    assert inventory.describe() == "1x H200 (140 GiB, cc 9.0, driver 580.65.06, CUDA 13.0)"
    assert detect_accelerators(lambda command: "").count == 0
    assert ray_resources(detect_accelerators(lambda command: "")) == {}


def test_fake_gpus_say_so() -> None:
    fake = fake_inventory("L4", 4)
    assert fake.fake and fake.devices == ()
    assert "fake" in fake.describe()
    assert ray_resources(fake) == {"GPU": 4.0, "accelerator_type:L4": 1.0}


def test_the_toolchain_is_chosen_per_host_and_cuda_builds_need_a_gpu() -> None:
    assert host_engine_toolchain("vllm", gpu=True) == "vllm-cuda"
    assert host_engine_toolchain("vllm", gpu=False) == "vllm-cpu"
    assert host_engine_toolchain("llama.cpp", gpu=True) == "llama-cpp"
    spec = get_spec("vllm-cuda")
    assert spec.requires_gpu
    lock = spec.lock_text()
    assert "\nvllm==0.33.0\n" in lock and "\ntorch==2.14.0\n" in lock  # pinned, CUDA torch
    with pytest.raises(NoGpuForToolchainError) as caught:
        refuse_without_gpu(spec, gpu_names=())
    assert caught.value.message.startswith("toolchain vllm-cuda is a CUDA build")
    refuse_without_gpu(spec, gpu_names=("NVIDIA H200",))  # a GPU host may build it
    refuse_without_gpu(get_spec("vllm-cpu"), gpu_names=())  # CPU toolchains build anywhere


def test_installing_the_cuda_toolchain_on_a_cpu_host_is_one_clear_refusal(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("nvidia-smi") is not None:
        pytest.skip("this host has nvidia-smi: the refusal is for hosts without a GPU")
    # A private cache and no package index: should the refusal ever break, nothing is fetched.
    env = {**os.environ, "QUANTPLAN_CACHE_DIR": str(tmp_path), "PIP_NO_INDEX": "1"}
    env["COLUMNS"] = "300"
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", "toolchain", "install", "vllm-cuda"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0] == (
        "error: toolchain vllm-cuda is a CUDA build and needs an NVIDIA GPU; this host has none "
        "(nvidia-smi lists no GPU)"
    )
    assert len(lines) == 2 and lines[1].lstrip().startswith("hint:")


def test_doctor_says_in_one_line_when_the_driver_is_older_than_the_cuda_toolchain() -> None:
    from quantplan.agent.toolchains.doctor import cuda_driver_check, cuda_runtime_of

    assert cuda_runtime_of(get_spec("vllm-cuda").lock_text()) == (13, 0)
    assert cuda_runtime_of(get_spec("vllm-cpu").lock_text()) is None
    old = cuda_driver_check("vllm-cuda", recorded("h100x8"))  # driver 550: CUDA 12.4
    assert old.status == "fail"
    assert old.detail == (
        "driver 550.54.15 supports CUDA 12.4; vllm-cuda needs CUDA 13.0 (its nvidia-cuda-runtime "
        "pin): install a driver that supports CUDA 13.0"
    )
    assert cuda_driver_check("vllm-cuda", recorded("h200")).status == "ok"  # driver 580: 13.0
    cpu = cuda_driver_check("vllm-cuda", detect_accelerators(lambda command: ""))
    assert (cpu.status, cpu.detail) == ("fail", "needs an NVIDIA GPU (CUDA 13.0); none here")
