"""Memory sizing: weights, KV cache, usable memory and what fits where."""

from __future__ import annotations

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import make_plan
from quantplan.planner.hardware import (
    kv_gb_per_token,
    max_sequences,
    model_shape_from_record,
    replica_hardware,
    weight_gb,
)
from quantplan.planner.targets import Constraints, Targets, Workload
from quantplan.planner.traits import engine_traits, method_traits


def _instance(snapshot: CatalogSnapshot, name: str):  # type: ignore[no-untyped-def]
    return next(i for i in snapshot.instances if i.name == name)


def test_weight_bytes_match_published_checkpoint_sizes(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-3.1-8B"))

    def weights(scheme_name: str) -> float:
        scheme = shipped.get_scheme(scheme_name)
        return weight_gb(shape, scheme, method_traits(shipped, scheme.family))

    # W4A16-g128 with 16-bit embeddings and lm_head: about 5.7 GB (reference notes, section 6).
    assert weights("gptq-w4a16-g128") == pytest.approx(5.7, abs=0.15)
    # Q4_K_M is a whole-model mix of 4.8944 bpw: 4.58 GiB = 4.92 GB in llama.cpp's table.
    assert weights("gguf-q4_k_m") == pytest.approx(4.92, abs=0.05)
    assert weights("bf16") == pytest.approx(16.06, abs=0.01)


def test_kv_cache_per_token_uses_kv_heads(shipped: CatalogSnapshot) -> None:
    gqa = model_shape_from_record(shipped.get_model("Llama-3.1-8B"))  # 8 KV heads
    mha = model_shape_from_record(shipped.get_model("Llama-2-7B"))  # 32 KV heads
    assert kv_gb_per_token(gqa) == pytest.approx(2 * 32 * 8 * 128 * 2 / 1e9)
    assert kv_gb_per_token(mha) == pytest.approx(4 * kv_gb_per_token(gqa))


def test_multi_gpu_replica_pools_memory_and_bandwidth_for_vllm_only(
    shipped: CatalogSnapshot,
) -> None:
    one, four = _instance(shipped, "g6.xlarge"), _instance(shipped, "g6.24xlarge")
    l4 = shipped.get_hardware("L4")
    vllm, llama_cpp = (
        engine_traits(shipped, "vllm", "gpu"),
        engine_traits(shipped, "llama.cpp", "gpu"),
    )
    single, pooled = replica_hardware(one, l4, vllm), replica_hardware(four, l4, vllm)
    assert pooled.usable_memory_gb == pytest.approx(4 * single.usable_memory_gb)
    assert pooled.bandwidth_gbps > 3 * single.bandwidth_gbps
    layer_split = replica_hardware(four, l4, llama_cpp)
    assert layer_split.bandwidth_gbps == pytest.approx(l4.memory_bandwidth_gbps)


def test_cpu_vm_gets_a_core_share_of_its_socket(shipped: CatalogSnapshot) -> None:
    spr = shipped.get_hardware("Xeon-SapphireRapids")
    llama_cpp = engine_traits(shipped, "llama.cpp", "cpu")
    small = replica_hardware(_instance(shipped, "c7i.2xlarge"), spr, llama_cpp)
    large = replica_hardware(_instance(shipped, "c7i.48xlarge"), spr, llama_cpp)
    assert large.bandwidth_gbps == pytest.approx(2 * spr.memory_bandwidth_gbps)  # 2 sockets
    assert small.bandwidth_gbps == pytest.approx(spr.memory_bandwidth_gbps * 4 / 48)


def test_max_sequences_is_zero_when_weights_do_not_fit() -> None:
    assert max_sequences(20.0, 25.0, 0.1) == 0
    assert max_sequences(20.0, 10.0, 0.5) == 20


def test_a_70b_model_in_16_bit_never_lands_on_a_24gb_gpu(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-70B",
        workload=Workload(requests_per_s=0.5),
        constraints=Constraints(
            accelerator_allow=("L4", "A10G"), families=("baseline",), max_replicas=64
        ),
    )
    plan = make_plan(targets, shipped)
    for deployment in plan.fleet:  # 4- or 8-GPU L4/A10G machines may hold it; 1-GPU ones not
        assert deployment.accelerator_count >= 4
        assert deployment.metrics.memory_gb <= deployment.metrics.memory_capacity_gb


def test_memory_rejection_names_the_sizes(shipped: CatalogSnapshot) -> None:
    targets = Targets(
        model="Llama-3.1-70B",
        workload=Workload(requests_per_s=0.5),
        constraints=Constraints(instance_allow=("g6.xlarge", "g5.xlarge"), families=("baseline",)),
    )
    plan = make_plan(targets, shipped)
    assert not plan.feasible
    memory = [r for r in plan.rejected if r.stage == "memory"]
    assert memory and "GB" in memory[0].reason and "usable" in memory[0].reason


def test_multi_gpu_instances_can_hold_several_replicas(shipped: CatalogSnapshot) -> None:
    from quantplan.planner.hardware import machine_shares

    p5 = _instance(shipped, "p5.48xlarge")
    shares = machine_shares(p5, shipped.get_hardware(p5.hardware))
    assert [(s.accelerator_count, s.replicas_per_instance) for s in shares] == [
        (1, 8), (2, 4), (4, 2), (8, 1),
    ]  # fmt: skip
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=200),
        constraints=Constraints(instance_allow=("p5.48xlarge",)),
    )
    plan = make_plan(targets, shipped)
    assert plan.choice is not None
    # An 8B model needs no 8-way split: at volume, replicas are packed onto the GPUs.
    assert plan.choice.replicas_per_instance > 1
    assert plan.choice.instances == -(-plan.choice.replicas // plan.choice.replicas_per_instance)
