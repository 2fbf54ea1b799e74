"""Catalog files in and out: JSON, YAML and CSV, strict and atomic.

A catalog file holds one kind of record: ``{"kind": "instances", "rows": [...]}`` in JSON or
YAML; in CSV the kind comes from ``--kind`` (or the file name, e.g. ``instances.csv``) and
nested values (``details``) are JSON strings. An import validates every row before it writes
anything and writes all rows in one transaction: one bad row names the file, the row and the
field, and nothing of that import is kept.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from quantplan.catalog.db import session_scope
from quantplan.catalog.records import KIND_ORDER, RECORD_TYPES, Record
from quantplan.catalog.store import read_records, write_record
from sqlalchemy import Engine
from sqlmodel import Session

from quantplan.errors import QuantplanError, did_you_mean

FileFormat = Literal["json", "yaml", "csv"]
NESTED_FIELDS = frozenset({"details"})


class CatalogFile(BaseModel):
    """The envelope of a JSON/YAML catalog file."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    rows: list[dict[str, Any]]


class ImportError_(QuantplanError):
    """An import refused as a whole; the message names file, row and field."""


def check_kind(kind: str) -> str:
    if kind not in RECORD_TYPES:
        raise QuantplanError(
            f"unknown catalog kind {kind!r}; kinds are {', '.join(KIND_ORDER)}",
            hint=did_you_mean(kind, RECORD_TYPES),
        )
    return kind


def format_of(path: Path, explicit: str | None = None) -> FileFormat:
    suffix = (explicit or path.suffix.lstrip(".")).lower()
    mapping: dict[str, FileFormat] = {"json": "json", "yaml": "yaml", "yml": "yaml", "csv": "csv"}
    if suffix not in mapping:
        raise QuantplanError(
            f"cannot tell the format of {path.name!r}",
            hint="use a .json, .yaml or .csv file, or pass --format json|yaml|csv",
        )
    return mapping[suffix]


# ---------------------------------------------------------------- export


def _row_for_file(record: Record, file_format: FileFormat) -> dict[str, Any]:
    row = record.model_dump(mode="json", exclude_none=file_format != "csv")
    if file_format == "csv":
        for name in NESTED_FIELDS & row.keys():
            row[name] = json.dumps(row[name], sort_keys=True) if row[name] else ""
        row = {k: "" if v is None else v for k, v in row.items()}
    return row


def render(kind: str, records: list[Record], file_format: FileFormat) -> str:
    """Serialize records of one kind to text in the given format."""
    rows = [_row_for_file(r, file_format) for r in records]
    if file_format == "json":
        return json.dumps({"kind": kind, "rows": rows}, indent=2) + "\n"
    if file_format == "yaml":
        return yaml.safe_dump({"kind": kind, "rows": rows}, sort_keys=False, allow_unicode=True)
    buffer = io.StringIO()
    fields = list(RECORD_TYPES[kind].model_fields)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def export_kind(engine: Engine, kind: str) -> list[Record]:
    with Session(engine) as session:
        return read_records(session, check_kind(kind))


def export_file(engine: Engine, kind: str, path: Path, file_format: str | None = None) -> int:
    """Write every row of ``kind`` to ``path`` atomically; returns the row count."""
    records = export_kind(engine, kind)
    text = render(kind, records, format_of(path, file_format))
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return len(records)


# ---------------------------------------------------------------- import


def _csv_rows(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            if key is None:
                raise QuantplanError("a CSV row has more cells than the header has columns")
            if value is None or value == "":
                continue
            row[key] = json.loads(value) if key in NESTED_FIELDS else value
        rows.append(row)
    return rows


def parse(
    text: str, file_format: FileFormat, kind: str | None, source: str
) -> tuple[str, list[Record]]:
    """Parse and validate a whole file; raise ImportError_ naming the first bad row and field."""
    try:
        if file_format == "csv":
            if kind is None:
                raise ImportError_(
                    f"{source}: a CSV file does not say which kind it holds",
                    hint="pass --kind (e.g. --kind instances) or name the file instances.csv",
                )
            raw_rows = _csv_rows(text)
        else:
            loaded = json.loads(text) if file_format == "json" else yaml.safe_load(text)
            envelope = CatalogFile.model_validate(loaded)
            if kind is not None and envelope.kind != kind:
                raise ImportError_(f"{source}: holds {envelope.kind!r} rows, not {kind!r}")
            kind, raw_rows = envelope.kind, envelope.rows
    except (json.JSONDecodeError, yaml.YAMLError, csv.Error) as error:
        raise ImportError_(f"{source}: not valid {file_format.upper()}: {error}") from error
    except ValidationError as error:
        raise ImportError_(
            f"{source}: expected a document with 'kind' and 'rows' ({error.errors()[0]['msg']})"
        ) from error
    check_kind(kind)
    record_type = RECORD_TYPES[kind]
    records: list[Record] = []
    for number, raw in enumerate(raw_rows, start=1):
        try:
            records.append(record_type.model_validate(raw))
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(row)"
            hint = None
            if first["type"] == "extra_forbidden":
                hint = did_you_mean(str(first["loc"][-1]), record_type.model_fields)
            raise ImportError_(
                f"{source}: row {number}, field {field!r}: {first['msg']}"
                + (f" (got {first.get('input')!r})" if first["type"] != "missing" else ""),
                hint=hint,
            ) from error
    return kind, records


def import_files(
    engine: Engine,
    paths: list[Path],
    *,
    kind: str | None = None,
    file_format: str | None = None,
    replace: bool = False,
) -> list[tuple[str, dict[str, int]]]:
    """Import several catalog files as one all-or-nothing transaction.

    Every file is parsed and validated before anything is written; then all rows go in one
    transaction, so a bad row anywhere leaves the catalog exactly as it was.
    """
    parsed: list[tuple[str, str, list[Record]]] = []
    for path in paths:
        if not path.is_file():
            raise QuantplanError(f"no such file: {path}")
        chosen_format = format_of(path, file_format)
        file_kind = kind
        if file_kind is None and chosen_format == "csv" and path.stem in RECORD_TYPES:
            file_kind = path.stem
        text = path.read_text(encoding="utf-8")
        parsed_kind, records = parse(text, chosen_format, file_kind, path.name)
        parsed.append((path.name, parsed_kind, records))
    # Dependency order, so a file of instances may come before the hardware it names.
    order = sorted(range(len(parsed)), key=lambda i: KIND_ORDER.index(parsed[i][1]))
    results: list[tuple[str, dict[str, int]]] = [("", {})] * len(parsed)
    with session_scope(engine) as session:
        for index in order:
            source, parsed_kind, records = parsed[index]
            counts = {"inserted": 0, "unchanged": 0, "replaced": 0}
            for number, record in enumerate(records, start=1):
                try:
                    counts[write_record(session, parsed_kind, record, replace=replace)] += 1
                except QuantplanError as error:
                    raise ImportError_(
                        f"{source}: row {number}: {error.message}", hint=error.hint
                    ) from error
            results[index] = (parsed_kind, counts)
    return results


def import_file(
    engine: Engine,
    path: Path,
    *,
    kind: str | None = None,
    file_format: str | None = None,
    replace: bool = False,
) -> tuple[str, dict[str, int]]:
    """Import one catalog file, all or nothing. Returns its kind and the counts per outcome."""
    return import_files(engine, [path], kind=kind, file_format=file_format, replace=replace)[0]
