"""Partial GPU offload: llama.cpp GGUF options a GPU's memory rejects run split by layers."""

from __future__ import annotations

import numpy as np
import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan, prepare
from quantplan.planner.offload import HOST, layers_on_gpu, output_layer_gb, split_step_times
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


def test_the_output_layer_stays_on_the_host_in_any_split() -> None:
    """llama.cpp moves the output layer to the GPU only past the block count: with every block
    on the GPU, the host still reads it each step and copies it for each prompt."""
    batch = np.array([1.0])
    common = dict(
        weights_read_gb=16.0,
        kv_read_gb_per_sequence=0.0,
        active_params=8e9,
        input_tokens=128,
        batch=batch,
        vcpus=16.0,
    )
    gpu = np.array([0.005])
    blocks_only, prefill = split_step_times(  # type: ignore[arg-type]
        1.0, gpu, 0.01, output_read_gb=1.0, **common
    )
    host_share = 1.0 / 16.0
    host_step = 16.0 / (16 * HOST.bandwidth_gbps_per_vcpu)
    assert np.allclose(blocks_only, (1 - host_share) * gpu + host_share * host_step)
    assert blocks_only[0] > gpu[0]  # slower than a full offload
    assert prefill == pytest.approx((1 - host_share) * 0.01 + 1.0 / HOST.copy_gbps)
    half, _ = split_step_times(0.5, gpu, 0.01, output_read_gb=1.0, **common)  # type: ignore[arg-type]
    without, _ = split_step_times(0.5, gpu, 0.01, **common)  # type: ignore[arg-type]
    assert half[0] > without[0]  # the host holds half the blocks and the whole output layer
    # Memory: the output layer's 4 GB stay on the host, so the GPU takes more blocks of the rest
    # and the host needs room for them.
    assert layers_on_gpu(80, 40.0, 0.8, 20.1, 100.0, 64, output_gb=4.0)[0] == 43
    assert layers_on_gpu(80, 40.0, 0.8, 20.1, 21.0, 64, output_gb=4.0) == (0, 0)


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
    # At least the host's read of its layers and the output layer: far slower than the L4's
    # 300 GB/s.
    output = output_layer_gb(space.shape, space.options[s].scheme)
    host_gb = (1 - on_gpu / 80) * (perf.weights_gb[s] - output) + output
    vcpus = space.machines[i].vcpus
    host_read = host_gb / (vcpus * HOST.bandwidth_gbps_per_vcpu)
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
