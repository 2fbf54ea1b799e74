"""Quality estimates: own results first, then the closest evidence, then a prior."""

from __future__ import annotations

import pytest
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.hardware import model_shape_from_record
from quantplan.planner.quality import QualityIndex
from quantplan.planner.targets import ModelShape


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
    assert estimate.basis == "modeled"
    assert "closest evidence: awq-w4a16-g128 on" in estimate.note
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
