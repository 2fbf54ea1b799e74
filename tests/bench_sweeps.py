"""Benchmark sweeps and the profile reports made of them, as the bench recording and cluster GPU
tests build them: a level of identical requests, a sweep of levels, its report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from quantplan.agent.benchmark.metrics import RequestSample, summarize
from quantplan.agent.benchmark.protocol import RunResult, SweepResult, best_level
from quantplan.agent.benchmark.recording import profile_report
from quantplan.agent.benchmark.workload import Workload
from quantplan.catalog.reports import MeasurementReport

REQUESTS_PER_LEVEL = 4


def sweep_level(
    concurrency: int, ttft: float, out: int, *, peak_server_memory_gb: float | None = None
) -> RunResult:
    """One closed-loop level of four identical requests (100 prompt tokens, ``out`` output
    tokens, first token after ``ttft`` s, then one every 10 ms), measured over one second."""
    samples = [
        RequestSample(
            ok=True,
            start_s=0.0,
            end_s=ttft + 0.01 * (out - 1),
            ttft_s=ttft,
            chunk_gaps_s=[0.01] * (out - 1),
            prompt_tokens=100,
            output_tokens=out,
        )
        for _ in range(REQUESTS_PER_LEVEL)
    ]
    return RunResult(
        mode="closed",
        concurrency=concurrency,
        workload=Workload(input_tokens=100, output_tokens=out),
        metrics=summarize(samples, duration_s=1.0),
        peak_server_memory_gb=peak_server_memory_gb,
    )


def sweep_of(levels: Sequence[RunResult]) -> SweepResult:
    """The sweep of these levels, its best level chosen as the benchmark chooses it."""
    return SweepResult(levels=list(levels), best=best_level(list(levels)), stop_reason="test")


def sweep_profile_report(sweep: SweepResult, **fields: Any) -> MeasurementReport:
    """``profile_report`` of ``sweep`` for bf16 SmolLM2-135M-Instruct on vLLM, started now;
    ``fields`` are its other keyword arguments (run id, hardware, provenance, cost, GPU
    placement) and override these defaults."""
    arguments: dict[str, Any] = {
        "run_id": "test-profile",
        "started_at": datetime.now(UTC),
        "model": "SmolLM2-135M-Instruct",
        "scheme": "bf16",
        "engine": "vllm",
        "hardware_record": None,
        "tool_versions": {},
        "engine_version": None,
    }
    return profile_report(sweep=sweep, **(arguments | fields))
