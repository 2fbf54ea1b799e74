"""The schema, the shipped seed data and first-use seeding, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlmodel import Session, func, select

from quantplan.catalog.db import open_catalog
from quantplan.catalog.models import InstanceType, QualityResult
from quantplan.catalog.seeding import seed_catalog, seed_records
from quantplan.catalog.snapshot import load_snapshot

REQUIRED_GPUS = {"T4", "A10G", "L4", "L40S", "A100-40GB", "A100-80GB-SXM", "H100-SXM", "H200"}
REQUIRED_MODELS = {
    "Llama-2-7B",
    "Llama-2-13B",
    "Llama-2-70B",
    "Llama-3.1-8B",
    "Llama-3.1-70B",
    "Mistral-7B",
    "Mixtral-8x7B",
    "Qwen2.5-7B",
    "Qwen2.5-72B",
    "SmolLM2-135M-Instruct",
}


def test_seed_files_cover_what_the_catalog_promises() -> None:
    seeds = dict(seed_records())
    instances = seeds["instances"]
    assert len({(i.cloud, i.name) for i in instances}) >= 40
    assert {i.cloud for i in instances} == {"aws", "gcp", "azure"}
    gpus = {i.hardware for i in instances if i.accelerator_count > 0}
    assert gpus >= REQUIRED_GPUS
    for gpu in REQUIRED_GPUS - {"H200"}:
        counts = {i.accelerator_count for i in instances if i.hardware == gpu}
        assert 1 in counts and max(counts) > 1, f"{gpu} needs 1-GPU and multi-GPU sizes"
    cpu_families = {i.name.split(".")[0] for i in instances if i.accelerator_count == 0}
    assert {"c7i", "c7a", "m7i"} <= cpu_families
    assert {m.name for m in seeds["models"]} >= REQUIRED_MODELS
    assert len(seeds["models"]) >= 12
    assert {s.family for s in seeds["schemes"]} == {
        "baseline",
        "gptq",
        "awq",
        "gguf",
        "fp8",
        "int8",
    }
    for kind, records in seeds.items():
        for record in records:
            source = getattr(record, "source", None) or getattr(record, "price_source", None)
            assert source, f"{kind} row without a source: {record}"


def test_first_use_creates_and_seeds_once(db_url: str) -> None:
    engine = open_catalog(db_url)
    tables = set(inspect(engine).get_table_names())
    assert {
        "hardware",
        "instance_type",
        "model_card",
        "quant_scheme",
        "engine_support",
        "profile",
        "quality_result",
        "run",
        "alembic_version",
    } <= tables
    with Session(engine) as session:
        instances = session.exec(select(func.count()).select_from(InstanceType)).one()
        quality = session.exec(select(func.count()).select_from(QualityResult)).one()
    assert instances == len(dict(seed_records())["instances"])
    # Seeding again is a no-op: natural keys make it idempotent.
    seed_catalog(engine)
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(InstanceType)).one() == instances
        assert session.exec(select(func.count()).select_from(QualityResult)).one() == quality


def test_relationships_resolve(seeded_db_url: str) -> None:
    engine = open_catalog(seeded_db_url)
    with Session(engine) as session:
        p5 = session.exec(select(InstanceType).where(InstanceType.name == "p5.48xlarge")).first()
        assert p5 is not None
        assert p5.hardware.name == "H100-SXM"
        assert p5.hardware.compute_capability == "9.0"


def test_snapshot_is_frozen_and_complete(seeded_sqlite_url: str) -> None:
    snapshot = load_snapshot(open_catalog(seeded_sqlite_url))
    assert snapshot.get_model("SmolLM2-135M-Instruct").kv_heads == 3
    assert snapshot.get_scheme("gguf-q4_k_m").family == "gguf"
    try:
        snapshot.get_model("Llama-3.1-8")
    except Exception as error:  # UnknownNameError
        assert "Llama-3.1-8B" in str(error)
    else:
        raise AssertionError("unknown model accepted")


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from quantplan.errors import QuantplanError

    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(QuantplanError, match="not a usable catalog database"):
        open_catalog(f"sqlite:///{junk}")
