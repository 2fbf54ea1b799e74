"""The support matrix: kernels vs compute capability and CPU ISA, with reasons."""

from __future__ import annotations

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.compatibility import SupportMatrix
from quantplan.planner.planning import make_plan
from quantplan.planner.targets import Constraints, Targets, Workload


def test_gpu_kernels_follow_compute_capability(shipped: CatalogSnapshot) -> None:
    matrix = SupportMatrix(shipped.support)
    t4, l4 = shipped.get_hardware("T4"), shipped.get_hardware("L4")
    gptq = shipped.get_scheme("gptq-w4a16-g128")
    refused = matrix.check("vllm", gptq, t4)
    assert (
        not refused.ok and "compute capability >= 8" in refused.reason and "7.5" in refused.reason
    )
    assert matrix.check("vllm", gptq, l4).ok
    assert matrix.check("vllm", shipped.get_scheme("awq-w4a16-g128"), t4).ok  # AWQ: Turing+


def test_cpu_kernels_need_their_isa(shipped: CatalogSnapshot) -> None:
    matrix = SupportMatrix(shipped.support)
    milan, genoa = shipped.get_hardware("EPYC-Milan"), shipped.get_hardware("EPYC-Genoa")
    gptq = shipped.get_scheme("gptq-w4a16-g128")
    refused = matrix.check("vllm", gptq, milan)
    assert not refused.ok and "avx512" in refused.reason
    assert matrix.check("vllm", gptq, genoa).ok
    assert matrix.check("llama.cpp", shipped.get_scheme("gguf-q8_0"), milan).ok  # bits=0 row


def test_missing_rows_and_engines_are_unsupported_with_a_reason(shipped: CatalogSnapshot) -> None:
    matrix = SupportMatrix(shipped.support)
    genoa = shipped.get_hardware("EPYC-Genoa")
    gptq8 = shipped.get_scheme("gptq-w8a16-g128")
    verdict = matrix.check("vllm", gptq8, genoa)  # vLLM CPU runs 4-bit WNA16 only
    assert not verdict.ok and "8-bit gptq" in verdict.reason
    wrong_engine = matrix.check("llama.cpp", gptq8, genoa)
    assert not wrong_engine.ok and "not served by llama.cpp" in wrong_engine.reason


def test_incompatible_family_is_reported_as_a_compatibility_rejection(
    shipped: CatalogSnapshot,
) -> None:
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=1),
        constraints=Constraints(accelerator_allow=("T4",), families=("gptq", "gguf")),
    )
    plan = make_plan(targets, shipped)
    gptq = [r for r in plan.rejected if r.family == "gptq"]
    assert gptq and gptq[0].stage == "compatibility" and "compute capability" in gptq[0].reason
    assert all(d.method == "gguf" for d in plan.fleet)
