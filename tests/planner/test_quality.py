"""Quality estimates: own results first, then the closest evidence, then a prior."""

from __future__ import annotations

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.errors import UnknownNameError
from quantplan.planner.decide import make_plan
from quantplan.planner.hardware import model_shape_from_record
from quantplan.planner.plan import Plan
from quantplan.planner.quality import QualityIndex, describe_quality, fleet_quality
from quantplan.planner.targets import ModelShape, Targets


def _index(snapshot: CatalogSnapshot) -> QualityIndex:
    return QualityIndex(snapshot.quality, snapshot.models, snapshot.schemes)


def test_own_published_result_is_used_worst_case(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-2-7B"))
    estimate = _index(shipped).evidence(shape, shipped.get_scheme("gptq-w4a16-g128"), "ppl")
    assert estimate.basis == "published"
    # Two published sources (AWQ paper +4.0 %, Marlin README +2.9 %): the worse one is shown.
    assert estimate.value == pytest.approx((5.69 - 5.47) / 5.47 * 100, rel=1e-4)
    assert estimate.low < estimate.value < estimate.high


def test_closest_evidence_is_modeled_and_named(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-3.1-8B"))
    estimate = _index(shipped).evidence(shape, shipped.get_scheme("awq-w4a16-g128"), "ppl")
    assert estimate.basis == "modeled" and estimate.evidence == "same-family"
    # Llama-3-8B (8.03 B parameters, the same shape but for RoPE scaling) is the nearest model
    # of the family with a published AWQ figure.
    assert estimate.evidence_model == "Llama-3-8B"
    assert estimate.evidence_scheme == "awq-w4a16-g128"
    assert estimate.high / estimate.value == pytest.approx(2.0)


def test_unknown_model_without_any_evidence_gets_a_prior(shipped: CatalogSnapshot) -> None:
    shape = ModelShape(
        name="my-model", parameters_b=3, layers=28, hidden_size=3072, heads=24, kv_heads=8,
        head_dim=128, vocab_size=128256, max_context=8192,
    )  # fmt: skip
    empty = shipped.model_copy(update={"quality": ()})
    estimate = _index(empty).evidence(shape, shipped.get_scheme("gguf-q4_k_m"), "ppl")
    assert estimate.basis == "modeled" and "prior" in estimate.note
    assert estimate.value > 0


def test_baseline_is_the_reference(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-3.1-8B"))
    estimate = _index(shipped).evidence(shape, shipped.get_scheme("bf16"), "kl")
    assert (estimate.value, estimate.low, estimate.high) == (0.0, 0.0, 0.0)


def test_kl_comes_from_kl_results(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-3-8B"))
    estimate = _index(shipped).evidence(shape, shipped.get_scheme("gguf-q4_k_m"), "kl")
    assert estimate.basis == "published" and estimate.value == pytest.approx(0.031273)


def _plan(shipped: CatalogSnapshot, **quality: object) -> Plan:
    targets = Targets.model_validate(
        {
            "model": quality.pop("model", "Llama-3.1-8B"),
            "workload": {"requests_per_s": 2},
            "quality": quality,
            "constraints": {"families": quality.pop("families", ()) or ()},
        }
    )
    return make_plan(targets, shipped)


def test_llama31_awq_fails_a_3pct_cap_on_llama2s_borrowed_figure(shipped: CatalogSnapshot) -> None:
    """A Llama-1/2 7B AWQ figure (+1.76 %, +2.38 %) is borrowed, so the cap is checked at its
    band's top (+3.52 %, +4.75 %): Llama-3 loses about twice what Llama-2 does at 4 bits."""
    plan = _plan(shipped, max_perplexity_increase_pct=3, families=["awq"])
    assert not plan.feasible
    (rejection,) = [r for r in plan.rejected if r.family == "awq"]
    assert rejection.stage == "quality"
    assert "borrowed from awq-w4a16-g128 on L" in rejection.reason
    assert "up to +" in rejection.reason and "> +3% allowed" in rejection.reason


def test_same_model_policy_refuses_borrowed_figures(shipped: CatalogSnapshot) -> None:
    plan = _plan(shipped, max_perplexity_increase_pct=50, evidence="same-model", families=["awq"])
    assert not plan.feasible
    assert "evidence policy 'same-model'" in plan.rejected[0].reason
    allowed = _plan(shipped, max_perplexity_increase_pct=50, families=["awq"])
    assert allowed.feasible and allowed.choice is not None
    assert allowed.choice.metrics.perplexity_increase_pct.evidence == "same-family"


def test_mistral_awq_is_its_own_gptq_is_shown_borrowed(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Mistral-7B"))
    index = _index(shipped)
    awq = index.evidence(shape, shipped.get_scheme("awq-w4a16-g128"), "ppl")
    gptq = index.evidence(shape, shipped.get_scheme("gptq-w4a16-g128"), "ppl")
    assert awq.evidence == "same-model" and awq.basis == "published"
    assert gptq.evidence in ("same-family", "other-family")
    assert gptq.evidence_model != "Mistral-7B"
    assert f"borrowed from gptq-w4a16-g128 on {gptq.evidence_model}" in describe_quality(gptq)


def test_default_model_plan_shows_the_projects_measured_deltas(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("SmolLM2-135M-Instruct"))
    index = _index(shipped)
    awq = index.evidence(shape, shipped.get_scheme("awq-w4a16-g64"), "ppl")
    gptq = index.evidence(shape, shipped.get_scheme("gptq-w4a16-g64"), "ppl")
    assert awq.basis == gptq.basis == "measured"
    assert awq.value == pytest.approx(16.73, abs=0.01)
    assert gptq.value == pytest.approx(29.83, abs=0.01)
    # g128 cannot be made for this model; if asked, it borrows the model's own g64 figure.
    g128 = index.evidence(shape, shipped.get_scheme("awq-w4a16-g128"), "ppl")
    assert (g128.evidence_model, g128.evidence_scheme) == (shape.name, "awq-w4a16-g64")


def test_mixed_fleet_reports_worst_and_traffic_weighted(shipped: CatalogSnapshot) -> None:
    plan = _plan(shipped, model="Llama-2-7B", max_perplexity_increase_pct=20)
    assert plan.choice is not None
    own = plan.choice.metrics.perplexity_increase_pct
    assert own is not None
    other = own.model_copy(update={"value": own.value + 10, "high": own.high + 10})
    second = plan.choice.model_copy(
        update={
            "scheme": "other-scheme",
            "capacity_requests_per_s": plan.choice.capacity_requests_per_s * 3,
            "metrics": plan.choice.metrics.model_copy(update={"perplexity_increase_pct": other}),
        }
    )
    text = fleet_quality([plan.choice, second])
    assert "worst" in text and "(other-scheme)" in text
    weighted = (own.value * 1 + other.value * 3) / 4
    assert f"traffic-weighted +{weighted:.2f}%" in text


def test_recovery_is_never_converted_from_perplexity(shipped: CatalogSnapshot) -> None:
    shape = model_shape_from_record(shipped.get_model("Llama-2-7B"))
    index = _index(shipped)
    assert index.evidence(shape, shipped.get_scheme("awq-w4a16-g128"), "recovery", "x") is None
    # A benchmark the catalog has figures on, none of them AWQ: Llama-2-7B's AWQ perplexity
    # figures do not stand in for one.
    plan = _plan(
        shipped,
        model="Llama-2-7B",
        min_recovery_pct=90,
        recovery_benchmark="mmlu (Qwen3 quant study Table 2)",
        families=["awq"],
    )
    assert not plan.feasible
    with pytest.raises(UnknownNameError, match="no-such-bench"):  # no figure is on it at all
        _plan(shipped, model="Llama-2-7B", min_recovery_pct=90, recovery_benchmark="no-such-bench")


def test_w8a8_recovery_is_the_models_own_published_figure(shipped: CatalogSnapshot) -> None:
    """Model-card recovery (OpenLLM v1) is same-model evidence for the 8-bit schemes; a model
    without its own card borrows a same-family one and says so."""
    index = _index(shipped)
    own = index.evidence(
        model_shape_from_record(shipped.get_model("Llama-3.1-70B")),
        shipped.get_scheme("fp8-w8a8"), "recovery", "openllm-v1",
    )  # fmt: skip
    assert own is not None and own.evidence == "same-model" and own.basis == "published"
    assert own.value == pytest.approx(84.29 / 84.40 * 100, rel=1e-6)
    borrowed = index.evidence(
        model_shape_from_record(shipped.get_model("Qwen2.5-32B")),
        shipped.get_scheme("fp8-w8a8"), "recovery", "openllm-v1",
    )  # fmt: skip
    assert borrowed is not None and borrowed.evidence == "same-family"
    assert borrowed.evidence_model in ("Qwen2.5-14B", "Qwen2.5-72B", "Qwen2.5-7B")
    assert "FP8-dynamic" in shipped_notes(shipped, "Qwen2.5-14B", "fp8-w8a8")
    # Qwen2.5-7B's earlier card revision shows 100.1 %: borrowed (Qwen2.5-14B's own figure held
    # out, and the later revision's 99.7 % too), it still gets a band below 100 % (the noise
    # floor), so a --min-recovery cap is not checked against a perfect score.
    rest = [
        q for q in shipped.quality
        if (q.model, q.scheme) != ("Qwen2.5-14B", "fp8-w8a8") and q.task_score != 72.94
    ]  # fmt: skip
    held = QualityIndex(rest, shipped.models, shipped.schemes).evidence(
        model_shape_from_record(shipped.get_model("Qwen2.5-14B")),
        shipped.get_scheme("fp8-w8a8"), "recovery", "openllm-v1",
    )  # fmt: skip
    assert held is not None and held.evidence_model == "Qwen2.5-7B" and held.value == 100.0
    assert held.low == pytest.approx(100.0 - 0.25 * 2)


def shipped_notes(snapshot: CatalogSnapshot, model: str, scheme: str) -> str:
    return " ".join(r.notes for r in snapshot.quality if (r.model, r.scheme) == (model, scheme))


def test_a_borrowed_delta_at_or_below_zero_still_has_a_band(shipped: CatalogSnapshot) -> None:
    """Llama-2-13B's published INT8 W8A8 delta is -0.42 % (noise); lent to a model without its
    own figure it must not become a band of zero width that any cap would trust."""
    negative = [
        q
        for q in shipped.quality
        if q.scheme == "int8-w8a8" and q.perplexity_delta_pct is not None
        and q.perplexity_delta_pct <= 0
    ]  # fmt: skip
    assert negative, "the seed has a non-positive published INT8 delta to lend"
    lender = negative[0]
    others = [q for q in shipped.quality if q.scheme != "int8-w8a8" or q is lender]
    borrower = next(
        m for m in shipped.models
        if m.family == shipped.get_model(lender.model).family and m.name != lender.model
    )  # fmt: skip
    estimate = QualityIndex(others, shipped.models, shipped.schemes).evidence(
        model_shape_from_record(borrower), shipped.get_scheme("int8-w8a8"), "ppl"
    )
    assert estimate is not None and estimate.evidence == "same-family"
    assert estimate.evidence_model == lender.model
    assert estimate.high >= 0.5 * 2  # the noise floor, spread as any same-family figure
