"""Retracting a measurement: readers drop it, the row stays, and the table migrates both ways."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from catalog_copy import copy_catalog
from cli_output import without_price_age_warning
from sqlalchemy import inspect
from sqlmodel import Session, select

from quantplan.catalog.db import downgrade, make_engine, session_scope, upgrade
from quantplan.catalog.models import QualityResult
from quantplan.catalog.reading import read_records
from quantplan.catalog.records import QualityRecord
from quantplan.catalog.retractions import retract
from quantplan.catalog.store import ConflictError, describe_key, write_record

QUANTPLAN = [sys.executable, "-m", "quantplan"]
PLAN = ("plan", "--model", "Llama-3.1-8B", "--rps", "5")
BAD_ROW_WARNING = "quality_result id 2: perplexity_delta_pct"


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "250", "LOGNAME": "alice", "USER": "alice"}
    return subprocess.run([*QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=120)


def seeded(path: Path, seeded_catalog_file: Path) -> str:
    """A seeded catalog at ``path``: a copy of the session's (conftest's seeded_catalog_file)."""
    return f"sqlite:///{copy_catalog(seeded_catalog_file, path)}"


def test_retracting_a_bad_row_silences_it_and_keeps_it(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    path = tmp_path / "catalog.db"
    url = seeded(path, seeded_catalog_file)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE quality_result SET perplexity_delta_pct = 'NaN' WHERE id = 2")

    unknown = run("catalog", "retract", "quality", "420", "--reason", "typo", db=url)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "no quality row has id 420" in unknown.stderr and "did you mean 42" in unknown.stderr

    done = run("catalog", "retract", "quality", "2", "--reason", "eval crashed: NaN", db=url)
    assert done.returncode == 0, done.stderr
    assert "retracted quality row 2" in done.stdout and "by alice" in done.stdout

    again = run("catalog", "retract", "quality", "2", "--reason", "twice", db=url)
    assert again.returncode == 2 and "already retracted" in again.stderr
    assert "eval crashed: NaN" in again.stderr  # the first retraction stands

    plan = run(*PLAN, db=url)
    assert plan.returncode == 0, plan.stderr
    # The seed's undated prices still warn; nothing else may.
    assert "warning" not in without_price_age_warning(plan.stderr), plan.stderr
    assert BAD_ROW_WARNING not in plan.stderr
    with sqlite3.connect(path) as connection:
        stored = connection.execute(
            "SELECT perplexity_delta_pct FROM quality_result WHERE id = 2"
        ).fetchone()
        retraction = connection.execute(
            "SELECT kind, row_id, reason, retracted_by FROM retraction"
        ).fetchall()
    assert stored == ("NaN",)
    assert retraction == [("quality", 2, "eval crashed: NaN", "alice")]


def test_valid_retracted_row_is_listed_with_its_mark_but_not_exported(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    url = seeded(tmp_path / "catalog.db", seeded_catalog_file)
    done = run("catalog", "retract", "quality", "5", "--reason", "wrong baseline", db=url)
    assert done.returncode == 0, done.stderr

    listed = run("catalog", "list", "-k", "quality", "--include-retracted", "-w", "id=5", db=url)
    assert listed.returncode == 0, listed.stderr
    assert "wrong baseline" in listed.stdout and "by alice" in listed.stdout

    exported = run("catalog", "export", "--kind", "quality", "-o", str(tmp_path / "q.json"), db=url)
    assert exported.returncode == 0, exported.stderr
    assert "left out 1 retracted" in exported.stderr


def test_a_retracted_measurement_may_be_replaced_by_its_correction(
    seeded_sqlite_url: str,
) -> None:
    engine = make_engine(seeded_sqlite_url)
    first = QualityRecord(
        model="Llama-3.1-8B", scheme="awq-w4a16-g128", eval_set="held-out", perplexity=7.0,
        basis="measured", source="bench", run_id="run-1",
    )  # fmt: skip
    corrected = first.model_copy(update={"perplexity": 7.2})
    with session_scope(engine) as session:
        write_record(session, "quality", first)
    with pytest.raises(ConflictError), session_scope(engine) as session:
        write_record(session, "quality", corrected)
    with Session(engine) as session:
        row_id = session.exec(
            select(QualityResult.id).where(QualityResult.eval_set == "held-out")
        ).one()
    with session_scope(engine) as session:
        retract(session, "quality", row_id, "perplexity measured on the wrong split", "bob")
        assert write_record(session, "quality", corrected) == "inserted"
    with Session(engine) as session:
        held_out = [r for r in read_records(session, "quality") if r.eval_set == "held-out"]
    assert [r.perplexity for r in held_out] == [7.2]


def test_migration_0004_creates_and_drops_the_retraction_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    upgrade(engine)
    assert "retraction" in inspect(engine).get_table_names()
    downgrade(engine, "0003")
    assert "retraction" not in inspect(engine).get_table_names()
    assert "quality_result" in inspect(engine).get_table_names()


def test_seed_retractions_take_back_no_row_the_seed_still_ships() -> None:
    from quantplan.catalog.seeding import seed_records, seed_retractions

    shipped = {
        (kind, describe_key(kind, record)) for kind, records in seed_records() for record in records
    }
    for entry in seed_retractions():
        key = (entry.kind, describe_key(entry.kind, entry.record()))
        assert key not in shipped, f"{entry.reason}: the seed still ships it"


def test_a_catalog_seeded_before_a_correction_gets_the_wrong_row_retracted(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    """A catalog an earlier quantplan seeded holds the row the seed later took back: opening it
    with this quantplan retracts that row (kept, with the reason), the corrected row reads in
    its place, and a reseed finds nothing more to take back."""
    from quantplan.catalog.models import Retraction, SeedState
    from quantplan.catalog.seeding import SEED_VERSION, seed_retractions

    url = seeded(tmp_path / "older.db", seeded_catalog_file)
    entry = seed_retractions()[0]
    wrong = entry.record()
    assert isinstance(wrong, QualityRecord)
    with session_scope(make_engine(url)) as session:
        assert session.exec(select(Retraction)).all() == []  # a fresh seed retracts nothing
        write_record(session, "quality", wrong)  # what the earlier seed wrote
        session.delete(session.get(SeedState, SEED_VERSION))  # ... and the version it stopped at

    listed = run("catalog", "list", "--kind", "quality", "--json", db=url)
    assert listed.returncode == 0, listed.stderr

    with Session(make_engine(url)) as session:
        taken_back = session.exec(select(Retraction)).all()
        assert [(r.reason, r.retracted_by) for r in taken_back] == [
            (entry.reason, f"quantplan seed version {entry.seed_version}")
        ]
        kept = session.get(QualityResult, taken_back[0].row_id)
        assert kept is not None and kept.task_score == wrong.task_score  # the row stays
        readers_see = [
            r
            for r in read_records(session, "quality")
            if isinstance(r, QualityRecord)
            and (r.model, r.scheme, r.eval_set) == (wrong.model, wrong.scheme, wrong.eval_set)
        ]
    assert [(r.task_score, r.baseline_task_score) for r in readers_see] == [
        (wrong.baseline_task_score, wrong.task_score)  # the corrected row: the pair unswapped
    ]
    reseed = run("catalog", "reseed", db=url)
    assert reseed.returncode == 0, reseed.stderr
    assert "taken back" not in reseed.stdout  # already retracted: nothing more to say


def test_reseed_takes_back_a_shipped_mistake_and_says_so(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    from quantplan.catalog.seeding import seed_retractions

    url = seeded(tmp_path / "current.db", seeded_catalog_file)
    with session_scope(make_engine(url)) as session:
        write_record(session, "quality", seed_retractions()[0].record())
    reseed = run("catalog", "reseed", db=url)
    assert reseed.returncode == 0, reseed.stderr
    assert "1 shipped measurement(s) found wrong since taken back" in " ".join(
        reseed.stdout.split()
    )
    listed = run("catalog", "list", "--kind", "quality", "--include-retracted", db=url)
    assert "swapped" in " ".join(listed.stdout.split())


def test_a_catalog_with_the_cached_h200_curves_reads_the_remeasured_ones_instead(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    """Seed version 19 took back the 14 llama-server H200 rows whose levels repeated prompts to
    a cache-on server: a catalog seeded before holds them; opened by this quantplan, they are
    retracted and readers see the rerun's rows (their own source, so no key is shared)."""
    from quantplan.catalog.models import Retraction, SeedState
    from quantplan.catalog.records import ProfileRecord
    from quantplan.catalog.seeding import SEED_VERSION, seed_retractions

    url = seeded(tmp_path / "v18.db", seeded_catalog_file)
    cached = [entry for entry in seed_retractions() if entry.seed_version == 19]
    assert len(cached) == 14 and {entry.kind for entry in cached} == {"profiles"}
    with session_scope(make_engine(url)) as session:
        for entry in cached:
            write_record(session, "profiles", entry.record())
        session.delete(session.get(SeedState, SEED_VERSION))

    listed = run("catalog", "list", "--kind", "profiles", "--json", db=url)
    assert listed.returncode == 0, listed.stderr

    with Session(make_engine(url)) as session:
        taken_back = session.exec(select(Retraction).where(Retraction.kind == "profiles")).all()
        served = [
            r
            for r in read_records(session, "profiles")
            if isinstance(r, ProfileRecord)
            and r.hardware == "H200"
            and (r.run_id or "").startswith("gpu-node-steps-")
        ]
    assert len(taken_back) == 14
    assert len(served) == 14 and all(r.source.endswith("2026-12-04 rerun") for r in served)
    # The 8B shape at 8 requests: 656 tok/s with cached prompts, 530 remeasured.
    at_8 = [r for r in served if r.model == "Llama-3.1-8B" and r.concurrency == 8]
    assert [r.output_tokens_per_s for r in at_8] == [530.4]
