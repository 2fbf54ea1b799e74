"""The support matrix: kernels vs compute capability and CPU ISA, with reasons."""

from __future__ import annotations

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.compatibility import SupportMatrix
from quantplan.planner.decide import make_plan
from quantplan.planner.estimate import w8a8_compute_gain
from quantplan.planner.hardware import model_shape_from_record, weight_gb
from quantplan.planner.targets import Constraints, Targets, Workload
from quantplan.planner.traits import method_traits


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


def test_w8a8_kernels_follow_their_compute_capability(shipped: CatalogSnapshot) -> None:
    """FP8 W8A8 needs Ada/Hopper (8.9); INT8 W8A8 needs Turing (7.5); INT8 also runs on
    AVX-512 CPUs, FP8 on none. A refused FP8 says what vLLM does on Ampere instead."""
    matrix = SupportMatrix(shipped.support)
    fp8, int8 = shipped.get_scheme("fp8-w8a8"), shipped.get_scheme("int8-w8a8")
    hw = {name: shipped.get_hardware(name) for name in ("T4", "V100-16GB", "A100-40GB", "L4")}
    refused = matrix.check("vllm", fp8, hw["A100-40GB"])
    assert not refused.ok and ">= 8.9" in refused.reason and "Marlin" in refused.reason
    assert matrix.check("vllm", fp8, hw["L4"]).ok
    assert matrix.check("vllm", fp8, shipped.get_hardware("H100-SXM")).ok
    assert (
        matrix.check("vllm", int8, hw["T4"]).ok and matrix.check("vllm", int8, hw["A100-40GB"]).ok
    )
    assert not matrix.check("vllm", int8, hw["V100-16GB"]).ok
    genoa, milan = shipped.get_hardware("EPYC-Genoa"), shipped.get_hardware("EPYC-Milan")
    assert matrix.check("vllm", int8, genoa).ok and not matrix.check("vllm", int8, milan).ok
    assert not matrix.check("vllm", fp8, genoa).ok


def test_w8a8_schemes_are_planned_with_8_bit_weights_and_compute(
    shipped: CatalogSnapshot,
) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-3.1-8B"))
    fp8, bf16 = shipped.get_scheme("fp8-w8a8"), shipped.get_scheme("bf16")
    fp8_traits, bf16_traits = method_traits(shipped, "fp8"), method_traits(shipped, "baseline")
    assert abs(weight_gb(shape, fp8, fp8_traits) / weight_gb(shape, bf16, bf16_traits) - 0.5) < 0.01
    h100 = shipped.get_hardware("H100-SXM")
    assert w8a8_compute_gain(fp8_traits, h100) == h100.int8_tops / h100.bf16_tflops > 1.9
    assert w8a8_compute_gain(method_traits(shipped, "gptq"), h100) == 1.0
    genoa = shipped.get_hardware("EPYC-Genoa")
    assert w8a8_compute_gain(method_traits(shipped, "int8"), genoa) == 1.0
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(input_tokens=512, output_tokens=128, requests_per_s=2),
        constraints=Constraints(families=("fp8", "int8")),
    )
    plan = make_plan(targets, shipped)
    assert plan.fleet and {d.scheme for d in plan.fleet} <= {"fp8-w8a8", "int8-w8a8"}
