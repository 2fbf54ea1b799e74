"""Reading an up-to-date SQLite catalog with the standard library (catalog/sqlite_read.py).

The quick read must give exactly the snapshot the full read gives, and must hand every catalog
that needs work, a warning or an error back to the full open without touching it. The versions
it compares against are read from source files (catalog/shipped_versions.py): checked here
against Alembic and the seeding module themselves.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalog_copy import copy_catalog

from quantplan.catalog import shipped_versions
from quantplan.catalog.sqlite_read import TABLES, _columns, read_snapshot

PLAN = ["plan", "--model", "Llama-3.2-1B", "--rps", "2", "--json"]


def _full_read(path: Path) -> tuple[object, str | None]:
    from quantplan.catalog.db import current_revision, make_engine, prepare
    from quantplan.catalog.snapshot import load_snapshot

    engine = make_engine(f"sqlite:///{path}")
    prepare(engine)
    try:
        return load_snapshot(engine), current_revision(engine)
    finally:
        engine.dispose()


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.parent.glob(path.name + "*")}


# ------------------------------------------------------------------ the shipped versions


def test_the_versions_read_from_source_are_alembics_and_the_seeding_modules() -> None:
    from alembic.script import ScriptDirectory

    from quantplan.catalog.db import MIGRATIONS_DIR
    from quantplan.catalog.seeding import SEED_VERSION

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert shipped_versions.schema_head() == script.get_current_head()
    graph = shipped_versions.revision_graph()
    assert graph == {s.revision: s.down_revision for s in script.walk_revisions()}
    assert shipped_versions.seed_version() == SEED_VERSION


def test_unusual_migration_files_give_no_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch, or a revision line in another form, means "ask Alembic", never a guess."""
    versions = tmp_path / "versions"
    versions.mkdir()
    monkeypatch.setattr(shipped_versions, "VERSIONS_DIR", versions)

    def head_of(files: dict[str, str]) -> str | None:
        for old in versions.iterdir():
            old.unlink()
        for name, text in files.items():
            (versions / name).write_text(text)
        shipped_versions.revision_graph.cache_clear()
        return shipped_versions.schema_head()

    try:
        one = 'revision: str = "0001"\ndown_revision: str | None = None\n'
        two = "revision = '0002'\ndown_revision = '0001'\n"
        assert head_of({"a.py": one, "b.py": two}) == "0002"
        branch = 'revision = "0003"\ndown_revision = "0001"\n'
        assert head_of({"a.py": one, "b.py": two, "c.py": branch}) is None
        assert (
            head_of({"a.py": one, "b.py": "revision = make_id()\ndown_revision = '0001'\n"}) is None
        )
        assert head_of({"a.py": one, "b.py": 'revision = "0002"\ndown_revision = "0009"\n'}) is None
    finally:
        shipped_versions.revision_graph.cache_clear()


def test_the_tables_are_the_stores() -> None:
    """The quick read's map of kinds onto tables restates catalog/store.py's; it must agree."""
    from sqlalchemy import JSON
    from sqlmodel.sql.sqltypes import UTCDateTime

    from quantplan.catalog.store import INSTANCE_BOOKKEEPING, KINDS

    assert set(TABLES) == set(KINDS)
    for kind, spec in KINDS.items():
        table = TABLES[kind]
        stored = spec.table.__table__.columns  # type: ignore[attr-defined]
        assert table.name == spec.table.__tablename__
        assert [(r.column, r.kind, r.field) for r in table.references] == [
            (r.column, r.kind, r.field) for r in spec.references
        ]
        unread = (
            set(INSTANCE_BOOKKEEPING) - set(table.bookkeeping) if kind == "instances" else set()
        )
        assert set(_columns(kind)) | unread == set(stored.keys()), kind
        assert set(table.datetimes) == {c.name for c in stored if isinstance(c.type, UTCDateTime)}
        assert set(table.json) == {c.name for c in stored if isinstance(c.type, JSON)}


# ------------------------------------------------------------------ same snapshot as the full read


def test_a_seeded_catalog_reads_as_the_full_read_gives(seeded_catalog_path: Path) -> None:
    quick = read_snapshot(seeded_catalog_path)
    assert quick is not None
    snapshot, revision = _full_read(seeded_catalog_path)
    assert quick == (snapshot, revision)
    assert revision == shipped_versions.schema_head()


def test_history_retractions_and_measurements_read_as_the_full_read_gives(
    seeded_catalog_path: Path,
) -> None:
    """Superseded prices (named by profiles, never planned), retracted measurements (left out),
    a profile on an instance, details, and times stored with and without an offset."""
    from sqlmodel import select

    from quantplan.catalog.db import make_engine, session_scope
    from quantplan.catalog.models import InstanceType
    from quantplan.catalog.price_history import supersede
    from quantplan.catalog.records import ProfileRecord, QualityRecord
    from quantplan.catalog.retractions import retract
    from quantplan.catalog.store import write_record

    engine = make_engine(f"sqlite:///{seeded_catalog_path}")
    with session_scope(engine) as session:
        row = session.exec(
            select(InstanceType).where(
                InstanceType.name == "g6.xlarge", InstanceType.cloud == "aws"
            )
        ).first()
        assert row is not None
        instance = f"{row.cloud}/{row.name}/{row.region}"
        profile = ProfileRecord(
            model="Llama-3.1-8B", scheme="awq-w4a16-g128", engine="vllm", hardware="L4",
            instance=instance, input_tokens=512, output_tokens=128, concurrency=8,
            output_tokens_per_s=321.5, basis="measured", source="a test", run_id="quick-1",
            details={"bandwidth_use": 0.61, "layers": [1, 2]},
            recorded_at=datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
        )  # fmt: skip
        write_record(session, "profiles", profile)
        # The profile was measured on the old price row: after the refresh it still names it.
        supersede(session, row, {"price_per_hour": row.price_per_hour * 1.5}, datetime.now(UTC))
        write_record(
            session,
            "profiles",
            profile.model_copy(update={"run_id": "quick-2", "output_tokens_per_s": 1.0}),
        )
        quality = QualityRecord(
            model="Llama-3.1-8B", scheme="awq-w4a16-g128", eval_set="a test set",
            perplexity=7.1, baseline_perplexity=7.0, basis="measured", source="a test",
        )  # fmt: skip
        write_record(session, "quality", quality)
        session.flush()
    with sqlite3.connect(seeded_catalog_path) as connection:
        retracted = connection.execute("SELECT max(id) FROM profile").fetchone()[0]
        # A time written by hand with an offset: SQLModel returns it converted to UTC.
        connection.execute(
            "UPDATE quality_result SET recorded_at = '2026-11-30 10:00:00+02:00' "
            "WHERE id = (SELECT max(id) FROM quality_result)"
        )
    connection.close()
    with session_scope(engine) as session:
        retract(session, "profiles", retracted, "a test retraction", "tester")
    engine.dispose()

    quick = read_snapshot(seeded_catalog_path)
    assert quick is not None
    snapshot, revision = _full_read(seeded_catalog_path)
    assert quick == (snapshot, revision)
    mine = [p for p in quick[0].profiles if p.source == "a test"]
    assert [p.run_id for p in mine] == ["quick-1"]  # quick-2 retracted
    assert mine[0].instance == instance and mine[0].details["layers"] == [1, 2]
    assert [q.recorded_at for q in quick[0].quality if q.source == "a test"] == [
        datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    ]


# ------------------------------------------------------------------ handed back, untouched


def _needs_full_open(path: Path) -> None:
    before = _files(path)
    assert read_snapshot(path) is None
    assert _files(path) == before  # nothing created, changed or left behind


def test_a_missing_file_is_left_to_the_full_open(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path / "catalog.db") is None
    assert not any(tmp_path.iterdir())


def test_catalogs_that_need_work_are_left_to_the_full_open(tmp_path: Path) -> None:
    from quantplan.catalog.db import make_engine, prepare, upgrade

    old = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{old}")
    upgrade(engine, "0004")  # a migration to run
    engine.dispose()
    _needs_full_open(old)

    empty = tmp_path / "empty.db"
    engine = make_engine(f"sqlite:///{empty}")
    prepare(engine, seed=False)  # migrated, never seeded
    engine.dispose()
    _needs_full_open(empty)

    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"this is not a database" * 200)
    _needs_full_open(damaged)


def test_a_catalog_from_an_older_seed_or_a_newer_schema_is_left_to_the_full_open(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    older_seed = copy_catalog(seeded_catalog_file, tmp_path / "older-seed.db")
    with sqlite3.connect(older_seed) as connection:
        connection.execute(
            "DELETE FROM seed_state WHERE version = (SELECT max(version) FROM seed_state)"
        )
    connection.close()
    _needs_full_open(older_seed)

    newer = copy_catalog(seeded_catalog_file, tmp_path / "newer.db")
    with sqlite3.connect(newer) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0999_from_the_future'")
    connection.close()
    _needs_full_open(newer)


def test_rows_the_full_read_warns_about_are_left_to_it(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    """Each kind of bad row makes the full read name it in a warning: the quick read gives way."""
    breakages = {
        "invalid": "UPDATE quality_result SET perplexity_delta_pct = 'NaN' WHERE id = 2",
        "dangling": "UPDATE profile SET model_id = 99999 WHERE id = 1",
        "undecodable": "UPDATE profile SET details = '{not json' WHERE id = 1",
        "bad time": "UPDATE instance_type SET superseded_at = 'yesterday' WHERE id = 1",
    }
    for name, sql in breakages.items():
        path = copy_catalog(seeded_catalog_file, tmp_path / f"{name}.db")
        with sqlite3.connect(path) as connection:
            assert connection.execute(sql).rowcount == 1
        connection.close()
        _needs_full_open(path)


# ------------------------------------------------------------------ through the command


def test_a_plan_on_an_up_to_date_catalog_imports_neither_sqlalchemy_nor_alembic(
    seeded_catalog_path: Path,
) -> None:
    """No snapshot cache (as after any catalog change): the file is read with sqlite3; a
    catalog needing a migration still gets one (and then SQLAlchemy and Alembic)."""
    env = {
        **os.environ,
        "QUANTPLAN_DB": f"sqlite:///{seeded_catalog_path}",
        "QUANTPLAN_CACHE_DIR": "/dev/null/no-cache",  # cannot be made: nothing is cached
        "PYTHONPROFILEIMPORTTIME": "1",
    }
    quantplan = [sys.executable, "-m", "quantplan"]
    quick = subprocess.run(
        [*quantplan, *PLAN], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert quick.returncode == 0, quick.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in quick.stderr.splitlines() if "|" in line}
    assert "quantplan.catalog.sqlite_read" in imported
    assert not {m for m in imported if m.split(".")[0] in ("sqlalchemy", "sqlmodel", "alembic")}

    from quantplan.catalog.db import downgrade, make_engine

    engine = make_engine(f"sqlite:///{seeded_catalog_path}")
    downgrade(engine, "0005")
    engine.dispose()
    migrated = subprocess.run(
        [*quantplan, *PLAN], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert "alembic.runtime.migration" in migrated.stderr
    assert read_snapshot(seeded_catalog_path) is not None  # at head again
