"""Measurement reports: idempotent on run id, failed runs kept as failures, never as numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from quantplan.catalog.db import open_catalog
from quantplan.catalog.records import HardwareRecord, ProfileRecord, QualityRecord
from quantplan.catalog.reports import MeasurementReport, RunInfo, list_runs, record_report
from quantplan.catalog.snapshot import load_snapshot

LOCAL_CPU = HardwareRecord(
    name="test-cpu",
    kind="cpu",
    vendor="intel",
    memory_bandwidth_gbps=20.0,
    isa_flags="avx2,avx512",
    source="test",
)


def _run(run_id: str, status: str = "succeeded", **extra: object) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        kind="benchmark",
        status=status,
        started_at=datetime.now(UTC),
        hardware="2 vCPU test",
        **extra,
    )


def _profile(concurrency: int, tokens_per_s: float) -> ProfileRecord:
    return ProfileRecord(
        model="SmolLM2-135M-Instruct",
        scheme="bf16",
        engine="vllm",
        hardware="test-cpu",
        hardware_count=2,
        input_tokens=128,
        output_tokens=64,
        concurrency=concurrency,
        output_tokens_per_s=tokens_per_s,
        basis="measured",
        source="test",
    )


def test_report_is_recorded_once(seeded_db_url: str) -> None:
    engine = open_catalog(seeded_db_url)
    report = MeasurementReport(
        run=_run("run-a"), new_hardware=LOCAL_CPU, profiles=(_profile(1, 50.0), _profile(4, 120.0))
    )
    assert record_report(engine, report) == "recorded"
    assert record_report(engine, report) == "duplicate"
    profiles = [p for p in load_snapshot(engine).profiles if p.run_id == "run-a"]
    assert sorted(p.concurrency for p in profiles) == [1, 4]
    assert "test-cpu" in load_snapshot(engine).hardware_by_name


def test_failed_run_is_kept_with_its_error_and_no_numbers(seeded_sqlite_url: str) -> None:
    engine = open_catalog(seeded_sqlite_url)
    failed = _run("run-b", "failed", error_kind="engine_died", error_message="SIGKILL at 40%")
    assert record_report(engine, MeasurementReport(run=failed)) == "recorded"
    (row,) = [r for r in list_runs(engine) if r["id"] == "run-b"]
    assert row["status"] == "failed" and row["error_kind"] == "engine_died"
    with pytest.raises(ValidationError, match="must not carry measurements"):
        MeasurementReport(run=failed, profiles=(_profile(1, 1.0),))


def test_report_rules() -> None:
    with pytest.raises(ValidationError, match="needs error_kind"):
        _run("x", "failed")
    with pytest.raises(ValidationError, match="measured rows only"):
        MeasurementReport(
            run=_run("x"),
            quality=(
                QualityRecord(
                    model="m",
                    scheme="s",
                    eval_set="e",
                    perplexity=1.0,
                    basis="published",
                    source="s",
                ),
            ),
        )
    with pytest.raises(ValidationError, match="differs"):
        MeasurementReport(
            run=_run("x"), profiles=(_profile(1, 1.0).model_copy(update={"run_id": "y"}),)
        )


def test_batch_of_reports_in_one_transaction(seeded_db_url: str) -> None:
    from quantplan.catalog.reports import record_reports

    engine = open_catalog(seeded_db_url)
    first = MeasurementReport(
        run=_run("batch-1"), new_hardware=LOCAL_CPU, profiles=(_profile(1, 5.0),)
    )
    second = MeasurementReport(
        run=_run("batch-2"), new_hardware=LOCAL_CPU, profiles=(_profile(2, 9.0),)
    )
    failed = MeasurementReport(
        run=_run("batch-3", "failed", error_kind="never_healthy", error_message="no /health")
    )
    outcomes = record_reports(engine, [first, second, first, failed])
    assert outcomes == ["recorded", "recorded", "duplicate", "recorded"]
    assert record_reports(engine, [second, failed]) == ["duplicate", "duplicate"]
    profiles = [
        p for p in load_snapshot(engine).profiles if p.run_id and p.run_id.startswith("batch-")
    ]
    assert sorted((p.run_id, p.concurrency) for p in profiles) == [("batch-1", 1), ("batch-2", 2)]


def test_batch_with_a_bad_row_writes_nothing(seeded_sqlite_url: str) -> None:
    from quantplan.catalog.reports import record_reports
    from quantplan.errors import UnknownNameError

    engine = open_catalog(seeded_sqlite_url)
    good = MeasurementReport(run=_run("ok-1"), new_hardware=LOCAL_CPU, profiles=(_profile(1, 5.0),))
    bad = MeasurementReport(
        run=_run("bad-1"), profiles=(_profile(1, 5.0).model_copy(update={"scheme": "bf17"}),)
    )
    with pytest.raises(UnknownNameError, match="bf16"):
        record_reports(engine, [good, bad])
    assert not [r for r in list_runs(engine) if r["id"] in ("ok-1", "bad-1")]
