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

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from quantplan.catalog.reading import read_records
from quantplan.catalog.records import KIND_ORDER, RECORD_TYPES, Record, first_problem
from quantplan.catalog.sessions import session_scope
from quantplan.catalog.store import Resolver, write_record
from quantplan.errors import QuantplanError, did_you_mean, shorten
from quantplan.inputs import dump_yaml, parse_shipped_yaml, parse_yaml, read_text, shown_path

FileFormat = Literal["json", "yaml", "csv"]
NESTED_FIELDS = frozenset({"details"})


class CatalogFile(BaseModel):
    """The envelope of a JSON/YAML catalog file."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=40)
    rows: list[dict[str, Any]]


class ImportError_(QuantplanError):
    """An import refused as a whole; the message names file, row and field."""


def check_kind(kind: str) -> str:
    if kind not in RECORD_TYPES:
        raise QuantplanError(
            f"unknown catalog kind {shorten(kind)!r}; kinds are {', '.join(KIND_ORDER)}",
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
        return dump_yaml({"kind": kind, "rows": rows}, sort_keys=False, allow_unicode=True)
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


# The largest honest catalog file is a price list of a few thousand rows; 100,000 rows of any
# kind is far beyond it and still validates in seconds.
MAX_ROWS = 100_000
# The longest value of any field is a details cell (JSON) of a profile, about 30 KB for an
# 80-layer model's per-layer errors; a cell is capped a little under csv's own 128 KiB limit.
MAX_CSV_CELL_CHARS = 100_000


def _too_many_rows(source: str) -> ImportError_:
    return ImportError_(
        f"{source}: more than {MAX_ROWS:,} rows", hint="split it into several files"
    )


def _csv_rows(text: str, source: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reader = csv.DictReader(io.StringIO(text))
    number = 0
    try:
        for number, raw in enumerate(reader, start=1):
            if number > MAX_ROWS:
                raise _too_many_rows(source)
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if key is None:
                    raise ImportError_(
                        f"{source}: row {number} has more cells than the header has columns"
                    )
                if value is None or value == "":
                    continue
                if len(value) > MAX_CSV_CELL_CHARS:
                    raise ImportError_(
                        f"{source}: row {number}, field {key!r}: {len(value):,} characters, "
                        f"more than the {MAX_CSV_CELL_CHARS:,} a cell may hold"
                    )
                row[key] = (
                    _nested_cell(value, source, number, key) if key in NESTED_FIELDS else value
                )
            rows.append(row)
    except csv.Error as error:  # e.g. a field over csv's own size limit, or a NUL byte
        raise ImportError_(f"{source}: row {number + 1}: not valid CSV: {error}") from None
    return rows


def _nested_cell(value: str, source: str, number: int, key: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ImportError_(
            f"{source}: row {number}, field {key!r}: not a JSON value ({_one_line(error)})",
            hint='nested fields are JSON objects in CSV, e.g. {"note": 1}',
        ) from None


def _load_document(text: str, file_format: FileFormat, source: str, shipped: bool) -> Any:
    """A JSON or YAML document, parsed without expanding aliases or recursing without bound
    (``shipped``: the package's own seed file, read with the fast C parser)."""
    if file_format == "yaml":
        return parse_shipped_yaml(text, source) if shipped else parse_yaml(text, source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportError_(f"{source}: not valid JSON: {error}") from None
    except RecursionError:
        raise ImportError_(f"{source}: nests too deeply to be a catalog file") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise ImportError_(f"{source}: a value cannot be read: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _row_error(
    source: str, number: int, record_type: type[Record], error: ValidationError
) -> ImportError_:
    """One line naming file, row and field, with a hint on how to fix it."""
    first = error.errors()[0]
    hint = None
    if first["type"] == "extra_forbidden":
        hint = did_you_mean(str(first["loc"][-1]), record_type.model_fields)
    elif first["type"] == "finite_number":
        hint = "NaN and Infinity are not measurements: leave the field out if it is unknown"
    elif first["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        hint = "the bounds are physical limits of the quantity; check the value and its unit"
    return ImportError_(f"{source}: row {number}, {first_problem(error)}", hint=hint)


def parse(
    text: str, file_format: FileFormat, kind: str | None, source: str, *, shipped: bool = False
) -> tuple[str, list[Record]]:
    """Parse and validate a whole file; raise ImportError_ naming the first bad row and field.
    ``shipped``: a seed file of the package itself (see ``parse_shipped_yaml``)."""
    if file_format == "csv":
        if kind is None:
            raise ImportError_(
                f"{source}: a CSV file does not say which kind it holds",
                hint="pass --kind (e.g. --kind instances) or name the file instances.csv",
            )
        raw_rows = _csv_rows(text, source)
    else:
        loaded = _load_document(text, file_format, source, shipped)
        try:
            envelope = CatalogFile.model_validate(loaded)
        except ValidationError as error:
            raise ImportError_(
                f"{source}: expected a document with 'kind' and 'rows' ({error.errors()[0]['msg']})"
            ) from None
        if kind is not None and envelope.kind != kind:
            raise ImportError_(f"{source}: holds {envelope.kind!r} rows, not {kind!r}")
        kind, raw_rows = envelope.kind, envelope.rows
    if len(raw_rows) > MAX_ROWS:
        raise _too_many_rows(source)
    check_kind(kind)
    record_type = RECORD_TYPES[kind]
    records: list[Record] = []
    for number, raw in enumerate(raw_rows, start=1):
        try:
            records.append(record_type.model_validate(raw))
        except ValidationError as error:
            raise _row_error(source, number, record_type, error) from None
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
        try:
            found = path.exists()
        except OSError as error:  # a name too long for the filesystem, say
            raise QuantplanError(
                f"cannot read {shown_path(path)}: {error.strerror}", hint="check the path"
            ) from None
        if not found:
            raise QuantplanError(f"no such file: {shown_path(path)}")
        chosen_format = format_of(path, file_format)
        file_kind = kind
        if file_kind is None and chosen_format == "csv" and path.stem in RECORD_TYPES:
            file_kind = path.stem
        # Bounded, UTF-8 text only: a binary or runaway file is refused before parsing.
        text = read_text(path, "catalog file")
        parsed_kind, records = parse(text, chosen_format, file_kind, str(path))
        parsed.append((path.name, parsed_kind, records))
    return write_parsed(engine, parsed, replace=replace)


def write_parsed(
    engine: Engine, parsed: list[tuple[str, str, list[Record]]], *, replace: bool = False
) -> list[tuple[str, dict[str, int]]]:
    """Write validated files' rows (``(file name, kind, rows)`` each) in one transaction: a row
    that cannot be written (a name the catalog lacks, a conflicting measurement) leaves the
    catalog as it was and names its file and row. Returns each file's kind and counts."""
    # Dependency order, so a file of instances may come before the hardware it names.
    order = sorted(range(len(parsed)), key=lambda i: KIND_ORDER.index(parsed[i][1]))
    results: list[tuple[str, dict[str, int]]] = [("", {})] * len(parsed)
    with session_scope(engine) as session:
        resolver = Resolver(session)  # one transaction: a name found once stays found
        for index in order:
            source, parsed_kind, records = parsed[index]
            counts = {"inserted": 0, "unchanged": 0, "replaced": 0}
            for number, record in enumerate(records, start=1):
                try:
                    outcome = write_record(
                        session, parsed_kind, record, replace=replace, resolver=resolver
                    )
                    counts[outcome] += 1
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
