"""The collector: the one writer of measurements into the catalog, and the event publisher.

Reports arrive as JSON, are validated (``MeasurementReport``, strict), persisted to the spool
and acknowledged; a writer thread then moves them into the catalog through
``quantplan.catalog.reports.record_report``, which is idempotent on run id. While the database
is unreachable the spool grows and the writer retries with backoff; when it comes back the spool
drains in arrival order. Every outcome is published on the event bus.

This module has no Ray in it: ``collector_actor`` wraps it in a Ray actor for the cluster, and
tests and benchmarks drive it directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from quantplan.agent.cluster.events import CatalogEvent, EventBus, FleetEvent, ReportEvent
from quantplan.agent.cluster.spool import ReportSpool
from quantplan.agent.cluster.traffic import TrafficShare, TrafficSums
from quantplan.catalog.db import CatalogBusyError
from quantplan.catalog.reports import MeasurementReport, ReportOutcome
from quantplan.catalog.urls import redact_url
from quantplan.errors import QuantplanError

LOG = logging.getLogger(__name__)

ReportWriter = Callable[[Engine, MeasurementReport], ReportOutcome]
BatchWriter = Callable[[Engine, list[MeasurementReport]], list[ReportOutcome]]
"""Writes many reports in one transaction, all or nothing; outcomes in order."""
UNAVAILABLE_ERRORS = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    CatalogBusyError,
)
"""Database errors that mean "not now" (server down, file locked): keep the report, retry."""

MIN_RETRY_S = 0.25
MAX_RETRY_S = 5.0
TRAFFIC_TICK_S = 1.0
"""How often summed traffic slots are checked for being over (their cost events published)."""


class SubmitResult(BaseModel):
    """The collector's answer to one submission."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accepted: int = Field(ge=0, description="Reports persisted to the spool (will be written)")
    rejected: tuple[str, ...] = Field(default=(), description="Why each refused report was bad")


class CollectorStats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str
    catalog_available: bool
    pending: int = Field(ge=0, description="Reports in the spool, not yet in the catalog")
    recorded: int = Field(ge=0, description="Reports written since this collector started")
    duplicates: int = Field(ge=0, description="Reports whose run was already final")
    rejected: int = Field(ge=0, description="Reports refused (bad JSON or refused by catalog)")
    last_error: str | None = None


def _default_writer() -> ReportWriter:
    from quantplan.catalog.reports import record_report

    return record_report


def _catalog_batch_writer() -> BatchWriter | None:
    """The catalog's batch writer, where this catalog version has one."""
    try:
        from quantplan.catalog.reports import record_reports
    except ImportError:
        return None
    return record_reports


class ReportCollector:
    """Accept, spool and write reports; publish what happens. Thread-safe."""

    def __init__(
        self,
        database_url: str,
        spool_dir: Path,
        bus: EventBus | None = None,
        writer: ReportWriter | None = None,
        batch_writer: BatchWriter | None = None,
    ) -> None:
        self.database_url = database_url
        self.spool = ReportSpool(spool_dir)
        self.bus = bus or EventBus()
        self._writer = writer or _default_writer()
        self._batch_writer = batch_writer if batch_writer is not None else _catalog_batch_writer()
        self._engine: Engine | None = None
        self._flush_lock = threading.Lock()  # one writer at a time
        self._count_lock = threading.Lock()  # never held while writing: submit stays fast
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = self.spool.count()
        self._counts = {"recorded": 0, "duplicate": 0, "rejected": 0}
        self._available = True
        self._last_error: str | None = None
        self._traffic = TrafficSums()
        self._traffic_lock = threading.Lock()
        self._ticker: threading.Thread | None = None

    # -- accepting -------------------------------------------------------------------------

    def submit(self, reports: list[str]) -> SubmitResult:
        """Validate and persist ``reports`` (JSON texts); the writer thread does the rest."""
        valid: list[str] = []
        rejected: list[str] = []
        for text in reports:
            try:
                report = MeasurementReport.model_validate_json(text)
            except ValidationError as error:
                reason = f"invalid report: {error.error_count()} error(s): {_first_error(error)}"
                rejected.append(reason)
                self._counts["rejected"] += 1
                self.spool.reject(text[:100_000], reason)
                self.publish(
                    ReportEvent(run_id="?", kind="?", status="?", outcome="rejected", detail=reason)
                )
                continue
            valid.append(report.model_dump_json())
        if valid:
            self.spool.put(valid)
            with self._count_lock:
                self._pending += len(valid)
            self._wake.set()
        return SubmitResult(accepted=len(valid), rejected=tuple(rejected))

    def publish(self, event: FleetEvent) -> FleetEvent:
        return self.bus.publish(event)

    # -- live traffic of lines whose replicas answer the endpoint themselves ---------------

    def add_traffic(self, share: TrafficShare) -> None:
        """One replica's share of a traffic slot; the slot's sums are published once it is
        over (:meth:`publish_traffic`, every second on the ticker thread)."""
        with self._traffic_lock:
            self._traffic.add(share)

    def publish_traffic(self, now: float | None = None) -> int:
        """Publish the cost events of every summed slot that is over; returns how many."""
        with self._traffic_lock:
            events = self._traffic.due(time.time() if now is None else now)
        for event in events:
            self.publish(event)
        return len(events)

    def _tick_traffic(self) -> None:
        while not self._closing.wait(TRAFFIC_TICK_S):
            try:
                self.publish_traffic()
            except Exception:  # a bad share must not stop the sums of every other
                LOG.exception("could not publish summed traffic")

    # -- writing ---------------------------------------------------------------------------

    def _open(self) -> Engine:
        if self._engine is None:
            from quantplan.catalog.db import open_catalog

            self._engine = open_catalog(self.database_url)
        return self._engine

    def flush(self) -> bool:
        """Write every spooled report now. Returns False if the catalog is unavailable."""
        with self._flush_lock:
            for batch in self.spool.pending():
                try:
                    reports = list(self.spool.read(batch).reports)
                except (OSError, ValidationError):
                    continue  # renamed away by a concurrent flush, or a torn file we never wrote
                written = self._write_batch(reports)
                if written is False:
                    return False
                if written:
                    self.spool.done(batch)
                    continue
                for index, text in enumerate(reports):
                    if not self._write_one(text):
                        if index:
                            self.spool.rewrite(batch, reports[index:])
                        return False
                self.spool.done(batch)
            self._set_available(True, "")
            return True

    def _write_batch(self, texts: list[str]) -> bool | None:
        """All of a spool batch in one transaction: True when written, False when the catalog
        is unavailable, None to write it report by report (no batch writer, or the batch held
        a report the catalog refuses -- one by one finds and sets aside that report)."""
        if self._batch_writer is None:
            return None
        reports = [MeasurementReport.model_validate_json(text) for text in texts]
        try:
            outcomes = self._batch_writer(self._open(), reports)
        except UNAVAILABLE_ERRORS as error:
            self._set_available(False, _short(error))
            return False
        except QuantplanError as error:
            if self._engine is None:
                self._set_available(False, _short(error))
                return False
            return None
        except Exception:
            return None
        with self._count_lock:
            self._pending -= len(reports)
        for report, outcome in zip(reports, outcomes, strict=True):
            self._counts["recorded" if outcome == "recorded" else "duplicate"] += 1
            run = report.run
            self.publish(
                ReportEvent(run_id=run.run_id, kind=run.kind, status=run.status, outcome=outcome)
            )
        return True

    def _write_one(self, text: str) -> bool:
        report = MeasurementReport.model_validate_json(text)
        run = report.run
        try:
            outcome = self._writer(self._open(), report)
        except UNAVAILABLE_ERRORS as error:
            self._set_available(False, _short(error))
            return False
        except QuantplanError as error:
            if self._engine is None:  # open_catalog failed: the server is not there
                self._set_available(False, _short(error))
                return False
            self._reject(text, run.run_id, run.kind, run.status, str(error))
            return True
        except Exception as error:  # a report the catalog refuses for good must not block
            LOG.exception("catalog refused report %s", run.run_id)
            self._reject(text, run.run_id, run.kind, run.status, _short(error))
            return True
        with self._count_lock:
            self._pending -= 1
        self._counts["recorded" if outcome == "recorded" else "duplicate"] += 1
        self.publish(
            ReportEvent(run_id=run.run_id, kind=run.kind, status=run.status, outcome=outcome)
        )
        return True

    def _reject(self, text: str, run_id: str, kind: str, status: str, reason: str) -> None:
        with self._count_lock:
            self._pending -= 1
        self._counts["rejected"] += 1
        self.spool.reject(text, reason)
        self.publish(
            ReportEvent(run_id=run_id, kind=kind, status=status, outcome="rejected", detail=reason)
        )

    def _set_available(self, available: bool, detail: str) -> None:
        if available == self._available:
            return
        self._available = available
        self._last_error = None if available else detail
        state = "available" if available else "unavailable"
        LOG.warning("catalog %s: %s", state, detail)
        self.publish(CatalogEvent(state=state, buffered=max(0, self._pending), detail=detail))

    # -- background writer -----------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it also drains whatever a previous run left spooled)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="report-writer", daemon=True)
        self._thread.start()
        self._ticker = threading.Thread(target=self._tick_traffic, name="traffic-sums", daemon=True)
        self._ticker.start()
        self._wake.set()

    def _run(self) -> None:
        delay = MIN_RETRY_S
        while not self._closing.is_set():
            self._wake.wait(timeout=delay if not self._available else MAX_RETRY_S)
            self._wake.clear()
            if self._closing.is_set():
                break
            # While the database is down, retry with growing pauses (a submission still wakes
            # the writer at once, so a recovered database is noticed without waiting it out).
            delay = MIN_RETRY_S if self.flush() else min(delay * 2, MAX_RETRY_S)

    def wait_drained(self, timeout_s: float) -> bool:
        """Block until the spool is empty (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._pending <= 0 and not self.spool.pending():
                return True
            self._wake.set()
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._ticker is not None:
            self._ticker.join(timeout=10)
            self._ticker = None

    def stats(self) -> CollectorStats:
        return CollectorStats(
            database_url=_redact(self.database_url),
            catalog_available=self._available,
            pending=max(0, self._pending),
            recorded=self._counts["recorded"],
            duplicates=self._counts["duplicate"],
            rejected=self._counts["rejected"],
            last_error=self._last_error,
        )


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}"


def _short(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _redact(url: str) -> str:
    """The URL without its password, for status output and events."""
    return redact_url(url)
