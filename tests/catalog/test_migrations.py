"""Alembic migrations: upgrade an empty and a seeded database; the schema matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from quantplan.catalog import models  # noqa: F401  (table registration)
from quantplan.catalog.db import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    prepare,
    upgrade,
)
from quantplan.catalog.models import InstanceType
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, func, select


def test_upgrade_empty_database_to_head_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_downgrade_to_base_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert "instance_type" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert "instance_type" in inspect(engine).get_table_names()


def test_upgrade_on_seeded_database_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    prepare(engine)  # migrates and seeds
    with Session(engine) as session:
        before = session.exec(select(func.count()).select_from(InstanceType)).one()
    upgrade(engine)  # nothing to do at head, and it must not touch the rows
    prepare(engine)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(InstanceType)).one() == before
    assert before > 0


def test_upgrade_from_first_revision_keeps_rows_and_fills_new_columns(db_url: str) -> None:
    """A catalog created and filled at revision 0001 upgrades to head without losing rows."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        for name, kind in (("EPYC-Genoa", "cpu"), ("Xeon-SapphireRapids", "cpu"), ("L4", "gpu")):
            connection.execute(
                text(
                    "INSERT INTO hardware (name, kind, vendor, memory_bandwidth_gbps, isa_flags, "
                    "source) VALUES (:name, :kind, 'v', 100, '', 'test')"
                ),
                {"name": name, "kind": kind},
            )
    upgrade(engine)
    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT name, threads_per_core FROM hardware")).all())
    assert rows == {"EPYC-Genoa": 1, "Xeon-SapphireRapids": 2, "L4": 2}
    assert current_revision(engine) == head_revision()


def test_schemes_added_after_seeding_reach_existing_catalogs(db_url: str) -> None:
    """A catalog seeded at revision 0002 gains the per-channel W8A16 schemes on upgrade."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO quant_scheme (name, family, bits, bits_per_weight, engines, source) "
                "VALUES ('bf16', 'baseline', 16, 16.0, 'vllm', 'test')"
            )
        )
    upgrade(engine)
    with engine.connect() as connection:
        names = set(connection.execute(text("SELECT name FROM quant_scheme")).scalars())
    assert {"bf16", "gptq-w8a16-ch", "awq-w8a16-ch"} <= names
    downgrade(engine, "0002")
    with engine.connect() as connection:
        names = set(connection.execute(text("SELECT name FROM quant_scheme")).scalars())
    assert names == {"bf16"}
