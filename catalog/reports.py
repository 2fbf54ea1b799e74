"""Measurement reports: the only way results of agent work enter the catalog.

A report is one run (quantize, serve, benchmark, evaluate, apply) with what it measured. It is
idempotent on its run id: a run that already reached a final status in the catalog is not
written again, so a retried delivery never duplicates a row. A failed run is recorded as a
failed run with its error, never as numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from quantplan.catalog.db import session_scope
from quantplan.catalog.models import Hardware, Run
from quantplan.catalog.records import HardwareRecord, ProfileRecord, QualityRecord
from quantplan.catalog.store import write_record
from sqlalchemy import Engine
from sqlmodel import Session, select

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
        for row in (*self.profiles, *self.quality):
            if row.basis != "measured":
                raise ValueError("reports carry measured rows only")
            if row.run_id not in (None, self.run.run_id):
                raise ValueError(f"row run id {row.run_id!r} differs from {self.run.run_id!r}")
        return self


ReportOutcome = Literal["recorded", "duplicate"]


def record_report(engine: Engine, report: MeasurementReport) -> ReportOutcome:
    """Write a report in one transaction. Returns "duplicate" if the run is already final."""
    run = report.run
    with session_scope(engine) as session:
        existing = session.get(Run, run.run_id)
        if existing is not None and existing.status in ("succeeded", "failed"):
            return "duplicate"
        if report.new_hardware is not None and not _hardware_exists(
            session, report.new_hardware.name
        ):
            write_record(session, "hardware", report.new_hardware)
        row = existing or Run(id=run.run_id, kind=run.kind, started_at=run.started_at)
        row.kind = run.kind
        row.status = run.status
        row.started_at = run.started_at
        row.finished_at = run.finished_at
        row.hardware = run.hardware
        row.tool_versions = dict(run.tool_versions)
        row.error_kind = run.error_kind
        row.error_message = run.error_message
        session.add(row)
        session.flush()
        for profile in report.profiles:
            write_record(session, "profiles", profile.model_copy(update={"run_id": run.run_id}))
        for quality in report.quality:
            write_record(session, "quality", quality.model_copy(update={"run_id": run.run_id}))
    return "recorded"


def _hardware_exists(session: Session, name: str) -> bool:
    return session.exec(select(Hardware.id).where(Hardware.name == name)).first() is not None


def list_runs(
    engine: Engine, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Recent runs, newest first, as plain dicts (for the CLI and dashboard)."""
    with Session(engine) as session:
        query = select(Run).order_by(Run.started_at.desc()).limit(limit)  # type: ignore[attr-defined]
        if status is not None:
            query = query.where(Run.status == status)
        return [run.model_dump() for run in session.exec(query).all()]
