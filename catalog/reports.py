"""Measurement reports: the only way results of agent work enter the catalog.

A report is one run (quantize, serve, benchmark, evaluate, apply) with what it measured. It is
idempotent on its run id: a run that already reached a final status in the catalog is not
written again, so a retried delivery never duplicates a row. A failed run is recorded as a
failed run with its error, never as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from quantplan.catalog.models import Profile, QualityResult, Run
from quantplan.catalog.records import HardwareRecord, ProfileRecord, QualityRecord
from quantplan.catalog.sessions import session_scope
from quantplan.catalog.store import Resolver, measurement_columns, write_record

RunKind = Literal["quantize", "serve", "benchmark", "evaluate", "apply", "profile"]
FinalStatus = Literal["succeeded", "failed"]
ErrorKind = Literal[
    "unsupported_hardware",
    "kernel_missing",
    "out_of_memory",
    "engine_died",
    "never_healthy",
    "port_in_use",
    "bad_input",
    "interrupted",
    "internal",
]


def _now() -> datetime:
    return datetime.now(UTC)


class RunInfo(BaseModel):
    """Provenance of one run: who did what, where, with which tools, and how it ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1, max_length=200, description="Unique across the fleet")
    kind: RunKind
    status: FinalStatus
    started_at: AwareDatetime
    finished_at: AwareDatetime = Field(default_factory=_now)
    hardware: str = Field(min_length=1, description="The hardware in words, e.g. 2 vCPU Xeon")
    tool_versions: dict[str, str] = Field(default_factory=dict, description="package -> version")
    error_kind: ErrorKind | None = None
    error_message: str | None = None

    @model_validator(mode="after")
    def _failed_runs_say_why(self) -> RunInfo:
        if self.status == "failed" and (self.error_kind is None or not self.error_message):
            raise ValueError("a failed run needs error_kind and error_message")
        if self.status == "succeeded" and self.error_kind is not None:
            raise ValueError("a succeeded run carries no error")
        return self


class MeasurementReport(BaseModel):
    """A run and its measurements. Rows inherit the run id; a failed run carries no rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: RunInfo
    new_hardware: HardwareRecord | None = Field(
        default=None, description="Registered if no hardware of that name exists yet"
    )
    profiles: tuple[ProfileRecord, ...] = ()
    quality: tuple[QualityRecord, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> MeasurementReport:
        if self.run.status == "failed" and (self.profiles or self.quality):
            raise ValueError("a failed run must not carry measurements")
        rows: tuple[ProfileRecord | QualityRecord, ...] = (*self.profiles, *self.quality)
        for row in rows:
            if row.basis != "measured":
                raise ValueError("reports carry measured rows only")
            if row.run_id not in (None, self.run.run_id):
                raise ValueError(f"row run id {row.run_id!r} differs from {self.run.run_id!r}")
        return self


ReportOutcome = Literal["recorded", "duplicate"]
FINAL_STATUSES = ("succeeded", "failed")
_IN_CHUNK = 500  # bound the size of one IN (...) list


def record_report(engine: Engine, report: MeasurementReport) -> ReportOutcome:
    """Write a report in one transaction. Returns "duplicate" if the run is already final."""
    return record_reports(engine, [report])[0]


def record_reports(engine: Engine, reports: Sequence[MeasurementReport]) -> list[ReportOutcome]:
    """Write many reports in one transaction, one outcome per report, in order.

    Runs already final in the catalog (or earlier in the batch) come back as "duplicate" and
    write nothing. Names are resolved once per batch and rows go in with bulk inserts, which
    is what lets a collector keep up with a fleet. Any invalid row aborts the whole batch.
    """
    if not reports:
        return []
    with session_scope(engine) as session:
        known_runs = _runs_by_id(session, [r.run.run_id for r in reports])
        resolve = Resolver(session)
        outcomes: list[ReportOutcome] = []
        new_runs: list[dict[str, Any]] = []
        rows: dict[str, list[dict[str, Any]]] = {"profiles": [], "quality": []}
        seen: set[str] = set()
        for report in reports:
            run = report.run
            existing = known_runs.get(run.run_id)
            if run.run_id in seen or (existing is not None and existing.status in FINAL_STATUSES):
                outcomes.append("duplicate")
                continue
            seen.add(run.run_id)
            if report.new_hardware is not None and not resolve.has_hardware(
                report.new_hardware.name
            ):
                write_record(session, "hardware", report.new_hardware)
            columns = _run_columns(run)
            if existing is None:
                new_runs.append(columns)
            else:  # a run that was announced as running and now reports its end
                for field, value in columns.items():
                    setattr(existing, field, value)
                session.add(existing)
            stamp = datetime.now(UTC)
            for kind, records in (("profiles", report.profiles), ("quality", report.quality)):
                for record in records:
                    row = measurement_columns(record, resolve)
                    row["run_id"] = run.run_id
                    row["recorded_at"] = row.get("recorded_at") or stamp
                    rows[kind].append(row)
            outcomes.append("recorded")
        if new_runs:
            session.execute(insert(Run), new_runs)
        if rows["profiles"]:
            session.execute(insert(Profile), rows["profiles"])
        if rows["quality"]:
            session.execute(insert(QualityResult), rows["quality"])
    return outcomes


def _runs_by_id(session: Session, run_ids: list[str]) -> dict[str, Run]:
    found: dict[str, Run] = {}
    unique = sorted(set(run_ids))
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        for run in session.exec(select(Run).where(col(Run.id).in_(chunk))).all():
            found[run.id] = run
    return found


def _run_columns(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "hardware": run.hardware,
        "tool_versions": dict(run.tool_versions),
        "error_kind": run.error_kind,
        "error_message": run.error_message,
    }


def list_runs(
    engine: Engine, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Recent runs, newest first, as plain dicts (for the CLI and dashboard).

    A stored run that cannot be decoded (e.g. tool versions that are not JSON) is left out
    and named in a warning, like any catalog row that does not validate.
    """
    from quantplan.catalog.reading import load_rows, warn_skipped
    from quantplan.catalog.skipped import SkippedRow

    with Session(engine) as session:
        query = select(Run).order_by(col(Run.started_at).desc()).limit(limit)
        if status is not None:
            query = query.where(Run.status == status)
        rows, unreadable = load_rows(session, Run, query)
    warn_skipped(
        [
            SkippedRow(kind="runs", table="run", row_id=run_id, field=field, reason=why)
            for run_id, field, why in unreadable
        ]
    )
    return rows
