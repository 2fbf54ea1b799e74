"""Migration 0005 on a real PostgreSQL server.

0005 drops 0001's one-price-per-type unique constraint, which 0001 created without a name, so
0005 looks the name up: PostgreSQL calls it ``instance_type_cloud_name_region_key``, while
0005's own downgrade recreates it as ``uq_instance_type_cloud``. Both spellings must be found,
or the upgrade fails (or, worse, leaves the constraint and every price refresh then breaks)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from quantplan.catalog import models  # noqa: F401  (table registration)
from quantplan.catalog.db import current_revision, downgrade, head_revision, make_engine, upgrade

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

KEY = ["cloud", "name", "region"]


def price_key_constraints(engine: Engine) -> list[str]:
    """Names of the unique constraints on (cloud, name, region) of instance_type."""
    return [
        unique["name"]
        for unique in inspect(engine).get_unique_constraints("instance_type")
        if sorted(unique["column_names"]) == sorted(KEY)
    ]


def add_price(engine: Engine, price: float, superseded: bool) -> None:
    with engine.begin() as connection:
        hardware_id = connection.execute(text("SELECT min(id) FROM hardware")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO instance_type (cloud, name, region, hardware_id, accelerator_count, "
                "vcpus, memory_gib, price_per_hour, price_source, superseded_at) VALUES ('aws', "
                "'test.large', 'us-east-1', :hw, 0, 2, 8, :price, 'test', "
                + ("now()" if superseded else "NULL")
                + ")"
            ),
            {"hw": hardware_id, "price": price},
        )


def test_0005_finds_the_unnamed_constraint_and_downgrades_to_0004_and_back(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine, "0004")
    assert price_key_constraints(engine) == ["instance_type_cloud_name_region_key"]
    with engine.begin() as connection:  # 0005 marks a catalog holding seed data as seeded
        connection.execute(
            text(
                "INSERT INTO hardware (name, kind, vendor, memory_bandwidth_gbps, isa_flags, "
                "source) VALUES ('EPYC-Genoa', 'cpu', 'AMD', 460, '', 'test')"
            )
        )

    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert price_key_constraints(engine) == []
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        seeded = connection.execute(text("SELECT version FROM seed_state")).scalars().all()
    assert diff == [], f"models and migrations disagree on PostgreSQL: {diff}"
    assert seeded == [1]
    # Price history: the same type twice, the old row superseded.
    add_price(engine, 0.10, superseded=True)
    add_price(engine, 0.08, superseded=False)

    downgrade(engine, "0004")
    assert current_revision(engine) == "0004"
    assert price_key_constraints(engine) == ["uq_instance_type_cloud"]
    assert "seed_state" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        prices = connection.execute(
            text("SELECT price_per_hour FROM instance_type WHERE name = 'test.large'")
        ).all()
    assert prices == [(0.08,)]  # only the current price survives the one-row-per-type schema

    upgrade(engine)  # now the constraint has 0005's downgrade's name
    assert current_revision(engine) == head_revision()
    assert price_key_constraints(engine) == []
    add_price(engine, 0.09, superseded=False)  # a second row of the same type is allowed again
    engine.dispose()
