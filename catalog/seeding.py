"""The seed catalog shipped in the package (catalog/seed/*.yaml), loaded on first use.

Seed files use the same format as ``quantplan catalog export``; every row names its source.
"""

from __future__ import annotations

from pathlib import Path

from quantplan.catalog.db import CatalogBusyError, CatalogDamagedError, session_scope
from quantplan.catalog.records import KIND_ORDER, Record
from quantplan.catalog.store import write_record
from quantplan.catalog.transfer import parse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

SEED_DIR = Path(__file__).parent / "seed"


def seed_records() -> list[tuple[str, list[Record]]]:
    """Every seed file's records, in dependency order."""
    loaded: dict[str, list[Record]] = {}
    for path in sorted(SEED_DIR.glob("*.yaml")):
        kind, records = parse(path.read_text(encoding="utf-8"), "yaml", None, path.name)
        loaded.setdefault(kind, []).extend(records)
    return [(kind, loaded[kind]) for kind in KIND_ORDER if kind in loaded]


def seed_catalog(engine: Engine) -> dict[str, int]:
    """Write the seed rows in one transaction (idempotent); counts per kind."""
    counts: dict[str, int] = {}
    with session_scope(engine) as session:
        for kind, records in seed_records():
            for number, record in enumerate(records, start=1):
                try:
                    write_record(session, kind, record)
                except (OperationalError, CatalogBusyError, CatalogDamagedError):
                    raise  # the database failed, not the row: say so, not "row N is broken"
                except Exception as error:
                    raise RuntimeError(f"seed {kind} row {number} is broken: {error}") from error
            counts[kind] = len(records)
    return counts
