"""Bands from held-out residuals, SLOs met at a confidence, and the interactive defaults."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner import residual_bands, uncertainty
from quantplan.planner.decide import make_plan
from quantplan.planner.defaults import INTERACTIVE_ITL_P95_MS, INTERACTIVE_TTFT_P95_MS
from quantplan.planner.estimate import CALIBRATED, MEASURED, UNCALIBRATED
from quantplan.planner.targets import Constraints, Slos, Targets, Workload
from quantplan.planner.uncertainty import PRIOR_WIDTH, band_ratios, confidence_factors


def test_band_edges_are_conformal_ranks_never_optimistic() -> None:
    values = [-1.0, -0.5, -0.3, -0.2, -0.1, 0.0, 0.05, 0.1, 0.15, 0.2]
    residuals = {("vllm", "calibrated", "throughput_at_concurrency"): tuple(values)}
    band = band_ratios("vllm", CALIBRATED, "throughput_at_concurrency", 0.9, residuals)
    # Ten residuals at 0.9: the edges are the ceil(11 x 0.9) = 10th from either end, so the
    # pessimistic (low) edge of a speed is the worst residual (a sample quantile would
    # interpolate inside it and hold for fewer new points than it states); the optimistic edge
    # reaches at least as far, mirrored: these sources erred high, the next may err low.
    assert band.low == pytest.approx(math.exp(-1.0))
    assert band.high == pytest.approx(1 / band.low)
    assert band.points == 10 and band.group == "vllm / calibrated / throughput_at_concurrency"
    # Twenty at 0.9: the 19th from either end.
    twenty = {("vllm", "calibrated", "throughput_at_concurrency"): tuple(range(20))}
    ranked = band_ratios("vllm", CALIBRATED, "throughput_at_concurrency", 0.9, twenty)
    assert ranked.high == pytest.approx(math.exp(18))
    # Every residual over-predicts TTFT: the pessimistic (high) edge stays at the estimate,
    # and the optimistic one keeps its rank (wider than the mirror of 1.0).
    over = {("vllm", "default", "ttft_under_load"): tuple(-2.0 + i / 10 for i in range(9))}
    ttft = band_ratios("vllm", UNCALIBRATED, "ttft_under_load", 0.9, over)
    assert ttft.high == 1.0 and ttft.low == pytest.approx(math.exp(-2.0))
    # Every residual under-predicts TTFT: the optimistic (low) edge mirrors the high one.
    under = {("vllm", "default", "ttft_under_load"): tuple(0.4 + i / 10 for i in range(9))}
    ttft = band_ratios("vllm", UNCALIBRATED, "ttft_under_load", 0.9, under)
    assert ttft.high == pytest.approx(math.exp(1.2))
    assert ttft.low == pytest.approx(1 / ttft.high)


def test_small_groups_widen_and_no_evidence_falls_back_to_the_prior() -> None:
    """A group states an edge at confidence c only with ceil((n + 1) c) <= n residuals: 9 at
    0.9, so 5 widen to the pooled group; 3 are enough at 0.7 (rank 3 of 3)."""
    residuals = {
        ("vllm", "calibrated", "batch1_decode"): (0.5, -0.1, 0.0, 0.1, 0.2),  # too few at 0.9
        ("vllm", "modeled", "batch1_decode"): tuple(i / 10 - 0.4 for i in range(9)),
    }
    pooled = band_ratios("vllm", CALIBRATED, "batch1_decode", 0.9, residuals)
    assert pooled.group == "vllm / modeled / batch1_decode" and pooled.points == 9
    own = band_ratios("vllm", CALIBRATED, "batch1_decode", 0.7, residuals)
    assert own.group == "vllm / calibrated / batch1_decode" and own.points == 5
    prior = band_ratios("vllm", MEASURED, "batch1_decode", 0.9, residuals)
    assert (prior.low, prior.high, prior.points) == (
        1 - PRIOR_WIDTH[MEASURED],
        1 + PRIOR_WIDTH[MEASURED],
        0,
    )


@pytest.mark.parametrize(
    ("n", "confidence", "rank"),
    [(9, 0.9, 9), (8, 0.9, None), (10, 0.9, 10), (99, 0.9, 90), (19, 0.95, 19), (3, 0.5, 2)],
)
def test_conformal_rank(n: int, confidence: float, rank: int | None) -> None:
    assert uncertainty.conformal_rank(n, confidence) == rank


def test_the_shipped_table_records_its_bench_run() -> None:
    source = residual_bands.SOURCE
    assert source["bench"] == "bench/prediction_accuracy.py"
    assert source["points"] >= 40 and len(source["commit"]) >= 7 and source["date"] >= "2026"
    assert all(len(v) >= 1 for v in residual_bands.RESIDUALS.values())


def test_factors_widen_with_confidence() -> None:
    basis = np.full((2, 1, 3), CALIBRATED, dtype=np.int8)
    rows = np.arange(2)
    loose = confidence_factors(["vllm", "llama.cpp"], basis, 0.6).for_rows(rows)
    strict = confidence_factors(["vllm", "llama.cpp"], basis, 0.95).for_rows(rows)
    assert (strict[0] <= loose[0]).all() and (strict[0] <= 1).all()
    assert (strict[1] >= loose[1]).all() and (strict[2] >= 1).all()
    assert np.allclose(strict[2], 1 / strict[0])  # ITL is the inverse of speed


def _targets(rps: float, **slos: object) -> Targets:
    return Targets(
        model="Llama-3.1-70B",
        workload=Workload(requests_per_s=rps),
        slos=Slos(**slos),  # type: ignore[arg-type]
    )


def test_a_plan_meets_its_slos_at_the_pessimistic_edge(shipped: CatalogSnapshot) -> None:
    """Before, 70B at 10 req/s was feasible on the central TTFT (973 ms [584-1,362] against
    1 s); now every SLO holds at the band's pessimistic edge, with capacity for the peak."""
    targets = _targets(10, ttft_p95_ms=1000, itl_p95_ms=100)
    plan = make_plan(targets, shipped)
    assert plan.feasible and plan.choice is not None
    m = plan.choice.metrics
    assert m.ttft_p95_ms.high <= 1000 and m.itl_p95_ms.high <= 100
    assert "held-out residuals" in m.ttft_p95_ms.note or "prior" in m.ttft_p95_ms.note
    peak = targets.workload.peak_requests_per_s
    assert plan.choice.capacity_requests_per_s >= peak * (1 - 1e-9)
    # The capacity it was sized with is the low edge, so it needs more replicas than the
    # central estimate alone would (the headroom the confidence implies).
    assert plan.choice.replicas * m.requests_per_s.low <= plan.choice.capacity_requests_per_s * (
        1 + 1e-6
    )
    loose = make_plan(_targets(10, ttft_p95_ms=1000, itl_p95_ms=100, confidence=0.5), shipped)
    assert loose.fleet_usd_per_month is not None and plan.fleet_usd_per_month is not None
    assert loose.fleet_usd_per_month <= plan.fleet_usd_per_month


def test_interactive_defaults_apply_unless_batch_or_given(shipped: CatalogSnapshot) -> None:
    """Before, a plan without latency targets had no limit (55 s p95 TTFT was 'feasible')."""
    plan = make_plan(_targets(2), shipped)
    assert plan.targets.slos.ttft_p95_ms == INTERACTIVE_TTFT_P95_MS
    assert plan.targets.slos.itl_p95_ms == INTERACTIVE_ITL_P95_MS
    assumed = " ".join(plan.assumed)
    assert "p95 TTFT <= 2000 ms" in assumed and "p95 ITL <= 200 ms" in assumed
    assert "90% confidence" in assumed
    assert plan.choice is not None and plan.choice.metrics.ttft_p95_ms.high <= 2000
    given = make_plan(_targets(2, ttft_p95_ms=5000, confidence=0.9), shipped)
    assert given.targets.slos.ttft_p95_ms == 5000
    assert given.targets.slos.itl_p95_ms == INTERACTIVE_ITL_P95_MS
    given_assumed = " ".join(given.assumed)
    assert "TTFT <=" not in given_assumed and "ITL <= 200" in given_assumed
    assert "confidence" not in given_assumed
    batch = make_plan(_targets(2, mode="batch"), shipped)
    assert batch.targets.slos.ttft_p95_ms is None and batch.targets.slos.itl_p95_ms is None
    assert "interactive" not in " ".join(batch.assumed)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantplan", "plan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "500"},
        check=False,
    )


def test_cli_confidence_and_batch(seeded_sqlite_url: str) -> None:
    db = seeded_sqlite_url
    base = ("--model", "Llama-3.1-8B", "--rps", "2", "--db", db, "--json")
    batch = _cli(*base, "--batch", "--confidence", "0.95")
    assert batch.returncode == 0, batch.stderr
    assert '"mode": "batch"' in batch.stdout and '"confidence": 0.95' in batch.stdout
    wrong = _cli(*base, "--confidence", "1.5")
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    errors = [line for line in wrong.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "confidence" in errors[0], wrong.stderr


def test_a_family_failing_only_at_the_pessimistic_edge_says_so(
    shipped: CatalogSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GGUF's central TTFT meets 1 s; with llama.cpp's held-out TTFT under load 10x its
    predictions it does not at 90 % confidence, and the reason names the band and the flag.
    The shipped table no longer has such residuals (they came from llama-cpp-python's serial
    server), so this table states the premise itself."""
    ten_times = (math.log(10.0),) * 3
    table = {
        **residual_bands.RESIDUALS,
        ("llama.cpp", "calibrated", "ttft_under_load"): ten_times,
        ("llama.cpp", "default", "ttft_under_load"): ten_times,
    }
    monkeypatch.setattr(residual_bands, "RESIDUALS", table)
    uncertainty._cached.cache_clear()
    try:
        plan = make_plan(_targets(1, ttft_p95_ms=1000), shipped)
    finally:
        uncertainty._cached.cache_clear()
    reasons = [r.reason for r in plan.rejected if r.stage == "slo"]
    assert any("pessimistic edge of the 90% band" in r and "--confidence" in r for r in reasons)


def test_gguf_meets_interactive_defaults_where_its_pessimistic_edge_does(
    shipped: CatalogSnapshot,
) -> None:
    """With llama-cpp-python's queue out of the evidence, a llama.cpp replica whose TTFT band
    meets the interactive 2 s default is feasible: 8B at 2 req/s has a GGUF option that passes
    the SLO stage (before, none did on any hardware at the default 0.9). It is not the
    cheapest, so the plan is asked for llama.cpp alone."""
    targets = Targets(
        model="Llama-3.1-8B",
        workload=Workload(requests_per_s=2),
        constraints=Constraints(engines=("llama.cpp",)),
    )
    plan = make_plan(targets, shipped)
    gguf_slo = [r for r in plan.rejected if r.stage == "slo" and "gguf" in r.reason]
    deployments = [plan.choice, *plan.alternatives]
    gguf = [d for d in deployments if d is not None and d.engine == "llama.cpp"]
    assert gguf, gguf_slo
    assert all(d.metrics.ttft_p95_ms.high <= INTERACTIVE_TTFT_P95_MS for d in gguf)
