"""GPU quantization and GPU cost per token, without Ray: where a quantize job is placed, what
its GPU scope changes for the toolchains it runs, and how a GPU replica's measured profile is
filed in the catalog (recorded nvidia-smi outputs of an H200 and an L4 host)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench_sweeps import sweep_level, sweep_of, sweep_profile_report
from sqlmodel import Session

from quantplan.agent.cluster.gpu_provenance import (
    UnknownGpuError,
    catalog_gpu_name,
    gpu_profile_placement,
)
from quantplan.agent.cluster.naming import NodeOffer
from quantplan.agent.cluster.quantize_placement import place_quantize
from quantplan.agent.serve.host import HostHardware
from quantplan.agent.toolchains import Toolchain, get_spec, run_step
from quantplan.agent.toolchains.gpu import fake_inventory, inventory_from_outputs
from quantplan.agent.toolchains.gpu_scope import NoGpuForStepError, using_gpus
from quantplan.agent.toolchains.steps import step_environment
from quantplan.catalog.db import open_catalog
from quantplan.catalog.models import Run
from quantplan.catalog.reports import record_report
from quantplan.catalog.snapshot import load_snapshot

RECORDED = Path(__file__).parent / "nvidia_smi"
CPU_NODE = NodeOffer(instance_type="c7i.xlarge")
L4_NODE = NodeOffer(instance_type="g6.24xlarge", gpus=4, accelerator_type="L4")
HOST = HostHardware(device_kind="cpu", cpu_model="Intel Xeon", logical_cpus=16, memory_gb=64)


def recorded(host: str):  # type: ignore[no-untyped-def]
    return inventory_from_outputs(
        (RECORDED / f"{host}.csv").read_text(), (RECORDED / f"{host}-header.txt").read_text()
    )


# -- where a quantize job runs -----------------------------------------------------------


def test_gptq_and_awq_go_to_a_gpu_node_when_the_cluster_has_one() -> None:
    for method in ("gptq", "awq"):
        placement = place_quantize(method, {"c7i.xlarge"}, [CPU_NODE, L4_NODE])
        assert placement.gpus == 1
        # Any GPU node beats the CPU replicas' own nodes: the artifact goes through the store.
        assert placement.instance_types == {"g6.24xlarge"}
        assert "L4 GPU of g6.24xlarge" in placement.reason


def test_quantize_stays_on_cpu_without_a_gpu_node_or_a_cuda_build() -> None:
    placement = place_quantize("gptq", {"c7i.xlarge"}, [CPU_NODE])
    assert (placement.gpus, placement.instance_types) == (0, {"c7i.xlarge"})
    assert "no GPU node in the cluster" in placement.reason
    # GGUF conversion has no CUDA toolchain: CPU nodes of the replicas, GPU node or not.
    placement = place_quantize("gguf", {"c7i.xlarge"}, [CPU_NODE, L4_NODE])
    assert (placement.gpus, placement.instance_types) == (0, {"c7i.xlarge"})


def test_a_gpu_node_of_the_replicas_own_type_is_preferred() -> None:
    h100 = NodeOffer(instance_type="p5.48xlarge", gpus=8, accelerator_type="H100")
    placement = place_quantize("awq", {"g6.24xlarge"}, [h100, L4_NODE])
    assert placement.instance_types == {"g6.24xlarge"}


# -- what a job holding GPUs changes for its toolchains ------------------------------------


def test_a_job_on_leased_gpus_gets_the_cuda_toolchain_and_only_its_gpus() -> None:
    assert get_spec("llmcompressor").name == "llmcompressor"
    with using_gpus(("2",)):
        spec = get_spec("llmcompressor")
        assert spec.name == "llmcompressor-cuda" and spec.requires_gpu
        assert "torch==2.14.0\n" in spec.lock_text()  # PyPI's CUDA wheel, not +cpu
        assert get_spec("llama-cpp").name == "llama-cpp"  # no CUDA build of the GGUF tools
        environment = step_environment()
        assert environment["CUDA_VISIBLE_DEVICES"] == "2"
        assert environment["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert get_spec("llmcompressor").name == "llmcompressor"  # the scope ended


def test_the_cuda_quantizer_refuses_to_run_on_a_host_without_a_gpu(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Nothing(BaseModel):
        pass

    toolchain = Toolchain(
        name="llmcompressor-cuda",
        key="test",
        root=tmp_path,
        python_version="3.11",
        versions={},
        built_at=datetime.now(UTC),
        build_seconds=0,
    )
    with pytest.raises(NoGpuForStepError) as refused:  # this CPU machine has no nvidia-smi
        run_step(toolchain, "llmc_quantize", Nothing(), Nothing)
    assert "\n" not in refused.value.message
    assert "llmcompressor-cuda is a CUDA build and needs an NVIDIA GPU" in refused.value.message


# -- GPU cost per token: the profile row ---------------------------------------------------


@pytest.mark.parametrize(("host", "hardware"), [("h200", "H200"), ("l4", "L4")])
def test_recorded_gpus_map_to_the_catalogs_hardware_names(host: str, hardware: str) -> None:
    assert catalog_gpu_name(recorded(host).devices[0].name) == hardware
    assert catalog_gpu_name("NVIDIA H100 80GB HBM3") == "H100-SXM"


def test_an_unknown_gpu_is_refused_rather_than_filed_under_a_near_miss() -> None:
    with pytest.raises(UnknownGpuError) as refused:
        catalog_gpu_name("NVIDIA H100 PCIe")  # Ray calls it H100 too; the catalog has no row
    assert "'NVIDIA H100 PCIe' has no catalog hardware name" in refused.value.message


def test_a_gpu_replicas_profile_reaches_the_catalog_with_its_gpu_provenance(
    seeded_sqlite_url: str,
) -> None:
    placement = gpu_profile_placement(
        recorded("h200"),
        1,
        visible_devices=("0",),
        engine_toolchain="vllm-cuda",
        engine_versions={"vllm": "0.33.0", "torch": "2.14.0"},
        planned_hardware="H200",
    )
    report = sweep_profile_report(
        sweep_of([sweep_level(1, 0.05, 16), sweep_level(4, 0.08, 32)]),
        run_id="bench-gpu-replica-1",
        hardware=HOST,  # the node's CPU: what the engine process ran beside
        tool_versions={"quantplan": "test"},
        engine_version="vllm 0.33.0",
        extra_details=placement.details,
        gpu_hardware=placement.hardware,
        gpu_count=placement.hardware_count,
        run_hardware=placement.description,
    )
    catalog = open_catalog(seeded_sqlite_url)
    assert record_report(catalog, report) == "recorded"
    (row,) = [p for p in load_snapshot(catalog).profiles if p.run_id == "bench-gpu-replica-1"]
    with Session(catalog) as session:
        run = session.get(Run, "bench-gpu-replica-1")
        run_hardware = run.hardware if run else None
    assert (row.hardware, row.hardware_count, row.engine_version) == ("H200", 1, "vllm 0.33.0")
    gpu = row.details["gpu"]
    assert gpu["model"] == "NVIDIA H200" and gpu["count"] == 1 and gpu["fake"] is False
    assert (gpu["driver_version"], gpu["cuda_version"]) == ("580.65.06", "13.0")
    assert (gpu["compute_capability"], gpu["memory_mib"]) == ("9.0", 143771)
    assert gpu["engine_versions"] == {"vllm": "0.33.0", "torch": "2.14.0"}
    assert gpu["cuda_visible_devices"] == "0"
    assert run_hardware == "1x NVIDIA H200 (driver 580.65.06, CUDA 13.0)"


def test_fake_gpus_are_never_filed_under_a_catalog_gpu() -> None:
    placement = gpu_profile_placement(fake_inventory("L4", 4), 2, visible_devices=("0", "1"))
    assert placement.hardware is None  # the host's own CPU name is used instead
    assert placement.details["gpu"]["fake"] is True
    assert "fake" in placement.description


def test_gpu_node_types_build_the_cuda_quantizer_when_the_plan_quantizes() -> None:
    from plans import gpu_plan

    from quantplan.agent.cluster.launcher import _gpu_worker_setup

    plan = gpu_plan()  # bf16: nothing to quantize
    deployment = plan.fleet[0]
    assert _gpu_worker_setup(deployment, plan)["worker_setup_commands"] == [
        "quantplan toolchain install vllm-cuda"
    ]
    gptq = plan.model_copy(update={"fleet": [deployment.model_copy(update={"method": "gptq"})]})
    assert _gpu_worker_setup(deployment, gptq)["worker_setup_commands"] == [
        "quantplan toolchain install vllm-cuda",
        "quantplan toolchain install llmcompressor-cuda",
    ]
