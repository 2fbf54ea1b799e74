"""The collector against real databases: idempotent writes, bad reports, outages, restarts."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import benchmark_report
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from quantplan.agent.cluster.collector import ReportCollector
from quantplan.agent.cluster.events import CatalogEvent, EventBus, ReportEvent
from quantplan.catalog.db import open_catalog, resolve_database_url
from quantplan.catalog.reports import list_runs
from quantplan.catalog.snapshot import load_snapshot


def profile_rows(url: str, run_ids: set[str]) -> list[str]:
    snapshot = load_snapshot(open_catalog(url))
    return [p.run_id for p in snapshot.profiles if p.run_id in run_ids]


def report_outcomes(bus: EventBus) -> dict[str, list[str]]:
    outcomes: dict[str, list[str]] = {}
    for event in bus.events_since(0, limit=100_000).events:
        if isinstance(event, ReportEvent):
            outcomes.setdefault(event.run_id, []).append(event.outcome)
    return outcomes


def test_reports_are_written_once_even_when_sent_twice(seeded_db_url: str, tmp_path: Path) -> None:
    collector = ReportCollector(seeded_db_url, tmp_path / "spool")
    reports = [benchmark_report() for _ in range(5)]
    texts = [r.model_dump_json() for r in reports]
    assert collector.submit(texts).accepted == 5
    assert collector.submit(texts[:2]).accepted == 2  # a retried delivery
    assert collector.flush()
    ids = {r.run.run_id for r in reports}
    assert sorted(profile_rows(seeded_db_url, ids)) == sorted(ids)
    outcomes = report_outcomes(collector.bus)
    resent = {r.run.run_id for r in reports[:2]}
    assert all(outcomes[r] == ["recorded", "duplicate"] for r in resent)
    assert all(outcomes[r] == ["recorded"] for r in ids - resent)
    assert collector.stats().pending == 0
    assert collector.spool.pending() == []


def test_bad_reports_are_refused_without_blocking_good_ones(seeded_sqlite_url: str, tmp_path: Path):
    collector = ReportCollector(seeded_sqlite_url, tmp_path / "spool")
    good = benchmark_report()
    unknown_hardware = benchmark_report().model_copy(deep=True)
    bad_profile = unknown_hardware.profiles[0].model_copy(update={"hardware": "Xeon-Typo"})
    unknown_hardware = unknown_hardware.model_copy(update={"profiles": (bad_profile,)})
    result = collector.submit(
        [
            '{"run": {"run_id": "x"}, "extra": 1}',
            "not json",
            unknown_hardware.model_dump_json(),
            good.model_dump_json(),
        ]
    )
    assert result.accepted == 2 and len(result.rejected) == 2
    assert collector.flush()
    assert profile_rows(seeded_sqlite_url, {good.run.run_id}) == [good.run.run_id]
    rejected = collector.spool.rejected()
    assert len(rejected) == 3
    assert any("Xeon-Typo" in r.reason for r in rejected)
    assert collector.stats().rejected == 3


@pytest.mark.postgres
@pytest.mark.integration
def test_postgres_outage_queues_reports_and_flushes_them(postgres_url: str, tmp_path: Path):
    real = make_url(resolve_database_url(postgres_url))
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    proxy.start()
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    open_catalog(url)  # migrate and seed through the proxy while it is up
    collector = ReportCollector(url, tmp_path / "spool")
    collector.start()
    try:
        first = [benchmark_report() for _ in range(3)]
        collector.submit([r.model_dump_json() for r in first])
        assert collector.wait_drained(30)

        proxy.stop()  # the database goes away
        during = [benchmark_report() for _ in range(20)]
        assert collector.submit([r.model_dump_json() for r in during]).accepted == 20
        assert not collector.wait_drained(3)
        stats = collector.stats()
        assert not stats.catalog_available and stats.pending == 20
        events = collector.bus.events_since(0).events
        assert any(isinstance(e, CatalogEvent) and e.state == "unavailable" for e in events)

        proxy.start()  # and comes back on the same address
        assert collector.wait_drained(60)
    finally:
        collector.close()
        proxy.stop()
    ids = {r.run.run_id for r in first + during}
    assert sorted(profile_rows(postgres_url, ids)) == sorted(ids)
    assert collector.stats().catalog_available
    runs = {r["id"] for r in list_runs(open_catalog(postgres_url), limit=1000)}
    assert ids <= runs


def test_locked_sqlite_queues_reports_and_flushes_them(
    seeded_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("quantplan.catalog.db.SQLITE_BUSY_TIMEOUT_S", 0.5)  # 30 s by default
    open_catalog(seeded_sqlite_url)
    path = seeded_sqlite_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, timeout=0, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file: writes must wait
    collector = ReportCollector(seeded_sqlite_url, tmp_path / "spool")
    collector.start()
    reports = [benchmark_report() for _ in range(10)]
    try:
        collector.submit([r.model_dump_json() for r in reports])
        # Writes give up after the 0.5 s busy timeout and the catalog is marked unavailable ...
        deadline = time.monotonic() + 7
        while collector.stats().catalog_available and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not collector.stats().catalog_available
        # ... and the reports stay queued through further tries (each waits the busy timeout).
        assert not collector.wait_drained(1.5)
        assert not collector.stats().catalog_available
        blocker.rollback()
        blocker.close()
        assert collector.wait_drained(60)
    finally:
        collector.close()
    ids = {r.run.run_id for r in reports}
    assert sorted(profile_rows(seeded_sqlite_url, ids)) == sorted(ids)


def test_a_restarted_collector_flushes_what_the_old_one_spooled(seeded_sqlite_url: str, tmp_path):
    spool = tmp_path / "spool"
    unreachable = "postgresql+psycopg://nobody:x@127.0.0.1:9/none?connect_timeout=1"
    old = ReportCollector(unreachable, spool)
    reports = [benchmark_report() for _ in range(12)]
    assert old.submit([r.model_dump_json() for r in reports]).accepted == 12
    assert not old.flush()  # nothing could be written; the collector then dies
    del old
    new = ReportCollector(seeded_sqlite_url, spool)
    assert new.stats().pending == 12
    assert new.flush()
    ids = {r.run.run_id for r in reports}
    assert sorted(profile_rows(seeded_sqlite_url, ids)) == sorted(ids)


def test_submissions_from_many_threads_lose_nothing(seeded_sqlite_url: str, tmp_path: Path) -> None:
    collector = ReportCollector(seeded_sqlite_url, tmp_path / "spool")
    collector.start()
    reports = [benchmark_report() for _ in range(40)]

    def send(chunk: list) -> None:
        for report in chunk:
            collector.submit([report.model_dump_json()])

    threads = [threading.Thread(target=send, args=(reports[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert collector.wait_drained(60)
    collector.close()
    ids = {r.run.run_id for r in reports}
    assert sorted(profile_rows(seeded_sqlite_url, ids)) == sorted(ids)


def test_a_batch_writer_gets_whole_spool_batches_and_bad_reports_fall_back(
    seeded_sqlite_url: str, tmp_path: Path
) -> None:
    from quantplan.catalog.reports import record_report

    batches: list[int] = []

    def write_in_one_go(engine, reports):  # the real writer, called per batch
        batches.append(len(reports))
        return [record_report(engine, report) for report in reports]

    collector = ReportCollector(seeded_sqlite_url, tmp_path / "spool", batch_writer=write_in_one_go)
    good = [benchmark_report() for _ in range(5)]
    collector.submit([r.model_dump_json() for r in good])
    assert collector.flush()
    assert batches == [5]
    bad = benchmark_report()
    bad = bad.model_copy(
        update={"profiles": (bad.profiles[0].model_copy(update={"hardware": "Xeon-Typo"}),)}
    )
    more = [benchmark_report(), bad, benchmark_report()]
    collector.submit([r.model_dump_json() for r in more])
    assert collector.flush()  # the batch fails on the bad report; one by one sets it aside
    ids = {r.run.run_id for r in good} | {more[0].run.run_id, more[2].run.run_id}
    assert sorted(profile_rows(seeded_sqlite_url, ids)) == sorted(ids)
    assert len(collector.spool.rejected()) == 1
    assert collector.stats().pending == 0
