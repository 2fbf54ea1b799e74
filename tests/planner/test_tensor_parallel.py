"""vLLM's tensor parallelism: only GPU counts that split the attention heads evenly."""

from __future__ import annotations

import numpy as np

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.candidates import tensor_parallel_problem
from quantplan.planner.planning import prepare
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
