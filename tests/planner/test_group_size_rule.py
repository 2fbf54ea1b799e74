"""Grouped weight-only schemes (GPTQ, AWQ) need their group size to divide every layer's input
width, per GPU where vLLM splits the layer: a plan never picks a checkpoint nobody can make."""

from __future__ import annotations

import numpy as np

from quantplan.catalog.records import SchemeRecord, group_tiling_problem
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.decide import prepare
from quantplan.planner.hardware import model_shape_from_record
from quantplan.planner.targets import ModelShape, Targets, Workload


def _scheme(snapshot: CatalogSnapshot, name: str) -> SchemeRecord:
    return snapshot.scheme_by_name[name]


def _shape(snapshot: CatalogSnapshot, name: str) -> ModelShape:
    return model_shape_from_record(next(m for m in snapshot.models if m.name == name))


def test_group_size_must_divide_each_input_width_per_gpu(shipped: CatalogSnapshot) -> None:
    g128 = _scheme(shipped, "gptq-w4a16-g128")
    smol = _shape(shipped, "SmolLM2-135M-Instruct")
    problem = group_tiling_problem(smol, g128, 1)
    assert problem is not None and "hidden size of 576" in problem
    assert group_tiling_problem(smol, _scheme(shipped, "gptq-w4a16-g64"), 1) is None
    qwen14 = _shape(shipped, "Qwen2.5-14B")
    assert all(group_tiling_problem(qwen14, g128, n) is None for n in (1, 2, 4))
    problem = group_tiling_problem(qwen14, g128, 8)
    assert problem is not None and "MLP width of 13,824 over 8 GPUs is 1,728 per GPU" in problem
    assert "pads its MLP" in problem  # the way out: a padded release's shape
    llama70 = _shape(shipped, "Llama-3.1-70B")
    assert all(group_tiling_problem(llama70, g128, n) is None for n in (1, 2, 4, 8))
    # Per-channel and GGUF schemes have no groups to tile.
    assert group_tiling_problem(smol, _scheme(shipped, "int8-w8a8"), 1) is None
    assert group_tiling_problem(smol, _scheme(shipped, "gguf-q4_k_m"), 1) is None
    # Without a known MLP width only the hidden and attention widths are checked.
    unknown = qwen14.model_copy(update={"intermediate_size": None})
    assert group_tiling_problem(unknown, g128, 8) is None


def test_smollm2_plans_never_hold_128_weight_groups(shipped: CatalogSnapshot) -> None:
    """SmolLM2-135M's 576-wide layers take groups of 64, not 128: before, the planner offered
    gptq-w4a16-g128 and awq-w4a16-g128 for it, which llm-compressor cannot make."""
    targets = Targets(model="SmolLM2-135M-Instruct", workload=Workload(requests_per_s=1))
    space = prepare(targets, shipped).space
    g128 = np.array([o.scheme.group_size == 128 for o in space.options])
    g64 = np.array([o.scheme.group_size == 64 for o in space.options])
    assert g128.any() and not space.compatible[g128].any()
    reasons = {space.reasons[r] for r in space.compat_reason[g128].ravel()}
    assert any("hidden size of 576" in r for r in reasons)
    assert space.compatible[g64].any()


def test_an_8_gpu_replica_of_qwen2_5_14b_takes_no_grouped_scheme(shipped: CatalogSnapshot) -> None:
    targets = Targets(model="Qwen2.5-14B", workload=Workload(requests_per_s=1))
    space = prepare(targets, shipped).space
    gpus = np.array([m.accelerator_count for m in space.machines])
    grouped = np.array([o.scheme.group_size == 128 and o.engine == "vllm" for o in space.options])
    eight, four = gpus == 8, gpus == 4
    assert eight.any() and four.any()
    assert not space.compatible[np.ix_(grouped, eight)].any()
    assert space.compatible[np.ix_(grouped, four)].any()
