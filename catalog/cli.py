"""``quantplan catalog ...``: browse, import and export the catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from quantplan.errors import QuantplanError, did_you_mean

catalog_app = typer.Typer(
    help=(
        "Browse and edit the catalog: hardware, instance types and prices, model cards, "
        "quantization schemes, the engine support matrix, measured profiles and quality "
        "results.\n\n"
        "Kinds: hardware, instances, models, schemes, support, profiles, quality."
    ),
    no_args_is_help=True,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="QUANTPLAN_DB",
        help="SQLAlchemy URL of the catalog (default: SQLite in the user data directory).",
        show_default=False,
    ),
]
KindOption = Annotated[
    str,
    typer.Option(
        "--kind",
        "-k",
        help="Which rows: hardware, instances, models, schemes, support, profiles or quality.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]

# Columns shown in the terminal table per kind; --json always prints every field.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "hardware": (
        "name",
        "kind",
        "memory_gb",
        "memory_bandwidth_gbps",
        "bf16_tflops",
        "compute_capability",
        "isa_flags",
    ),
    "instances": (
        "cloud",
        "name",
        "region",
        "hardware",
        "accelerator_count",
        "vcpus",
        "memory_gib",
        "price_per_hour",
        "spot_price_per_hour",
    ),
    "models": (
        "name",
        "family",
        "parameters_b",
        "layers",
        "hidden_size",
        "heads",
        "kv_heads",
        "max_context",
    ),
    "schemes": ("name", "family", "bits", "group_size", "variant", "bits_per_weight", "engines"),
    "support": (
        "engine",
        "family",
        "device_kind",
        "bits",
        "min_compute_capability",
        "required_isa",
        "kernel",
    ),
    "profiles": (
        "model",
        "scheme",
        "engine",
        "hardware",
        "concurrency",
        "output_tokens_per_s",
        "ttft_p95_ms",
        "itl_p95_ms",
        "cost_per_million_tokens",
        "basis",
        "run_id",
    ),
    "quality": (
        "model",
        "scheme",
        "eval_set",
        "perplexity",
        "perplexity_delta_pct",
        "kl_divergence",
        "top1_agreement",
        "basis",
    ),
}
# Short column labels keep the tables readable in 80 columns.
LABELS = {
    "memory_gb": "mem GB",
    "memory_bandwidth_gbps": "GB/s",
    "bf16_tflops": "TFLOPS",
    "compute_capability": "cc",
    "isa_flags": "ISA",
    "accelerator_count": "GPUs",
    "memory_gib": "GiB",
    "price_per_hour": "$/h",
    "spot_price_per_hour": "spot $/h",
    "parameters_b": "params B",
    "hidden_size": "hidden",
    "kv_heads": "kv",
    "max_context": "ctx",
    "group_size": "group",
    "bits_per_weight": "bpw",
    "device_kind": "device",
    "min_compute_capability": "min cc",
    "required_isa": "ISA",
    "output_tokens_per_s": "out tok/s",
    "ttft_p95_ms": "TTFT p95",
    "itl_p95_ms": "ITL p95",
    "cost_per_million_tokens": "$/M tok",
    "perplexity_delta_pct": "dPPL %",
    "kl_divergence": "KL",
    "top1_agreement": "top-1",
    "concurrency": "conc",
    "perplexity": "PPL",
}
WRAPPING_COLUMNS = frozenset({"source", "kernel", "eval_set", "isa_flags", "hardware", "run_id"})
NAME_FIELDS = {"hardware": "name", "instances": "name", "models": "name", "schemes": "name"}


def _engine(db: str | None):  # type: ignore[no-untyped-def]
    from quantplan.catalog.db import open_catalog

    return open_catalog(db)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _print_table(kind: str, rows: list[dict[str, Any]], console: Console) -> None:
    columns = TABLE_COLUMNS[kind]
    table = Table(title=f"{kind} ({len(rows)} rows)", title_justify="left", expand=False)
    for column in columns:
        numeric = rows and isinstance(rows[0].get(column), int | float)
        table.add_column(
            LABELS.get(column, column.replace("_", " ")),
            justify="right" if numeric else "left",
            overflow="fold" if column in WRAPPING_COLUMNS else "ellipsis",
            no_wrap=column not in WRAPPING_COLUMNS,
            min_width=8 if column in WRAPPING_COLUMNS else None,
        )
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _matches(row: dict[str, Any], filters: dict[str, str]) -> bool:
    return all(str(row.get(field, "")).lower() == value.lower() for field, value in filters.items())


def _parse_filters(kind: str, where: list[str]) -> dict[str, str]:
    from quantplan.catalog.records import RECORD_TYPES

    filters: dict[str, str] = {}
    fields = RECORD_TYPES[kind].model_fields
    for clause in where:
        if "=" not in clause:
            raise QuantplanError(
                f"filter {clause!r} is not FIELD=VALUE", hint="e.g. --where cloud=aws"
            )
        field, value = clause.split("=", 1)
        if field not in fields:
            raise QuantplanError(
                f"{kind} rows have no field {field!r}",
                hint=did_you_mean(field, fields) or f"fields: {', '.join(fields)}",
            )
        filters[field] = value
    return filters


@catalog_app.command("list")
def list_rows(
    kind: KindOption = "instances",
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="Keep rows whose FIELD equals VALUE (repeatable)."),
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List catalog rows of one kind.

    Examples:\n
      quantplan catalog list --kind instances --where cloud=aws\n
      quantplan catalog list --kind quality --where model=Llama-3-8B --json
    """
    from quantplan.catalog.transfer import check_kind, export_kind

    check_kind(kind)
    filters = _parse_filters(kind, where or [])
    rows = [r.model_dump(mode="json") for r in export_kind(_engine(db), kind)]
    rows = [r for r in rows if _matches(r, filters)]
    if as_json:
        sys.stdout.write(json.dumps({"kind": kind, "rows": rows}, indent=2) + "\n")
        return
    _print_table(kind, rows, Console())


@catalog_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="An instance type, model, scheme or hardware name.")],
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="Look only in this kind.")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show every field of the rows with this name (an instance type shows all its regions)."""
    from quantplan.catalog.transfer import check_kind, export_kind

    engine = _engine(db)
    kinds = [check_kind(kind)] if kind else list(NAME_FIELDS)
    found: list[tuple[str, dict[str, Any]]] = []
    known: list[str] = []
    for each in kinds:
        for record in export_kind(engine, each):
            row = record.model_dump(mode="json")
            known.append(row[NAME_FIELDS.get(each, "name")])
            if row.get(NAME_FIELDS.get(each, "name"), "").lower() == name.lower():
                found.append((each, row))
    if not found:
        raise QuantplanError(
            f"nothing in the catalog is named {name!r}", hint=did_you_mean(name, set(known))
        )
    if as_json:
        sys.stdout.write(json.dumps([{"kind": k, **r} for k, r in found], indent=2) + "\n")
        return
    console = Console()
    for each, row in found:
        table = Table(title=f"{each}: {name}", show_header=False, title_justify="left")
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for field, value in row.items():
            table.add_row(field, _cell(value))
        console.print(table)


@catalog_app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="JSON, YAML or CSV catalog files.")],
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="Kind of the rows (needed for CSV).")
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="json, yaml or csv (default: from suffix).")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Update reference rows that differ (never measurements)."),
    ] = False,
    db: DbOption = None,
) -> None:
    """Import catalog files, all or nothing.

    Every row of every file is validated first; one bad row names the file, the row and the
    field, and nothing is written. Rows already present unchanged are skipped, so importing
    the same file twice changes nothing.
    """
    from quantplan.catalog.transfer import import_files

    results = import_files(_engine(db), files, kind=kind, file_format=file_format, replace=replace)
    console = Console()
    for path, (each, counts) in zip(files, results, strict=True):
        console.print(
            f"{path.name}: {each}: {counts['inserted']} added, {counts['replaced']} replaced, "
            f"{counts['unchanged']} already present"
        )


@catalog_app.command("export")
def export(
    kind: KindOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option("--format", help="json, yaml or csv (default: from suffix, or json)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Export one kind of rows; the file imports back into any catalog unchanged."""
    from quantplan.catalog.transfer import check_kind, export_file, export_kind, format_of, render

    check_kind(kind)
    engine = _engine(db)
    if output is None:
        chosen = format_of(Path(f"x.{file_format or 'json'}"))
        sys.stdout.write(render(kind, export_kind(engine, kind), chosen))
        return
    count = export_file(engine, kind, output, file_format)
    Console(stderr=True).print(f"wrote {count} {kind} rows to {output}")


@catalog_app.command("runs")
def runs(
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status: succeeded, failed, running.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 30,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Recent agent runs (quantize, serve, benchmark, evaluate), failed ones with their error."""
    from quantplan.catalog.reports import list_runs

    rows = list_runs(_engine(db), status=status, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(title=f"runs ({len(rows)})", title_justify="left")
    for column in ("id", "kind", "status", "started_at", "hardware", "error_kind", "error_message"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(
                _cell(row.get(c))
                for c in (
                    "id",
                    "kind",
                    "status",
                    "started_at",
                    "hardware",
                    "error_kind",
                    "error_message",
                )
            )
        )
    Console().print(table)


@catalog_app.command("where")
def where(db: DbOption = None) -> None:
    """Print the catalog's database URL and schema revision."""
    from quantplan.catalog.db import current_revision

    engine = _engine(db)
    Console().print(
        f"{engine.url.render_as_string(hide_password=True)} (revision {current_revision(engine)})"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
