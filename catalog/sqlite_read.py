"""The snapshot of an up-to-date SQLite catalog, read with the standard library's sqlite3.

Opening a catalog through :func:`quantplan.catalog.db.open_catalog` imports SQLAlchemy, SQLModel
and the table classes, which takes longer than computing a plan. A catalog that needs no work
-- intact, at the newest schema revision, seeded with the current seed data, every row valid --
can be read straight from the file instead, and that is all this module does.

It never changes a catalog and never decides anything about a troubled one. When the file would
need work or explanation -- a missing file, a migration, seeding, a failed integrity check, a
busy or unreadable file, a stored value that does not decode, a row that does not validate, a
reference to a missing row -- :func:`read_snapshot` returns None, and the caller opens the
catalog the full way, which migrates, seeds, refuses or warns exactly as it always has.

What it returns is what :func:`quantplan.catalog.snapshot.load_snapshot` would read: the same
rows in the same order as the same records, retracted measurements and superseded prices left
out (tests/catalog/test_sqlite_read.py compares the two on catalogs of every kind of row). The
mapping of kinds onto tables below restates ``catalog/store.py``'s; that test keeps them equal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from quantplan.catalog.records import KIND_ORDER, RECORD_TYPES, Record
from quantplan.catalog.references import Reference
from quantplan.catalog.shipped_versions import schema_head, seed_version
from quantplan.catalog.snapshot import RECORD_KINDS, CatalogSnapshot

BUSY_TIMEOUT_MS = 30_000
"""As for every other connection to the catalog (``catalog/db.py``): wait for a writer."""


@dataclass(frozen=True)
class Table:
    """How one record kind is stored: its table, references and the columns SQLAlchemy decodes
    (SQLModel's UTC DateTime columns, JSON columns)."""

    name: str
    references: tuple[Reference, ...] = ()
    datetimes: tuple[str, ...] = ()
    json: tuple[str, ...] = ()
    bookkeeping: tuple[str, ...] = ()


_MODEL = Reference("model_id", "models", "model")
_SCHEME = Reference("scheme_id", "schemes", "scheme")
_HARDWARE = Reference("hardware_id", "hardware", "hardware")

TABLES: dict[str, Table] = {
    "hardware": Table("hardware"),
    "instances": Table(
        "instance_type", (_HARDWARE,), datetimes=("superseded_at",), bookkeeping=("superseded_at",)
    ),
    "models": Table("model_card"),
    "schemes": Table("quant_scheme"),
    "support": Table("engine_support"),
    "engine_traits": Table("engine_trait"),
    "method_traits": Table("method_trait"),
    "spot_interruptions": Table("spot_interruption"),
    "profiles": Table(
        "profile",
        (_MODEL, _SCHEME, _HARDWARE, Reference("instance_type_id", "instances", "instance")),
        datetimes=("recorded_at",),
        json=("details",),
    ),
    "quality": Table(
        "quality_result", (_MODEL, _SCHEME), datetimes=("recorded_at",), json=("details",)
    ),
}
RETRACTABLE = {"profiles", "quality"}
REFERENCED = frozenset(ref.kind for table in TABLES.values() for ref in table.references)


class NeedsFullOpen(Exception):
    """The catalog needs the full open (work, a warning or an error); not an error itself."""


def _columns(kind: str) -> list[str]:
    table = TABLES[kind]
    by_reference = {reference.field for reference in table.references}
    fields = [name for name in RECORD_TYPES[kind].model_fields if name not in by_reference]
    return ["id", *fields, *(r.column for r in table.references), *table.bookkeeping]


def _decoder(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        if value is None:
            return None
        try:
            return decode(value)
        except (ValueError, TypeError):
            # SQLAlchemy fails on it too; the full read names the row and column.
            raise NeedsFullOpen from None

    return checked


def _utc_datetime(value: str) -> datetime:
    """As SQLModel's ``UTCDateTime`` on SQLite: stored without an offset, meaning UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.utcoffset() is None else parsed.astimezone(UTC)


_DATETIME = _decoder(_utc_datetime)
_JSON = _decoder(json.loads)


def _name_of(kind: str, record: Any) -> str:
    if kind == "instances":
        return f"{record.cloud}/{record.name}/{record.region}"  # store.instance_key
    return str(record.name)


def _check_current(connection: sqlite3.Connection) -> str:
    """The schema revision, if the catalog is intact, at head and seeded with the current data."""
    if connection.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
        raise NeedsFullOpen  # damaged: the full open says how
    head, seeded = schema_head(), seed_version()
    if head is None or seeded is None:
        raise NeedsFullOpen  # the shipped versions could not be read without importing them
    if connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone() != (1,):
        raise NeedsFullOpen  # a new file, or not a catalog
    if connection.execute("SELECT version_num FROM alembic_version").fetchall() != [(head,)]:
        raise NeedsFullOpen  # a migration to run, or a catalog a newer quantplan wrote
    if connection.execute("SELECT id FROM hardware LIMIT 1").fetchone() is None:
        raise NeedsFullOpen  # empty: to be seeded
    newest = connection.execute("SELECT max(version) FROM seed_state").fetchone()[0]
    if not isinstance(newest, int) or newest < seeded:
        raise NeedsFullOpen  # seeded by an older quantplan: newer seed rows to append
    return head


def _retracted(connection: sqlite3.Connection, kind: str) -> set[int]:
    rows = connection.execute(
        "SELECT row_id, reason, retracted_by, retracted_at FROM retraction WHERE kind = ?", (kind,)
    ).fetchall()
    for _, reason, by, at in rows:
        # The full read builds each retraction's description and fails on these.
        if not (isinstance(reason, str) and isinstance(by, str) and _DATETIME(at) is not None):
            raise NeedsFullOpen
    return {row_id for row_id, *_ in rows}


def _read(connection: sqlite3.Connection) -> dict[str, tuple[Record, ...]]:
    names: dict[str, dict[int, str]] = {}
    records: dict[str, tuple[Record, ...]] = {}
    for kind in KIND_ORDER:  # every kind only refers to kinds before it
        table, record_type = TABLES[kind], RECORD_TYPES[kind]
        columns = _columns(kind)
        retracted = _retracted(connection, kind) if kind in RETRACTABLE else set()
        select = ", ".join(f'"{c}"' for c in columns)
        rows = connection.execute(f'SELECT {select} FROM "{table.name}" ORDER BY id').fetchall()
        kept: list[Record] = []
        names[kind] = {}
        for values in rows:
            data = dict(zip(columns, values, strict=True))
            row_id = data.pop("id")
            if row_id in retracted:
                continue
            for name in table.datetimes:
                data[name] = _DATETIME(data[name])
            for name in table.json:
                data[name] = _JSON(data[name])
            for reference in table.references:
                target = data.pop(reference.column)
                if target is None:
                    data[reference.field] = None
                    continue
                if target not in names[reference.kind]:
                    raise NeedsFullOpen  # a dangling or skipped reference: a warning to give
                data[reference.field] = names[reference.kind][target]
            superseded = any(data.pop(name) is not None for name in table.bookkeeping)
            try:
                record = record_type.model_validate(data)
            except ValueError:  # pydantic's ValidationError: a row the full read skips and names
                raise NeedsFullOpen from None
            if kind in REFERENCED:
                names[kind][row_id] = _name_of(kind, record)
            if not superseded:  # superseded prices: history, named for profiles but not planned
                kept.append(record)
        records[kind] = tuple(kept)
    return records


def read_snapshot(database: Path) -> tuple[CatalogSnapshot, str] | None:
    """The snapshot and schema revision of the SQLite catalog file ``database``, or None when it
    needs the full open (see the module's docstring)."""
    if not database.is_file():
        return None
    try:
        # mode=rw: never create a file (a missing catalog is the full open's to create and seed).
        connection = sqlite3.connect(
            f"file:{quote(str(database))}?mode=rw", uri=True, isolation_level=None
        )
    except sqlite3.Error:
        return None
    try:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("BEGIN")  # one read transaction: every table as of one moment
        revision = _check_current(connection)
        records = _read(connection)
    except (NeedsFullOpen, sqlite3.Error):
        return None
    finally:
        connection.close()
    snapshot = CatalogSnapshot(**{kind: records[kind] for kind in RECORD_KINDS})
    return snapshot, revision
