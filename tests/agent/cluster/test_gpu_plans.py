"""GPU plans without a cluster: what apply accepts and refuses, and the exact command and
environment of a GPU replica (vLLM's CUDA build cannot run here; its command is what we test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plans import GPU_INSTANCE, gpu_plan, seed_snapshot

from quantplan.agent.cluster import deployment_state as states
from quantplan.agent.cluster.gpu_engines import (
    GpuAssignment,
    LlamaCudaServer,
    VllmCudaServer,
    gpu_host_hardware,
)
from quantplan.agent.cluster.jobs import ServeJob
from quantplan.agent.cluster.naming import NodeOffer, node_offer
from quantplan.agent.cluster.validation import catalog_refusals, cluster_refusals
from quantplan.agent.serve.engine import ArtifactInfo, ServeOptions
from quantplan.agent.serve.host import HostHardware
from quantplan.agent.serve.manager import engine_environment
from quantplan.agent.toolchains.gpu import fake_inventory
from quantplan.errors import QuantplanError

CPU_HOST = HostHardware(device_kind="cpu", cpu_model="Xeon", logical_cpus=2, memory_gb=24.0)


def test_a_gpu_plan_with_a_gpu_kernel_is_accepted() -> None:
    plan = gpu_plan()
    assert catalog_refusals(plan, seed_snapshot(), model_dir="/models/llama") == []


def test_vllm_replicas_only_get_gpu_counts_that_split_the_model() -> None:
    # SmolLM2 has 9 attention heads: two GPUs cannot share them evenly (the planner's rule).
    plan = gpu_plan(model="SmolLM2-135M-Instruct")
    reasons = catalog_refusals(plan, seed_snapshot())
    assert reasons == [
        "fleet[0]: vLLM tensor parallel over 2 GPUs needs SmolLM2-135M-Instruct's 9 attention "
        "heads and 3 KV heads to split evenly across them"
    ]


def test_the_cluster_check_names_the_missing_gpus_and_what_the_cluster_has() -> None:
    plan = gpu_plan()
    right = NodeOffer(instance_type=GPU_INSTANCE, gpus=4, accelerator_type="L4", fake_gpus=True)
    assert cluster_refusals(plan, [right]) == []
    wrong_type = right.model_copy(update={"accelerator_type": "A10G"})
    assert cluster_refusals(plan, [wrong_type]) == [
        "bf16 (vllm) needs 1 node(s) of g6.24xlarge with 4 GPU(s) of accelerator_type:L4 "
        "(2 replica(s) of 2); 0 alive node(s) have them (the cluster has: g6.24xlarge with 4 "
        "A10G GPU (fake))"
    ]
    (no_gpus,) = cluster_refusals(plan, [GPU_INSTANCE])
    assert no_gpus.endswith("(the cluster has: g6.24xlarge (no GPU))")
    too_few = right.model_copy(update={"gpus": 2})
    assert "0 alive node(s) have them" in cluster_refusals(plan, [too_few])[0]


def test_fake_gpus_are_read_back_from_a_nodes_resources() -> None:
    resources = {
        "CPU": 48.0,
        "GPU": 4.0,
        "instance:g6.24xlarge": 1.0,
        "accelerator_type:L4": 1.0,
        "quantplan:fake_gpus": 4.0,
    }
    offer = node_offer(resources)
    assert offer == NodeOffer(
        instance_type="g6.24xlarge", gpus=4, accelerator_type="L4", fake_gpus=True
    )
    assert offer.describe() == "g6.24xlarge with 4 L4 GPU (fake)"


def _replica_job() -> ServeJob:
    (spec, _) = states.replica_specs(gpu_plan(), "llama")
    return ServeJob(
        job_id="serve-1",
        replica_id=spec.replica_id,
        engine="vllm",
        artifact_path="/m",
        **states.serve_shape(spec),
    )


def test_a_gpu_replica_is_sized_by_the_plan() -> None:
    job = _replica_job()
    # Two GPUs of the plan's type, the planner's memory share, the plan's concurrency, and
    # twice the plan's 512 + 128 token request as context (not a fixed 2,048).
    assert (job.gpus, job.accelerator_type, job.gpu_memory_fraction) == (2, "L4", 0.9)
    assert job.parallel_slots == gpu_plan().fleet[0].metrics.concurrency
    assert job.max_model_len == 1280


def test_the_command_and_environment_of_a_two_gpu_vllm_replica(tmp_path: Path) -> None:
    job = _replica_job()
    model = ArtifactInfo(path=tmp_path / "llama", format="hf", quant_method="none", size_bytes=1)
    engine = VllmCudaServer(GpuAssignment(visible_devices=("2", "3"), accelerator_type="L4"))
    options = ServeOptions(
        port=8011, max_model_len=job.max_model_len, parallel_slots=job.parallel_slots
    )
    python = Path("/cache/toolchains/vllm-cuda-abc/bin/python")
    assert engine.toolchain == "vllm-cuda"
    assert engine.command(python, model, options, 8011) == [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tmp_path / "llama"),
        "--served-model-name",
        engine.served_model_name(model, options),
        "--host",
        "127.0.0.1",
        "--port",
        "8011",
        "--max-model-len",
        "1280",
        "--generation-config=vllm",
        "--tensor-parallel-size",
        "2",
        "--gpu-memory-utilization",
        "0.9",
        "--max-num-seqs",
        str(job.parallel_slots),
    ]
    environment = engine_environment(engine, options)
    assert environment["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert environment["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "VLLM_CPU_KVCACHE_SPACE" not in environment  # the CPU build's setting


def test_vllm_cuda_refuses_a_host_without_a_gpu_and_invalid_degrees(tmp_path: Path) -> None:
    model = ArtifactInfo(path=tmp_path, format="hf", quant_method="none", size_bytes=1)
    engine = VllmCudaServer(GpuAssignment(visible_devices=("0",)))
    ok, reason = engine.can_run(CPU_HOST, model)
    assert not ok and reason.startswith("vLLM's CUDA build needs an NVIDIA GPU; this host has none")
    fake = gpu_host_hardware(CPU_HOST, fake_inventory("L4", 4))
    assert engine.can_run(fake, model)[0] and fake.gpu_name == "L4 (fake)"
    with pytest.raises(QuantplanError, match="not 3"):
        VllmCudaServer(GpuAssignment(visible_devices=("0", "1", "2")))


def test_llama_cpp_offloads_every_layer_split_across_its_gpus(tmp_path: Path) -> None:
    # No plan puts 0 layers on a GPU replica's GPU: 0, like the default -1, means all of them.
    model = ArtifactInfo(path=tmp_path / "m.gguf", format="gguf", quant_method="F16", size_bytes=1)
    engine = LlamaCudaServer(
        GpuAssignment(visible_devices=("0", "1")), binary=Path("/b/llama-server")
    )
    options = ServeOptions(max_model_len=1280, parallel_slots=8, gpu_layers=0)
    command = engine.command(Path("/py"), model, options, 9000)
    assert command[0] == "/b/llama-server"
    assert command[command.index("--n-gpu-layers") + 1] == "999"  # all of them: -ngl
    assert command[command.index("--ctx-size") + 1] == str(8 * 1280)
    assert command[-2:] == ["--split-mode", "layer"]
    assert engine_environment(engine, options)["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_llama_cpp_puts_only_the_plans_gpu_layers_on_the_gpu(tmp_path: Path) -> None:
    plan = gpu_plan(gpus_per_replica=1, engine="llama.cpp")
    split = plan.fleet[0].model_copy(update={"gpu_layers": 24, "total_layers": 32})
    plan = plan.model_copy(update={"fleet": (split,)})
    spec = states.replica_specs(plan, "llama")[0]
    job = ServeJob(
        job_id="serve-1",
        replica_id=spec.replica_id,
        engine="llama.cpp",
        artifact_path="/m.gguf",
        **states.serve_shape(spec),
    )
    assert job.gpu_layers == 24
    model = ArtifactInfo(
        path=tmp_path / "m.gguf", format="gguf", quant_method="Q4_K_M", size_bytes=1
    )
    engine = LlamaCudaServer(GpuAssignment(visible_devices=("0",)), binary=Path("/b/llama-server"))
    options = ServeOptions(parallel_slots=4, gpu_layers=job.gpu_layers or -1)
    command = engine.command(Path("/py"), model, options, 9000)
    assert command[command.index("--n-gpu-layers") + 1] == "24"  # -ngl 24: the rest on the host
    assert "--split-mode" not in command
    # A plan without a split names no layers: every one goes to the GPU, as before.
    whole = states.serve_shape(states.replica_specs(gpu_plan(engine="llama.cpp"), "llama")[0])
    assert "gpu_layers" not in whole


def test_cluster_up_fake_gpus_declares_the_catalogs_gpus_as_marked_logical_resources() -> None:
    from quantplan.agent.cluster.local import build_request
    from quantplan.agent.cluster.local_host import worker_resources

    request = build_request(f"{GPU_INSTANCE},c7i.xlarge", database_url="sqlite://", fake_gpus=True)
    gpu, cpu = request.workers
    assert (gpu.fake_gpus, gpu.accelerator_type, cpu.fake_gpus) == (4, "L4", 0)
    assert worker_resources(gpu) == {
        f"instance:{GPU_INSTANCE}": 1.0,
        "quantplan:node": 1.0,
        "accelerator_type:L4": 1.0,
        "quantplan:fake_gpus": 4.0,
    }
    assert node_offer({**worker_resources(gpu), "GPU": 4.0}).fake_gpus  # type: ignore[union-attr]
    plain = build_request(GPU_INSTANCE, database_url="sqlite://")  # no --fake-gpus: no GPUs
    assert plain.workers[0].fake_gpus == 0
