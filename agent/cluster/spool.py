"""A durable on-disk queue of reports the collector accepted but has not written yet.

Each accepted batch is one JSON file, written to a temporary name and renamed into place, so a
collector killed at any moment leaves either the whole batch or nothing. A restarted collector
reads the spool back and writes what is there; run ids make writing a report twice harmless.
Reports the catalog refuses for good (unknown names, conflicting rows) move to ``rejected/`` with
the reason, so one bad report never blocks the queue.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class SpooledBatch(BaseModel):
    """One accepted batch: report JSON documents, in the order they arrived."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reports: tuple[str, ...] = Field(description="MeasurementReport JSON, validated on accept")


class RejectedReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    report: str
    reason: str


class ReportSpool:
    """Batches waiting for the catalog, oldest first, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.rejected_dir = self.directory / "rejected"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rejected_dir.mkdir(exist_ok=True)
        self._sequence = 0

    def put(self, reports: list[str]) -> Path:
        """Persist a batch before it is acknowledged; returns its file."""
        # Time first, then a per-process counter: files sort in arrival order.
        self._sequence += 1
        name = f"{time.time_ns():020d}-{self._sequence:08d}-{uuid.uuid4().hex[:6]}.json"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        temporary.write_text(SpooledBatch(reports=tuple(reports)).model_dump_json())
        # The rename is atomic; a crash before it leaves only a .tmp file, which is never read.
        os.replace(temporary, final)
        return final

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("[0-9]*.json"))

    def read(self, batch: Path) -> SpooledBatch:
        return SpooledBatch.model_validate_json(batch.read_text())

    def rewrite(self, batch: Path, remaining: list[str]) -> None:
        """Keep only the reports of ``batch`` not yet written (after a partial flush)."""
        temporary = batch.with_name(f".{batch.name}.tmp")
        temporary.write_text(SpooledBatch(reports=tuple(remaining)).model_dump_json())
        os.replace(temporary, batch)

    def done(self, batch: Path) -> None:
        batch.unlink(missing_ok=True)

    def reject(self, report: str, reason: str) -> None:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}.json"
        record = RejectedReport(report=report, reason=reason)
        (self.rejected_dir / name).write_text(record.model_dump_json())

    def count(self) -> int:
        """Reports waiting (reads every batch: for status, not for hot paths)."""
        total = 0
        for batch in self.pending():
            try:
                total += len(json.loads(batch.read_text())["reports"])
            except (OSError, ValueError, KeyError):
                continue
        return total

    def rejected(self) -> list[RejectedReport]:
        return [
            RejectedReport.model_validate_json(path.read_text())
            for path in sorted(self.rejected_dir.glob("*.json"))
        ]
