"""Partial GPU offload: llama.cpp GGUF options a GPU's memory rejects run split by layers."""

from __future__ import annotations

import numpy as np
import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan, prepare
from quantplan.planner.offload import HOST, layers_on_gpu, split_step_times
from quantplan.planner.targets import Constraints, Slos, Targets, Workload


def test_the_most_layers_whose_weights_and_kv_fit_go_to_the_gpu() -> None:
    # 80 layers of 0.5 GB, 0.01 GB of KV a layer per sequence: 20.1 GB hold 39 layers.
    on_gpu, sequences = layers_on_gpu(80, 40.0, 0.8, 20.1, 100.0, 64)
    assert on_gpu == 39
    assert 39 * (0.5 + 0.01) <= 20.1 < 40 * (0.5 + 0.01)
    assert sequences == int((20.1 - 39 * 0.5) / (39 * 0.01))  # the GPU's KV room binds
    assert layers_on_gpu(80, 40.0, 0.8, 0.3, 100.0, 64) == (0, 0)  # not one layer fits
    assert layers_on_gpu(80, 40.0, 0.8, 20.1, 15.0, 64) == (0, 0)  # the host cannot hold the rest
    assert layers_on_gpu(80, 40.0, 0.8, 60.0, 100.0, 64)[0] == 79  # never all: that is no split


def test_the_step_is_the_sum_of_the_gpu_and_host_parts() -> None:
    batch = np.array([1.0, 16.0])
    common = dict(
        weights_read_gb=4.0,
        kv_read_gb_per_sequence=0.001,
        active_params=8e9,
        input_tokens=128,
        batch=batch,
        vcpus=16.0,
    )
    gpu = np.array([0.004, 0.008])
    all_gpu, pre = split_step_times(1.0, gpu, 0.01, **common)  # type: ignore[arg-type]
    assert np.allclose(all_gpu, gpu) and pre == pytest.approx(0.01)
    quarter, pre_quarter = split_step_times(0.25, gpu, 0.01, **common)  # type: ignore[arg-type]
    host_read = 0.75 * (4.0 + batch * 0.001) / (16 * HOST.bandwidth_gbps_per_vcpu)
    host_compute = 0.75 * 2 * 8e9 * batch / (16 * HOST.tflops_per_vcpu * 1e12)
    assert np.allclose(quarter, 0.25 * gpu + np.maximum(host_read, host_compute))
    assert pre_quarter == pytest.approx(0.25 * 0.01 + 0.75 * 4.0 / HOST.copy_gbps)


def _l4_plan(shipped: CatalogSnapshot) -> Targets:
    return Targets(
        model="Llama-3.1-70B",
        workload=Workload(requests_per_s=0.01, input_tokens=256, output_tokens=128),
        slos=Slos(mode="batch"),
        constraints=Constraints(engines=("llama.cpp",), accelerator_allow=("L4",), device="gpu"),
    )


def test_a_70b_gguf_on_one_l4_is_planned_with_part_of_its_layers_on_the_gpu(
    shipped: CatalogSnapshot,
) -> None:
    """A 70B Q4_K_M (about 42 GB) does not fit one L4 (24 GB): before, every L4 column was
    rejected for memory; now the GPU takes what it holds and the host the rest."""
    targets = _l4_plan(shipped)
    plan = make_plan(targets, shipped)
    assert plan.feasible
    deployment = plan.fleet[0]
    assert deployment.accelerator_count == 1 and deployment.total_layers == 80
    assert deployment.gpu_layers is not None and 1 <= deployment.gpu_layers < 80
    metrics = deployment.metrics
    assert metrics.memory_gb <= metrics.memory_capacity_gb  # the GPU's share fits it
    assert any("partial GPU offload" in a for a in plan.assumptions)
    assert deployment.metrics.output_tokens_per_s.basis == "modeled"

    context = prepare(targets, shipped)
    perf, space = context.perf, context.space
    s = next(
        k for k, o in enumerate(space.options) if (o.scheme.name, o.engine)
        == (deployment.scheme, "llama.cpp")
    )  # fmt: skip
    i = next(
        k
        for k, (instance, machine) in enumerate(zip(space.instances, space.machines, strict=True))
        if instance.name == deployment.instance.name and machine.accelerator_count == 1
    )
    on_gpu = int(perf.gpu_layers[s, i])
    assert on_gpu == deployment.gpu_layers and perf.max_sequences[s, i] >= 1
    # At least the host's read of its layers: far slower than the L4's 300 GB/s.
    host_share = 1 - on_gpu / 80
    vcpus = space.machines[i].vcpus
    host_read = host_share * perf.weights_gb[s] / (vcpus * HOST.bandwidth_gbps_per_vcpu)
    assert perf.decode_step_s[s, i, 0] >= host_read > 2 * perf.weights_gb[s] / 300


def test_a_model_that_fits_the_gpu_is_not_split(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=1),
        constraints=Constraints(engines=("llama.cpp",), device="gpu"),
    )
    plan = make_plan(targets, shipped)
    assert plan.feasible
    assert all(d.gpu_layers is None and d.total_layers is None for d in plan.fleet)
    assert not any("partial GPU offload" in a for a in plan.assumptions)
    context = prepare(targets, shipped)
    vllm = [k for k, o in enumerate(context.space.options) if o.engine == "vllm"]
    assert not context.perf.gpu_layers[vllm].any()  # only llama.cpp splits by layers
