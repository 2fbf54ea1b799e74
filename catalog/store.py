"""Reading and writing catalog rows as records: the one place that maps records onto tables.

Reference kinds (hardware, instances, models, schemes, support, engine and method traits) are
keyed by natural keys: writing an identical record again is a no-op, a different one is refused
unless ``replace``.
Measurement kinds (profiles, quality) are append-only: keyed by what they describe, their
source and their run id; an identical row is a no-op, a conflicting one is always refused
unless the row it conflicts with was retracted (see :mod:`quantplan.catalog.retractions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlmodel import Session, SQLModel, col, select

from quantplan.catalog.models import (
    EngineSupport,
    EngineTrait,
    Hardware,
    InstanceType,
    MethodTrait,
    ModelCard,
    Profile,
    QualityResult,
    QuantScheme,
    Retraction,
    SpotInterruption,
)
from quantplan.catalog.records import (
    EngineSupportRecord,
    EngineTraitRecord,
    HardwareRecord,
    InstanceRecord,
    MethodTraitRecord,
    ModelRecord,
    ProfileRecord,
    QualityRecord,
    Record,
    SchemeRecord,
    SpotInterruptionRecord,
)
from quantplan.catalog.references import Reference
from quantplan.errors import QuantplanError, UnknownNameError

WriteOutcome = Literal["inserted", "unchanged", "replaced"]
# The tables that other rows refer to by name.
_Named = TypeVar("_Named", Hardware, ModelCard, QuantScheme)
MEASUREMENT_KINDS = frozenset({"profiles", "quality"})


class ConflictError(QuantplanError):
    """A record disagrees with a row already in the catalog."""


def instance_key(cloud: str, name: str, region: str) -> str:
    return f"{cloud}/{name}/{region}"


class Resolver:
    """Looks up related rows by natural key within one session, with near-miss suggestions."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[type[SQLModel], str], int] = {}
        # Per kind, the row that speaks for each key now: read once by a writer of many records
        # (see write_record), then kept up to date by the rows write_record inserts.
        self.current_rows: dict[str, dict[tuple[Any, ...], SQLModel]] = {}

    def _by_name(self, table: type[_Named], what: str, name: str) -> int:
        key = (table, name)
        if key not in self._cache:
            row = self.session.exec(select(table).where(col(table.name) == name)).first()
            if row is None:
                known = self.session.exec(select(col(table.name))).all()
                raise UnknownNameError(what, name, known)
            assert row.id is not None  # a row read back from the database has its key
            self._cache[key] = row.id
        return self._cache[key]

    def has_hardware(self, name: str) -> bool:
        try:
            self.hardware(name)
        except UnknownNameError:
            return False
        return True

    def hardware(self, name: str) -> int:
        return self._by_name(Hardware, "hardware", name)

    def model(self, name: str) -> int:
        return self._by_name(ModelCard, "model", name)

    def scheme(self, name: str) -> int:
        return self._by_name(QuantScheme, "scheme", name)

    def instance(self, key: str | None) -> int | None:
        if key is None:
            return None
        parts = key.split("/")
        if len(parts) != 3:
            raise QuantplanError(
                f"instance reference {key!r} is not cloud/name/region",
                hint="write it like aws/g5.xlarge/us-east-1",
            )
        cloud, name, region = parts
        row = self.session.exec(
            select(InstanceType).where(
                InstanceType.cloud == cloud,
                InstanceType.name == name,
                InstanceType.region == region,
                col(InstanceType.superseded_at).is_(None),
            )
        ).first()
        if row is None:
            known = [
                instance_key(r.cloud, r.name, r.region)
                for r in self.session.exec(select(InstanceType)).all()
            ]
            raise UnknownNameError("instance type", key, known)
        return row.id


@dataclass(frozen=True)
class _Kind:
    """How one record kind maps onto its table."""

    table: type[SQLModel]
    record: type[Record]
    key_fields: tuple[str, ...]
    to_columns: Callable[[Record, Resolver], dict[str, Any]]
    references: tuple[Reference, ...] = ()


def _plain(record: Record, _: Resolver) -> dict[str, Any]:
    return record.model_dump()


def _instance_columns(record: Record, resolve: Resolver) -> dict[str, Any]:
    data = record.model_dump()
    data["hardware_id"] = resolve.hardware(data.pop("hardware"))
    return data


def measurement_columns(record: Record, resolve: Resolver) -> dict[str, Any]:
    data = record.model_dump()
    data["model_id"] = resolve.model(data.pop("model"))
    data["scheme_id"] = resolve.scheme(data.pop("scheme"))
    if "hardware" in data:
        data["hardware_id"] = resolve.hardware(data.pop("hardware"))
        data["instance_type_id"] = resolve.instance(data.pop("instance"))
    if data.get("recorded_at") is None:
        data.pop("recorded_at", None)
    return data


_MODEL = Reference("model_id", "models", "model")
_SCHEME = Reference("scheme_id", "schemes", "scheme")
_HARDWARE = Reference("hardware_id", "hardware", "hardware")

KINDS: dict[str, _Kind] = {
    "hardware": _Kind(Hardware, HardwareRecord, ("name",), _plain),
    "instances": _Kind(
        InstanceType,
        InstanceRecord,
        ("cloud", "name", "region"),
        _instance_columns,
        (_HARDWARE,),
    ),
    "models": _Kind(ModelCard, ModelRecord, ("name",), _plain),
    "schemes": _Kind(QuantScheme, SchemeRecord, ("name",), _plain),
    "support": _Kind(
        EngineSupport,
        EngineSupportRecord,
        ("engine", "family", "device_kind", "bits"),
        _plain,
    ),
    "engine_traits": _Kind(EngineTrait, EngineTraitRecord, ("engine", "device_kind"), _plain),
    "method_traits": _Kind(MethodTrait, MethodTraitRecord, ("method",), _plain),
    "spot_interruptions": _Kind(
        SpotInterruption,
        SpotInterruptionRecord,
        ("cloud", "device_kind", "instance_type"),
        _plain,
    ),
    "profiles": _Kind(
        Profile,
        ProfileRecord,
        (
            "model_id",
            "scheme_id",
            "engine",
            "hardware_id",
            "hardware_count",
            "instance_type_id",
            "input_tokens",
            "output_tokens",
            "concurrency",
            "request_rate",
            "basis",
            "source",
            "run_id",
        ),
        measurement_columns,
        (_MODEL, _SCHEME, _HARDWARE, Reference("instance_type_id", "instances", "instance")),
    ),
    "quality": _Kind(
        QualityResult,
        QualityRecord,
        ("model_id", "scheme_id", "eval_set", "engine", "basis", "source", "run_id"),
        measurement_columns,
        (_MODEL, _SCHEME),
    ),
}


# Columns kept by the catalog about a row, not part of its record (see INSTANCE_BOOKKEEPING).
_NOT_COMPARED = frozenset({"recorded_at", "superseded_at", "seed_version"})
INSTANCE_BOOKKEEPING = ("superseded_at", "seed_version")
"""Instance columns that are history and ownership, not price facts: never in a record."""


def _comparable(columns: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in columns.items() if k not in _NOT_COMPARED}


def describe_key(kind: str, record: Record) -> str:
    spec = KINDS[kind]
    data = record.model_dump()
    # A reference column (model_id) is the record's name field (model); run_id is its own.
    names = [f if f in data else f.removesuffix("_id") for f in spec.key_fields]
    return ", ".join(f"{n}={data.get(n)!s}" for n in names if n in data)


def _current_conditions(kind: str) -> list[Any]:
    """What a row of ``kind`` must meet, beyond its key, to speak for that key now."""
    table = KINDS[kind].table
    if kind == "instances":
        return [col(InstanceType.superseded_at).is_(None)]
    if kind in MEASUREMENT_KINDS:
        # A retracted row no longer speaks for its key: its corrected value may be appended.
        retracted = select(Retraction.row_id).where(Retraction.kind == kind)
        # ignore: every KINDS table has an integer id column, which type[SQLModel] does not name.
        return [table.id.not_in(retracted)]  # type: ignore[attr-defined]
    return []


# Instances are left out of the index: seeding supersedes their prices outside write_record.
_INDEXED_KINDS = frozenset(KINDS) - {"instances"}


def _key(kind: str, columns: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(columns[f] for f in KINDS[kind].key_fields)


def _row_key(kind: str, row: SQLModel) -> tuple[Any, ...]:
    return tuple(getattr(row, f) for f in KINDS[kind].key_fields)


def _indexed_rows(resolver: Resolver, kind: str) -> dict[tuple[Any, ...], SQLModel]:
    """Every current row of ``kind`` by key, read in one query the first time it is asked.

    Seeding writes about 1,100 rows and a catalog import up to thousands: one query per kind
    instead of one per row (each built, compiled and run) makes a fresh seed about 5x faster.
    A retraction made after the index was read is not seen, so the writers retract first.
    """
    rows = resolver.current_rows.get(kind)
    if rows is None:
        table = KINDS[kind].table
        query = select(table).where(*_current_conditions(kind))
        # ignore: as above, the id column type[SQLModel] does not name.
        ordered = query.order_by(table.id)  # type: ignore[attr-defined]
        rows = {}
        for row in resolver.session.exec(ordered):
            rows.setdefault(_row_key(kind, row), row)  # the oldest, as .first() gives
        resolver.current_rows[kind] = rows
    return rows


def _current_row(
    session: Session,
    kind: str,
    record: Record,
    resolver: Resolver | None = None,
    *,
    indexed: bool = False,
) -> tuple[dict[str, Any], SQLModel | None]:
    """``record``'s columns and the row that speaks for its key now (None: no such row).

    ``indexed``: look it up in ``resolver``'s index of the kind's rows (see _indexed_rows)."""
    spec = KINDS[kind]
    columns = spec.to_columns(record, resolver or Resolver(session))
    if indexed and resolver is not None and kind in _INDEXED_KINDS:
        return columns, _indexed_rows(resolver, kind).get(_key(kind, columns))
    table = spec.table
    condition = [getattr(table, f) == columns[f] for f in spec.key_fields]
    condition.extend(_current_conditions(kind))
    return columns, session.exec(select(table).where(*condition)).first()


def current_row_id(
    session: Session, kind: str, record: Record, resolver: Resolver | None = None
) -> int | None:
    """Database id of the unretracted row with ``record``'s key, or None where there is none
    (or where a name it refers to is not in this catalog)."""
    try:
        _, row = _current_row(session, kind, record, resolver)
    except UnknownNameError:
        return None
    # ignore: every KINDS table has an integer id column, which type[SQLModel] does not name.
    return None if row is None else row.id  # type: ignore[attr-defined]


def write_record(
    session: Session,
    kind: str,
    record: Record,
    *,
    replace: bool = False,
    resolver: Resolver | None = None,
) -> WriteOutcome:
    """Insert one record, or confirm it is already there. Raises ConflictError on a mismatch.

    Writers of many records in one session pass one ``resolver``, so each hardware, model and
    scheme name is looked up once, not once per row (seeding a catalog writes about 1,100 rows
    that name a few dozen), and each kind's current rows are read once (see _indexed_rows).
    """
    columns, existing = _current_row(session, kind, record, resolver, indexed=True)
    spec = KINDS[kind]
    table = spec.table
    if existing is None:
        row = table.model_validate(columns)
        session.add(row)
        session.flush()
        if resolver is not None and kind in resolver.current_rows:
            resolver.current_rows[kind][_key(kind, columns)] = row
        return "inserted"
    current = _comparable(existing.model_dump(exclude={"id"}))
    wanted = _comparable(columns)
    differing = sorted(k for k, v in wanted.items() if current.get(k) != v)
    if not differing:
        return "unchanged"
    if kind in MEASUREMENT_KINDS or not replace:
        why = "measurements are append-only" if kind in MEASUREMENT_KINDS else "use --replace"
        raise ConflictError(
            f"{describe_key(kind, record)} already exists with different {', '.join(differing)}",
            hint=why if kind in MEASUREMENT_KINDS else f"{why} to update it",
        )
    for field in differing:
        setattr(existing, field, wanted[field])
    session.add(existing)
    session.flush()
    return "replaced"
