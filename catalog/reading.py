"""Defensive reads: stored rows become records, and a row that does not validate is skipped.

Imports validate every row, but a row can still reach the database invalid: written by an
older version with looser bounds, or by hand with SQL. Measurements are append-only, so such a
row stays forever; if reading it crashed, every plan, export and dashboard after it would too.
So every read validates each stored row with the same record types that imports use (their
bounds apply here automatically) and leaves out the rows that fail, naming each one (table, id,
field, why) in a warning on stderr, once per process. A row that refers to a missing or
skipped row is skipped too: the planner could not use it. Retracted measurements are left out
unless asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, SQLModel, select

from quantplan.catalog.records import KIND_ORDER, InstanceRecord, Record
from quantplan.catalog.retractions import RETRACTABLE_TABLES, RetractionInfo, retractions_of
from quantplan.catalog.skipped import SkippedRow
from quantplan.catalog.store import INSTANCE_BOOKKEEPING, KINDS, MEASUREMENT_KINDS, instance_key

LOG = logging.getLogger("quantplan.catalog")
# Past this many bad rows in one read, the warning gives a count instead of a line each.
MAX_LISTED = 5
_MAX_INPUT_CHARS = 60
# Errors SQLAlchemy's column types raise on a stored value they cannot decode (a JSON column
# holding non-JSON, a date column holding some other text).
DECODE_ERRORS = (ValueError, TypeError)

_reported: set[tuple[str, int | str | None, str | None]] = set()


@dataclass(frozen=True)
class StoredRecord:
    """A valid stored row: its id, the record, and its retraction if it was taken back."""

    kind: str
    row_id: int
    record: Record
    retraction: RetractionInfo | None = None


@dataclass
class CatalogRead:
    """The result of one read: valid rows per kind and every row left out."""

    rows: dict[str, list[StoredRecord]] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)
    retracted: dict[str, int] = field(default_factory=dict)

    def records(self, kind: str) -> list[Record]:
        """The rows in force: valid and not retracted."""
        return [row.record for row in self.rows.get(kind, []) if row.retraction is None]

    def skipped_of(self, kind: str) -> list[SkippedRow]:
        return [row for row in self.skipped if row.kind == kind]


def load_rows(
    session: Session, table: type[SQLModel], query: Any
) -> tuple[list[dict[str, Any]], list[tuple[Any, str, str]]]:
    """Rows of ``query`` (a select of ``table``) as column dicts, and the undecodable ones.

    One query does the work; only when some stored value cannot be decoded does it fall back
    to reading row by row, and then column by column for the broken rows, to name the field.
    """
    try:
        return [_columns(row) for row in session.exec(query).all()], []
    except DECODE_ERRORS:
        session.expunge_all()
    # ignore: SQLAlchemy's declarative mapping gives each table class its __table__ when the class
    # is created; SQLModel's type declarations do not name it.
    key = next(iter(table.__table__.primary_key.columns))  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    unreadable: list[tuple[Any, str, str]] = []
    for row_id in session.exec(query.with_only_columns(key)).all():
        try:
            row = session.exec(select(table).where(key == row_id)).one()
            rows.append(_columns(row))
        except DECODE_ERRORS as error:
            session.expunge_all()
            column, reason = _undecodable_column(session, table, key, row_id, error)
            unreadable.append((row_id, column, reason))
    return rows, unreadable


def _columns(row: SQLModel) -> dict[str, Any]:
    # A stored value of the wrong type (text in a float column) is for validation to name;
    # pydantic's serializer would only warn about it here.
    return row.model_dump(warnings=False)


def _undecodable_column(
    session: Session, table: type[SQLModel], key: Any, row_id: Any, error: Exception
) -> tuple[str, str]:
    for column in table.__table__.columns:  # type: ignore[attr-defined]  # as in load_rows
        try:
            session.execute(select(column).where(key == row_id)).all()
        except DECODE_ERRORS as column_error:
            return column.name, f"stored value cannot be decoded ({column_error})"
    return "(row)", f"cannot be decoded ({error})"


def _with_dependencies(kinds: Iterable[str]) -> list[str]:
    needed: set[str] = set()
    pending = list(kinds)
    while pending:
        kind = pending.pop()
        if kind not in needed:
            needed.add(kind)
            pending.extend(reference.kind for reference in KINDS[kind].references)
    return [kind for kind in KIND_ORDER if kind in needed]


_REFERENCE_KINDS = frozenset(KINDS) - MEASUREMENT_KINDS
_REFERENCED = frozenset(ref.kind for spec in KINDS.values() for ref in spec.references)


def _label(kind: str, columns: dict[str, Any]) -> str | None:
    if kind in MEASUREMENT_KINDS:
        return None  # keyed by ids; the row id is what `catalog retract` takes
    return "/".join(str(columns.get(name)) for name in KINDS[kind].key_fields)


def _name_of(kind: str, record: Record) -> str:
    if isinstance(record, InstanceRecord):  # the kind "instances"
        return instance_key(record.cloud, record.name, record.region)
    # ignore: only the kinds other rows refer to come here (hardware, models, schemes), and each
    # of their records has a name; their common base Record does not (measurements have none).
    return record.name  # type: ignore[attr-defined]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_CHARS else text[: _MAX_INPUT_CHARS - 3] + "..."


def _to_record(
    kind: str,
    columns: dict[str, Any],
    names: dict[str, dict[int, str]],
    failed: dict[str, set[int]],
) -> Record | SkippedRow:
    spec = KINDS[kind]
    table = spec.table.__tablename__
    row_id = columns["id"]
    label = _label(kind, columns)
    data = {name: value for name, value in columns.items() if name != "id"}
    if kind == "instances":
        for name in INSTANCE_BOOKKEEPING:
            data.pop(name, None)
    for reference in spec.references:
        target = data.pop(reference.column)
        if target is None:
            data[reference.field] = None
            continue
        target_name = names[reference.kind].get(target)
        if target_name is None:
            cascaded = target in failed[reference.kind]
            target_table = KINDS[reference.kind].table.__tablename__
            why = "is itself skipped" if cascaded else "does not exist"
            return SkippedRow(
                kind=kind,
                table=str(table),
                row_id=row_id,
                label=label,
                field=reference.column,
                reason=f"refers to {target_table} id {target}, which {why}",
                cascaded=cascaded,
            )
        data[reference.field] = target_name
    try:
        return spec.record.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(row)"
        got = (
            f" (got {_short(first['input'])})"
            if first["type"] != "missing" and first["loc"]
            else ""
        )
        return SkippedRow(
            kind=kind,
            table=str(table),
            row_id=row_id,
            label=label,
            field=where,
            reason=f"{first['msg']}{got}",
        )


def read_catalog(
    session: Session,
    kinds: Sequence[str],
    *,
    include_retracted: bool = False,
    report: bool = True,
) -> CatalogRead:
    """Read ``kinds`` (and the kinds they refer to), validating every stored row.

    Rows that fail are in ``skipped`` and, with ``report``, named in a warning on stderr
    (once per process). Retracted measurements are counted in ``retracted`` and left out,
    or kept with their retraction when ``include_retracted``.
    """
    read = CatalogRead()
    names: dict[str, dict[int, str]] = {}
    failed: dict[str, set[int]] = {}
    for kind in _with_dependencies(kinds):
        spec = KINDS[kind]
        table = str(spec.table.__tablename__)
        retractions = retractions_of(session, kind) if kind in RETRACTABLE_TABLES else {}
        # ignore: every KINDS table has an integer id column, which type[SQLModel] does not name.
        query = select(spec.table).order_by(spec.table.id)  # type: ignore[attr-defined]
        all_columns, unreadable = load_rows(session, spec.table, query)
        names[kind], failed[kind], read.rows[kind] = {}, set(), []
        read.retracted[kind] = 0
        for row_id, column, reason in unreadable:
            retraction = retractions.get(row_id)
            if retraction is not None and not include_retracted:
                read.retracted[kind] += 1
                continue
            failed[kind].add(row_id)
            read.skipped.append(
                SkippedRow(
                    kind=kind,
                    table=table,
                    row_id=row_id,
                    field=column,
                    reason=reason,
                    retraction=retraction.describe() if retraction else None,
                )
            )
        for columns in all_columns:
            row_id = columns["id"]
            retraction = retractions.get(row_id)
            if retraction is not None and not include_retracted:
                read.retracted[kind] += 1
                continue
            outcome = _to_record(kind, columns, names, failed)
            if isinstance(outcome, SkippedRow):
                failed[kind].add(row_id)
                if retraction is not None:
                    outcome = outcome.model_copy(update={"retraction": retraction.describe()})
                read.skipped.append(outcome)
                continue
            if kind in _REFERENCED:
                names[kind][row_id] = _name_of(kind, outcome)
            if kind == "instances" and columns.get("superseded_at") is not None:
                continue  # history: named for the profiles measured on it, never planned with
            read.rows[kind].append(StoredRecord(kind, row_id, outcome, retraction))
    if report:
        warn_skipped(read.skipped)
    return read


def read_records(session: Session, kind: str) -> list[Record]:
    """Every valid, unretracted row of ``kind`` as records, in a stable order.

    Rows that do not validate are left out and reported, as by :func:`read_catalog`.
    """
    return read_catalog(session, (kind,)).records(kind)


def warn_skipped(skipped: Sequence[SkippedRow]) -> None:
    """Name each skipped row on stderr once per process (a count past the first few).

    Retracted rows are already dealt with and are not warned about.
    """
    new = [
        row
        for row in skipped
        if row.retraction is None and (row.table, row.row_id, row.label) not in _reported
    ]
    if not new:
        return
    _reported.update((row.table, row.row_id, row.label) for row in new)
    for row in new[:MAX_LISTED]:
        LOG.warning("warning: skipped catalog row %s", row.describe())
    if len(new) > MAX_LISTED:
        LOG.warning(
            "warning: ... and %d more catalog rows skipped (they do not validate)",
            len(new) - MAX_LISTED,
        )
    for hint in remedies(new):
        LOG.warning("  hint: %s", hint)


def remedies(skipped: Sequence[SkippedRow]) -> list[str]:
    """How to repair what was skipped; rows skipped only because of another row need nothing."""
    causes = [row for row in skipped if not row.cascaded]
    hints: list[str] = []
    measurement = next((row for row in causes if row.kind in RETRACTABLE_TABLES), None)
    if measurement is not None:
        hints.append(
            "measurements are append-only; take a bad one back (the row stays, readers leave "
            f"it out): quantplan catalog retract {measurement.kind} {measurement.row_id} "
            '--reason "..."'
        )
    reference = next((row for row in causes if row.kind in _REFERENCE_KINDS), None)
    if reference is not None:
        hints.append(
            f"correct a {reference.kind} row by importing a fixed one with the same key: "
            "quantplan catalog import FILE --replace"
        )
    return hints
