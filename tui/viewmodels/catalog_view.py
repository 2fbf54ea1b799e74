"""The Catalog screen's rows: which columns per kind, filtering, and each row's provenance.

Reads the frozen :class:`~quantplan.catalog.snapshot.CatalogSnapshot`; the column choice is the
catalog CLI's own, so the terminal table and the dashboard agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantplan.catalog.cli import LABELS, TABLE_COLUMNS
from quantplan.catalog.records import KIND_ORDER, InstanceRecord, Record
from quantplan.catalog.snapshot import CatalogSnapshot

KIND_TITLES = {
    "hardware": "Hardware",
    "instances": "Instance types",
    "models": "Models",
    "schemes": "Schemes",
    "support": "Engine support",
    "engine_traits": "Engine traits",
    "method_traits": "Method traits",
    "spot_interruptions": "Spot interruptions",
    "profiles": "Profiles",
    "quality": "Quality",
}
PROVENANCE_FIELDS = (
    "basis",
    "source",
    "price_source",
    "price_date",
    "run_id",
    "engine_version",
    "recorded_at",
    "notes",
)
EMPTY_HINTS = {
    "profiles": "No measured profiles yet. Measure one with `quantplan profile ...`, "
    "or import a profiles file (press i).",
    "quality": "No quality results yet. Import a quality file (press i).",
}


@dataclass(frozen=True)
class CatalogRow:
    key: str
    cells: tuple[str, ...]
    record: Record


@dataclass(frozen=True)
class CatalogTable:
    kind: str
    columns: tuple[str, ...]
    labels: tuple[str, ...]
    rows: tuple[CatalogRow, ...]
    total: int

    @property
    def empty_message(self) -> str:
        if self.total == 0:
            return EMPTY_HINTS.get(self.kind, f"The catalog has no {self.kind} yet.")
        return "Nothing matches the filter."


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def parse_filter(text: str) -> tuple[list[str], dict[str, str]]:
    """``"L4 cloud=aws"`` -> free words ["l4"] and field filters {"cloud": "aws"}."""
    words: list[str] = []
    fields: dict[str, str] = {}
    for token in text.split():
        name, sep, value = token.partition("=")
        if sep and name:
            fields[name.lower()] = value.lower()
        else:
            words.append(token.lower())
    return words, fields


def _matches(data: dict[str, Any], words: list[str], fields: dict[str, str]) -> bool:
    for name, wanted in fields.items():
        if name not in data or wanted not in str(data[name]).lower():
            return False
    if words:
        text = " ".join(str(v) for v in data.values() if v is not None).lower()
        return all(word in text for word in words)
    return True


def row_key(kind: str, index: int, record: Record) -> str:
    name = getattr(record, "name", None)
    if isinstance(record, InstanceRecord):  # the kind "instances"
        return f"{record.cloud}/{record.name}/{record.region}"
    return f"{kind}:{name}" if name else f"{kind}:{index}"


def catalog_table(snapshot: CatalogSnapshot, kind: str, filter_text: str = "") -> CatalogTable:
    """The rows of one kind that match the filter, with the CLI's columns."""
    if kind not in KIND_ORDER:
        raise ValueError(f"unknown catalog kind {kind!r}")
    records: tuple[Record, ...] = getattr(snapshot, kind)
    columns = TABLE_COLUMNS[kind]
    words, fields = parse_filter(filter_text)
    rows = []
    for index, record in enumerate(records):
        data = record.model_dump()
        if _matches(data, words, fields):
            cells = tuple(format_cell(data.get(c)) for c in columns)
            rows.append(CatalogRow(row_key(kind, index, record), cells, record))
    return CatalogTable(
        kind=kind,
        columns=columns,
        labels=tuple(LABELS.get(c, c) for c in columns),
        rows=tuple(rows),
        total=len(records),
    )


def record_details(record: Record) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(fields, provenance) of one record as label/value pairs, for the details panel."""
    data = record.model_dump()
    provenance = [(n, format_cell(data[n])) for n in PROVENANCE_FIELDS if data.get(n)]
    rest = [
        (n, format_cell(v))
        for n, v in data.items()
        if n not in PROVENANCE_FIELDS and v not in (None, "", {})
    ]
    return rest, provenance


def known_clouds(snapshot: CatalogSnapshot) -> list[str]:
    return sorted({i.cloud for i in snapshot.instances})


def known_models(snapshot: CatalogSnapshot) -> list[str]:
    return [m.name for m in snapshot.models]
