"""Quality of real artifacts measured with the serving engines (vLLM CPU, llama.cpp)."""

from __future__ import annotations

import math

import pytest

from quantplan.agent.artifacts import ArtifactStore
from quantplan.agent.evaluate.api import evaluate
from quantplan.agent.evaluate.engines import EvalSettings
from quantplan.agent.evaluate.report import quality_report
from quantplan.agent.quantize import quantize

pytestmark = [pytest.mark.toolchain, pytest.mark.engine, pytest.mark.slow]

SMALL = EvalSettings(num_windows=4, window_length=128)


def test_gguf_quality_with_llama_cpp_logits_orders_by_bits() -> None:
    store = ArtifactStore()
    artifacts = [quantize("default", "gguf", {"type": t}, store=store) for t in ("Q8_0", "Q2_K")]
    table = evaluate(artifacts, settings=SMALL, store=store)
    rows = {row.scheme: row for row in table.rows}
    assert rows["gguf-f16"].perplexity and math.isfinite(rows["gguf-f16"].perplexity)
    q8, q2 = rows["gguf-q8_0"], rows["gguf-q2_k"]
    assert 0 <= q8.kl_divergence < q2.kl_divergence
    assert q8.top1_agreement > q2.top1_agreement
    assert abs(q8.perplexity_delta_pct) < 5  # 8-bit of a 4-bit-grid model: nearly free
    assert "dequantized from Q4_1" in table.notes[0]
    assert table.tokens_per_model == 4 * 127


def test_gptq_quality_with_vllm_prompt_logprobs_and_catalog_report(tmp_path) -> None:
    from datetime import UTC, datetime

    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.reports import record_report
    from quantplan.catalog.snapshot import load_snapshot

    store = ArtifactStore()
    gptq = quantize(
        "default",
        "gptq",
        {"calibration": {"num_samples": 8, "sequence_length": 64}},
        store=store,
    )
    table = evaluate([gptq], settings=SMALL, store=store)
    base, row = table.rows
    assert (base.scheme, base.engine) == ("bf16", "vllm")
    assert row.perplexity > 0 and row.baseline_perplexity == base.perplexity
    assert 0 < row.top1_agreement <= 1 and row.kl_divergence >= 0
    assert row.kl_method.startswith("top-20")
    assert row.layer_error["layers"] == 210

    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    known = {scheme.name for scheme in load_snapshot(engine).schemes}
    report, skipped = quality_report(
        table,
        started_at=datetime.now(UTC),
        hardware="test host",
        tool_versions={},
        known_schemes=known,
    )
    assert [q.scheme for q in report.quality] == ["bf16", "gptq-w4a16-g64"] or skipped
    assert all(q.basis == "measured" and "Q4_1" in q.notes for q in report.quality)
    assert record_report(engine, report) == "recorded"
    assert record_report(engine, report) == "duplicate"  # idempotent on the run id
