"""vLLM's tensor parallelism: only GPU counts that split the attention heads evenly."""

from __future__ import annotations

import numpy as np
import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.candidates import tensor_parallel_problem
from quantplan.planner.decide import prepare
from quantplan.planner.targets import ModelShape, Targets, Workload


def _shape(heads: int, kv_heads: int) -> ModelShape:
    return ModelShape(
        name="m", parameters_b=1, layers=4, hidden_size=heads * 64, heads=heads,
        kv_heads=kv_heads, head_dim=64, vocab_size=1000, max_context=4096,
    )  # fmt: skip


def test_heads_and_kv_heads_must_split_or_replicate() -> None:
    assert tensor_parallel_problem(_shape(32, 8), 1) is None
    assert tensor_parallel_problem(_shape(32, 8), 8) is None
    assert tensor_parallel_problem(_shape(64, 8), 16) is None  # KV heads replicated twice
    assert tensor_parallel_problem(_shape(9, 3), 3) is None
    problem = tensor_parallel_problem(_shape(9, 3), 2)
    assert problem is not None and "9 attention heads" in problem
    assert tensor_parallel_problem(_shape(32, 6), 4) is not None  # 6 KV heads over 4 GPUs


def test_smollm2_is_not_sharded_by_vllm_over_two_or_more_gpus(shipped: CatalogSnapshot) -> None:
    """SmolLM2 has 9 heads and 3 KV heads: before, vLLM replicas over 2, 4 and 8 GPUs were
    candidates (vLLM refuses to start them)."""
    targets = Targets(model="SmolLM2-135M-Instruct", workload=Workload(requests_per_s=1))
    space = prepare(targets, shipped).space
    gpus = np.array([m.accelerator_count for m in space.machines])
    vllm = np.array([o.engine == "vllm" for o in space.options])
    llama = ~vllm
    multi = gpus >= 2
    assert multi.any() and not space.compatible[np.ix_(vllm, multi)].any()
    reasons = {space.reasons[r] for r in space.compat_reason[np.ix_(vllm, multi)].ravel()}
    assert any("tensor parallel" in r for r in reasons)
    assert space.compatible[np.ix_(llama, multi)].any()  # llama.cpp splits by layers


def test_an_allreduce_is_latency_bound_when_small_and_bandwidth_bound_when_large() -> None:
    """One all-reduce over n GPUs moves 2 (n - 1) / n of the message per GPU; small messages
    cost the fixed latency (one-shot over NVLink, NCCL's ring over PCIe), large ones the
    link's bandwidth."""
    from quantplan.planner.hardware import NVLINK3, PCIE_GEN4, allreduce_seconds

    def seconds(size: float, gpus: int, link: object) -> float:
        return float(
            allreduce_seconds(
                size,
                gpus,
                link.bandwidth_gbps,
                link.ring_latency_s,
                link.one_shot,  # type: ignore[attr-defined]
            )
        )

    assert seconds(1e6, 1, NVLINK3) == 0.0  # one GPU: nothing to reduce
    # A batch-1 decode step of a 70B (8,192 x 16-bit = 16 KB): about 10 us over NVLink, the
    # PCIe ring's 42 us latency without NVLink.
    assert 9e-6 < seconds(16384, 8, NVLINK3) < 12e-6
    assert 42e-6 < seconds(16384, 8, PCIE_GEN4) < 45e-6
    # A 10,240-token prompt of a 7B (84 MB): the ring at 70 % of 300 GB/s per direction.
    prompt = 10240 * 4096 * 2.0
    assert seconds(prompt, 8, NVLINK3) == pytest.approx(
        25e-6 + 2 * 7 / 8 * prompt / (0.7 * 300e9), rel=1e-9
    )
    assert seconds(prompt, 8, PCIE_GEN4) > 8 * seconds(prompt, 8, NVLINK3)
    assert seconds(prompt, 2, NVLINK3) < seconds(prompt, 8, NVLINK3)


def _decode_step(context, engine: str, scheme: str, instance: str, gpus: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    space = context.space
    s = next(
        k for k, o in enumerate(space.options) if o.engine == engine and o.scheme.name == scheme
    )
    i = next(
        k
        for k, x in enumerate(space.instances)
        if x.name == instance and space.machines[k].accelerator_count == gpus
    )
    return context.perf.decode_step_s[s, i]


def test_tensor_parallel_replicas_pay_the_allreduces_and_do_not_scale_linearly(
    shipped: CatalogSnapshot,
) -> None:
    """vLLM on 1, 2, 4 and 8 A100s of a p4d: each GPU reads 1/n of the weights, but every
    layer all-reduces twice, so a batch-1 step of an 8B model gains far less than n times
    (the fixed step overhead and the all-reduces do not shrink), and the step grows with the
    batch faster than on one GPU (the all-reduced activations grow with it)."""
    bare = shipped.model_copy(update={"profiles": ()})  # the roofline alone, no calibration
    targets = Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=1))
    context = prepare(targets, bare)
    steps = {n: _decode_step(context, "vllm", "bf16", "p4d.24xlarge", n) for n in (1, 2, 4, 8)}
    assert steps[1][0] > steps[2][0] > steps[4][0] > steps[8][0]
    assert steps[1][0] / steps[8][0] < 4.0
    # 2 all-reduces x 32 layers of ~10 us each on top of the 8-way split roofline.
    shape = context.space.shape
    weights = context.perf.weights_gb[0]
    split_roofline = weights / (8 * 1555 * 0.8) + 0.002 + 2e-5 * shape.layers
    assert steps[8][0] - split_roofline == pytest.approx(64 * 9.6e-6, rel=0.2)
    growth = (steps[8][-1] - steps[8][0]) / (steps[1][-1] - steps[1][0])
    assert growth > 1 / 8  # the per-sequence cost shrinks less than the weights' share


def test_llama_cpp_layer_split_has_no_allreduce(shipped: CatalogSnapshot) -> None:
    """llama.cpp runs a layer split (each GPU holds whole layers, in turn): one GPU's speed,
    no all-reduce, so its step is the same on 1 and on 4 GPUs."""
    bare = shipped.model_copy(update={"profiles": ()})
    targets = Targets(model="Llama-3.1-8B", workload=Workload(requests_per_s=1))
    context = prepare(targets, bare)
    one = _decode_step(context, "llama.cpp", "gguf-q4_k_m", "g6.24xlarge", 1)
    four = _decode_step(context, "llama.cpp", "gguf-q4_k_m", "g6.24xlarge", 4)
    assert np.allclose(one, four)
