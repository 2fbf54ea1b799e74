"""Alembic migrations: upgrade an empty and a seeded database; the schema matches the models."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, SQLModel, func, select

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


def _insert_hardware(engine: Engine, rows: list[dict[str, object]]) -> None:
    """Hardware rows written with SQL, as a catalog at an older revision holds them: the
    given columns, plus the vendor, ISA flags and source every revision requires."""
    with engine.begin() as connection:
        for row in rows:
            values = {"vendor": "v", "isa_flags": "", "source": "test", **row}
            columns = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            connection.execute(text(f"INSERT INTO hardware ({columns}) VALUES ({marks})"), values)


def test_upgrade_from_first_revision_keeps_rows_and_fills_new_columns(db_url: str) -> None:
    """A catalog created and filled at revision 0001 upgrades to head without losing rows."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0001")
    _insert_hardware(
        engine, [dict(name=name, kind=kind, memory_bandwidth_gbps=100) for name, kind in
                 (("EPYC-Genoa", "cpu"), ("Xeon-SapphireRapids", "cpu"), ("L4", "gpu"))]
    )  # fmt: skip
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


def test_a_failed_upgrade_leaves_the_schema_as_it_was(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every upgrade is one transaction: a step that fails takes the DDL before it back too."""
    import alembic.op

    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO hardware (name, kind, vendor, memory_bandwidth_gbps, isa_flags, "
                "source) VALUES ('L4', 'gpu', 'nvidia', 300, '', 'test')"
            )
        )

    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected failure")

    # 0002 adds a column (DDL), then fills it (op.execute): the fill fails here.
    with monkeypatch.context() as patch:
        patch.setattr(alembic.op, "execute", fail)
        with pytest.raises(RuntimeError, match="injected failure"):
            upgrade(engine)
    assert current_revision(engine) == "0001"
    columns = {column["name"] for column in inspect(engine).get_columns("hardware")}
    assert "threads_per_core" not in columns
    assert not [name for name in inspect(engine).get_table_names() if "tmp" in name]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM hardware")).scalars().all() == ["L4"]

    # From an empty database, the tables 0001 made go too: nothing is left half-built.
    empty = make_engine(db_url.replace("catalog.db", "empty.db")) if "sqlite" in db_url else None
    if empty is not None:
        with monkeypatch.context() as patch:
            patch.setattr(alembic.op, "execute", fail)
            with pytest.raises(RuntimeError, match="injected failure"):
                upgrade(empty)
        assert current_revision(empty) is None
        assert inspect(empty).get_table_names() == []

    upgrade(engine)  # and the same catalog upgrades cleanly afterwards
    assert current_revision(engine) == head_revision()


def test_a_seeded_catalog_with_measurements_downgrades_to_base_and_back(db_url: str) -> None:
    """Dropping or rebuilding a table that seeded rows point at must not trip foreign keys."""
    engine = make_engine(db_url)
    prepare(engine)
    quality_rows = "SELECT COUNT(*) FROM quality_result"
    dangling = (
        "SELECT COUNT(*) FROM quality_result WHERE scheme_id NOT IN (SELECT id FROM quant_scheme)"
    )
    with engine.begin() as connection:  # a measurement of a scheme that revision 0003 added
        added = connection.execute(
            text(
                "INSERT INTO quality_result (model_id, scheme_id, eval_set, basis, source, "
                "notes, recorded_at) SELECT m.id, s.id, 'wikitext', 'measured', 'test', '', "
                ":now FROM model_card m, quant_scheme s WHERE s.name = 'gptq-w8a16-ch' LIMIT 1"
            ),
            {"now": "2026-11-28 00:00:00"},
        )
        assert added.rowcount == 1
        before = connection.execute(text(quality_rows)).scalar_one()
        # Revision 0006's downgrade drops rows holding only a task-recovery figure (seeded
        # model-card rows): the older schema has no column for them.
        only_task = connection.execute(
            text(
                "SELECT COUNT(*) FROM quality_result WHERE perplexity IS NULL AND "
                "perplexity_delta_pct IS NULL AND kl_divergence IS NULL AND top1_agreement IS NULL "
                "AND scheme_id NOT IN (SELECT id FROM quant_scheme WHERE name = 'gptq-w8a16-ch')"
            )
        ).scalar_one()
        of_scheme = connection.execute(
            text(
                "SELECT COUNT(*) FROM quality_result WHERE scheme_id IN "
                "(SELECT id FROM quant_scheme WHERE name = 'gptq-w8a16-ch')"
            )
        ).scalar_one()
        assert of_scheme >= 1
    with Session(engine) as session:
        instances = session.exec(select(func.count()).select_from(InstanceType)).one()
    downgrade(engine, "0002")  # the scheme goes, and its measurements with it (none dangles)
    with engine.connect() as connection:
        assert connection.execute(text(quality_rows)).scalar_one() == before - of_scheme - only_task
        assert connection.execute(text(dangling)).scalar_one() == 0
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(engine) is None
    prepare(engine)  # up again, and seeded again
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(InstanceType)).one() == instances
    assert current_revision(engine) == head_revision()


def test_hardware_shipped_before_revision_0010_gets_its_memory_type(db_url: str) -> None:
    """Revision 0010 names the memory technology of the rows the seed shipped, where a row
    still has the seed's name and bandwidth; a row edited since, or a user's own, stays blank."""
    engine = make_engine(db_url)
    upgrade(engine, "0009")
    rows = (("A100-80GB-SXM", 2039.0), ("RTX-4090", 999.0), ("Xeon-SapphireRapids", 307.2),
            ("my-gpu", 2039.0))  # fmt: skip
    _insert_hardware(
        engine, [dict(name=name, kind="gpu", memory_bandwidth_gbps=bw, threads_per_core=2)
                 for name, bw in rows]
    )  # fmt: skip
    upgrade(engine)
    with engine.connect() as connection:
        found = dict(connection.execute(text("SELECT name, memory_type FROM hardware")).all())
    assert found == {
        "A100-80GB-SXM": "hbm",
        "RTX-4090": None,
        "Xeon-SapphireRapids": "ddr",
        "my-gpu": None,
    }


def test_models_shipped_before_revision_0011_get_their_mlp_width(db_url: str) -> None:
    """Revision 0011 fills the MLP width of the models the seed shipped, where a row still has
    the seed's name, hidden size and layer count; a row edited since, or a user's own model,
    stays blank (its group-size rule then checks the other widths only)."""
    engine = make_engine(db_url)
    upgrade(engine, "0010")
    rows = (("Qwen2.5-14B", 5120, 48), ("Llama-3.1-8B", 4096, 30), ("my-model", 5120, 48))
    with engine.begin() as connection:
        for name, hidden, layers in rows:
            connection.execute(
                text(
                    "INSERT INTO model_card (name, family, parameters_b, layers, hidden_size, "
                    "heads, kv_heads, head_dim, vocab_size, max_context, source) VALUES "
                    "(:name, 'f', 1, :layers, :hidden, 8, 8, 64, 1000, 4096, 'test')"
                ),
                {"name": name, "hidden": hidden, "layers": layers},
            )
    upgrade(engine)
    with engine.connect() as connection:
        found = dict(
            connection.execute(text("SELECT name, intermediate_size FROM model_card")).all()
        )
    assert found == {"Qwen2.5-14B": 13824, "Llama-3.1-8B": None, "my-model": None}


def test_engine_traits_shipped_before_revision_0012_get_their_kv_read_rates(db_url: str) -> None:
    """Revision 0012 gives llama.cpp's shipped rows their KV-cache read rates, where a row still
    has the seed's bandwidth efficiency; an edited row, another engine, or a user's own engine
    stays blank (its KV cache read at the weights' rate, as before)."""
    engine = make_engine(db_url)
    upgrade(engine, "0011")
    rows = (("llama.cpp", "gpu", 0.6), ("llama.cpp", "cpu", 0.7), ("vllm", "gpu", 0.8),
            ("my-engine", "gpu", 0.6))  # fmt: skip
    _insert_engine_traits(engine, rows)
    upgrade(engine)
    assert _kv_rates(engine) == {
        ("llama.cpp", "gpu"): (0.44, 0.25),
        ("llama.cpp", "cpu"): (None, None),
        ("vllm", "gpu"): (None, None),
        ("my-engine", "gpu"): (None, None),
    }


def test_revision_0013_moves_the_first_shipped_kv_rates_to_the_weights_footing(
    db_url: str,
) -> None:
    """A catalog that took revision 0012 as first shipped (llama.cpp's GPU row at 0.47 / 0.24,
    its CPU row blank) gets the rates on the weights' footing and the CPU's measured ones; a
    value of the user's stays."""
    engine = make_engine(db_url)
    upgrade(engine, "0012")
    _insert_engine_traits(engine, [("llama.cpp", "gpu", 0.6), ("llama.cpp", "cpu", 0.6)])
    with engine.begin() as connection:  # revision 0012 as first shipped left these
        connection.execute(text("UPDATE engine_trait SET kv_read_efficiency = 0.47, "
                                "kv_read_efficiency_without_flash_attention = 0.24 "
                                "WHERE device_kind = 'gpu'"))  # fmt: skip
        connection.execute(text("UPDATE engine_trait SET kv_read_efficiency = NULL, "
                                "kv_read_efficiency_without_flash_attention = NULL "
                                "WHERE device_kind = 'cpu'"))  # fmt: skip
    upgrade(engine)
    expected = {("llama.cpp", "gpu"): (0.44, 0.25), ("llama.cpp", "cpu"): (0.14, 0.27)}
    assert _kv_rates(engine) == expected
    with engine.begin() as connection:  # a user's own rate, then the migration run again
        connection.execute(text("UPDATE engine_trait SET kv_read_efficiency = 0.3 "
                                "WHERE device_kind = 'gpu'"))  # fmt: skip
    downgrade(engine, "0012")
    upgrade(engine)
    assert _kv_rates(engine)[("llama.cpp", "gpu")] == (0.3, 0.25)


def _insert_engine_traits(engine: Engine, rows: Sequence[tuple[str, str, float]]) -> None:
    with engine.begin() as connection:
        for name, kind, bandwidth in rows:
            connection.execute(
                text(
                    "INSERT INTO engine_trait (engine, device_kind, bandwidth_efficiency, "
                    "compute_efficiency, runtime_overhead_gb, max_concurrency, tensor_parallel, "
                    "batching, basis, source) VALUES "
                    "(:name, :kind, :bandwidth, 0.4, 0.5, 64, false, 'slots', 'modeled', 't')"
                ),
                {"name": name, "kind": kind, "bandwidth": bandwidth},
            )


def _kv_rates(engine: Engine) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    query = (
        "SELECT engine, device_kind, kv_read_efficiency, "
        "kv_read_efficiency_without_flash_attention FROM engine_trait"
    )
    with engine.connect() as connection:
        return {(e, k): (a, b) for e, k, a, b in connection.execute(text(query)).all()}
