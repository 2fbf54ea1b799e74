"""``quantplan serve --gpus/--gpu-layers``: which GPUs a server outside Ray takes, and the
refusals a user meets, run as a user runs them (a subprocess). The GPU server itself starts
only where nvidia-smi lists a GPU (the last test); CI has none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantplan.agent.cluster.gpu_engines import LlamaCudaServer, host_gpu_assignment
from quantplan.agent.toolchains.gpu import inventory_from_outputs
from quantplan.errors import QuantplanError

TWO_H100 = (
    "NVIDIA H100 80GB HBM3, 81559 MiB, 9.0, 550.54.15\n"
    "NVIDIA H100 80GB HBM3, 81559 MiB, 9.0, 550.54.15\n"
)


def quantplan(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.stderr = " ".join(result.stderr.split())  # rich wraps at the terminal width
    return result


@pytest.fixture(scope="module")
def default_gguf() -> Path:
    from quantplan.agent.model_source import default_gguf

    return default_gguf()


def test_the_first_gpus_nvidia_smi_lists_without_cuda_visible_devices() -> None:
    inventory = inventory_from_outputs(TWO_H100)
    assignment = host_gpu_assignment(inventory, 1, None)
    assert assignment.visible_devices == ("0",)
    assert assignment.accelerator_type == "H100"
    assert host_gpu_assignment(inventory, 2, None).visible_devices == ("0", "1")


def test_cuda_visible_devices_decides_which_and_how_many() -> None:
    inventory = inventory_from_outputs(TWO_H100)
    assert host_gpu_assignment(inventory, 1, "1,0").visible_devices == ("1",)
    # CUDA stops at the first invalid entry: "-1" and an empty value hide every GPU.
    for hidden in ("-1", "", "-1,0"):
        with pytest.raises(QuantplanError, match="leaves 0 of them") as refused:
            host_gpu_assignment(inventory, 1, hidden)
        assert "CUDA_VISIBLE_DEVICES" in (refused.value.hint or "")
    with pytest.raises(QuantplanError, match="--gpus 2: CUDA_VISIBLE_DEVICES='1' leaves 1"):
        host_gpu_assignment(inventory, 2, "1")


def test_more_gpus_than_the_host_has_or_none_at_all() -> None:
    with pytest.raises(QuantplanError, match=r"--gpus 4: this host has 2x H100") as refused:
        host_gpu_assignment(inventory_from_outputs(TWO_H100), 4, None)
    assert "at most 2" in (refused.value.hint or "")
    with pytest.raises(QuantplanError, match="no NVIDIA GPU") as refused:
        host_gpu_assignment(inventory_from_outputs(""), 1, None)
    assert "leave out --gpus" in (refused.value.hint or "")


def test_a_partial_offload_puts_the_first_layers_on_the_assigned_gpus(tmp_path: Path) -> None:
    """What ``serve --gpus 1 --gpu-layers 12`` starts: the CUDA llama-server on GPU 1 (as
    CUDA_VISIBLE_DEVICES named it) with 12 layers there and the rest on the host."""
    from quantplan.agent.serve.engine import ArtifactInfo, ServeOptions

    binary = tmp_path / "llama-server"
    server = LlamaCudaServer(
        host_gpu_assignment(inventory_from_outputs(TWO_H100), 1, "1"), binary=binary
    )
    model = ArtifactInfo(path=tmp_path / "m.gguf", format="gguf", quant_method="F16", size_bytes=1)
    command = server.command(Path(sys.executable), model, ServeOptions(gpu_layers=12), 8080)
    assert command[0] == str(binary)
    assert command[command.index("--n-gpu-layers") + 1] == "12"
    assert "--split-mode" not in command  # one GPU: nothing to split
    environment = server.environment(ServeOptions())
    assert environment["CUDA_VISIBLE_DEVICES"] == "1"
    assert server.native_binary  # served without building the Python toolchain


def test_gpu_layers_without_gpus_is_a_usage_error(default_gguf: Path) -> None:
    result = quantplan("serve", str(default_gguf), "--gpu-layers", "10")
    assert result.returncode == 2, result.stderr
    assert "--gpu-layers places layers on GPUs: it needs --gpus" in result.stderr
    assert "Traceback" not in result.stderr


def test_gpu_layers_is_refused_for_an_engine_without_partial_offload(default_gguf: Path) -> None:
    result = quantplan(
        "serve", str(default_gguf), "--engine", "vllm", "--gpus", "1", "--gpu-layers", "10"
    )
    assert result.returncode == 2, result.stderr
    assert "--gpu-layers (partial offload) does not apply to vllm" in result.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has nvidia-smi")
def test_gpus_on_a_host_without_a_gpu_say_so_in_one_line(default_gguf: Path) -> None:
    result = quantplan("serve", str(default_gguf), "--gpus", "1")
    assert result.returncode == 2, result.stderr
    assert "--gpus 1: nvidia-smi lists no NVIDIA GPU on this host" in result.stderr
    assert "Traceback" not in result.stderr


def test_gpus_must_be_a_small_count(default_gguf: Path) -> None:
    result = quantplan("serve", str(default_gguf), "--gpus", "-1")
    assert result.returncode == 2
    assert "--gpus" in result.stderr
