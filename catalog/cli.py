"""``quantplan catalog ...``: browse, import and export the catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from quantplan.cli_options import DbOption
from quantplan.errors import QuantplanError, did_you_mean, shorten

if TYPE_CHECKING:  # imported where used, so `quantplan --help` does not load the database layer
    from sqlalchemy import Engine

    from quantplan.catalog.reading import CatalogRead

catalog_app = typer.Typer(
    help=(
        "Browse and edit the catalog: hardware, instance types and prices, model cards, "
        "quantization schemes, the engine support matrix, measured profiles and quality "
        "results.\n\n"
        "Kinds: hardware, instances, models, schemes, support, engine_traits, method_traits, "
        "spot_interruptions, profiles, quality.\n\n"
        "Measurements (profiles, quality) are append-only: a wrong one is taken back with "
        "`catalog retract`, and stored rows that do not validate are skipped with a warning."
    ),
    no_args_is_help=True,
)

KindOption = Annotated[
    str,
    typer.Option(
        "--kind",
        "-k",
        help="Which rows: hardware, instances, models, schemes, support, engine_traits, "
        "method_traits, spot_interruptions, profiles or quality.",
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
        "memory_type",
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
        "intermediate_size",
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
    "engine_traits": (
        "engine",
        "device_kind",
        "bandwidth_efficiency",
        "kv_read_efficiency",
        "kv_read_efficiency_without_flash_attention",
        "compute_efficiency",
        "runtime_overhead_gb",
        "max_concurrency",
        "tensor_parallel",
        "batching",
        "basis",
    ),
    "method_traits": (
        "method",
        "embeddings_in_16_bit",
        "w8a8",
        "slow_kernel_below_capability",
        "basis",
    ),
    "spot_interruptions": (
        "cloud",
        "device_kind",
        "instance_type",
        "monthly_rate_low",
        "monthly_rate_high",
        "as_of",
        "basis",
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
    "monthly_rate_low": "low/month",
    "monthly_rate_high": "high/month",
    "memory_gb": "mem GB",
    "memory_bandwidth_gbps": "GB/s",
    "memory_type": "memory",
    "bf16_tflops": "TFLOPS",
    "compute_capability": "cc",
    "isa_flags": "ISA",
    "accelerator_count": "GPUs",
    "memory_gib": "GiB",
    "price_per_hour": "$/h",
    "spot_price_per_hour": "spot $/h",
    "parameters_b": "params B",
    "hidden_size": "hidden",
    "intermediate_size": "mlp",
    "kv_heads": "kv",
    "max_context": "ctx",
    "group_size": "group",
    "bits_per_weight": "bpw",
    "device_kind": "device",
    "min_compute_capability": "min cc",
    "required_isa": "ISA",
    "bandwidth_efficiency": "bw eff",
    "kv_read_efficiency": "KV eff",
    "kv_read_efficiency_without_flash_attention": "KV eff no FA",
    "compute_efficiency": "compute eff",
    "runtime_overhead_gb": "overhead GB",
    "max_concurrency": "max seqs",
    "tensor_parallel": "TP",
    "embeddings_in_16_bit": "16-bit emb",
    "slow_kernel_below_capability": "slow below cc",
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
WRAPPING_COLUMNS = frozenset(
    {"source", "kernel", "eval_set", "isa_flags", "hardware", "run_id", "retracted"}
)
NAME_FIELDS = {"hardware": "name", "instances": "name", "models": "name", "schemes": "name"}


def _engine(db: str | None) -> Engine:
    from quantplan.catalog.db import open_catalog

    return open_catalog(db)


def _rows(count: int, kind: str) -> str:
    return f"{count} {kind} row{'' if count == 1 else 's'}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _print_table(
    kind: str, rows: list[dict[str, Any]], console: Console, columns: tuple[str, ...]
) -> None:
    table = Table(title=f"{kind} ({len(rows)} rows)", title_justify="left", expand=False)
    for column in columns:
        # Numbers align right, judged by the values present (a blank says nothing).
        present = [row[column] for row in rows if row.get(column) is not None]
        numeric = bool(present) and all(isinstance(v, int | float) for v in present)
        table.add_column(
            LABELS.get(column, column.replace("_", " ")),
            justify="right" if numeric else "left",
            overflow="fold" if column in WRAPPING_COLUMNS else "ellipsis",
            no_wrap=column not in WRAPPING_COLUMNS,
            min_width=8
            if column in WRAPPING_COLUMNS
            else max((len(str(r[column])) for r in rows), default=1)
            if column == "id"  # an id cut to "…" cannot be retracted
            else None,
        )
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _matches(row: dict[str, Any], filters: dict[str, str]) -> bool:
    return all(str(row.get(field, "")).lower() == value.lower() for field, value in filters.items())


def _parse_filters(kind: str, where: list[str]) -> dict[str, str]:
    from quantplan.catalog.records import RECORD_TYPES
    from quantplan.catalog.retractions import RETRACTABLE_TABLES

    filters: dict[str, str] = {}
    fields = [*(["id"] if kind in RETRACTABLE_TABLES else []), *RECORD_TYPES[kind].model_fields]
    for clause in where:
        if "=" not in clause:
            raise QuantplanError(
                f"filter {shorten(clause)!r} is not FIELD=VALUE", hint="e.g. --where cloud=aws"
            )
        field, value = clause.split("=", 1)
        if field not in fields:
            raise QuantplanError(
                f"{kind} rows have no field {field!r}",
                hint=did_you_mean(field, fields) or f"fields: {', '.join(fields)}",
            )
        filters[field] = value
    return filters


def _read(
    db: str | None, kinds: tuple[str, ...], *, include_retracted: bool = False
) -> CatalogRead:
    """Read kinds defensively: rows that do not validate are skipped and named on stderr."""
    from sqlmodel import Session

    from quantplan.catalog.reading import read_catalog

    with Session(_engine(db)) as session:
        return read_catalog(session, kinds, include_retracted=include_retracted)


@catalog_app.command("list")
def list_rows(
    kind: KindOption = "instances",
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="Keep rows whose FIELD equals VALUE (repeatable)."),
    ] = None,
    include_retracted: Annotated[
        bool,
        typer.Option(
            "--include-retracted", help="Also list retracted measurements, marked with why."
        ),
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List catalog rows of one kind. Measurements show their id (for `catalog retract`).

    Examples:\n
      quantplan catalog list --kind instances --where cloud=aws\n
      quantplan catalog list --kind quality --where model=Llama-3-8B --json\n
      quantplan catalog list --kind profiles --include-retracted
    """
    from quantplan.catalog.retractions import RETRACTABLE_TABLES
    from quantplan.catalog.transfer import check_kind

    check_kind(kind)
    measured = kind in RETRACTABLE_TABLES
    filters = _parse_filters(kind, where or [])
    read = _read(db, (kind,), include_retracted=include_retracted)
    rows: list[dict[str, Any]] = []
    for stored in read.rows[kind]:
        row = stored.record.model_dump(mode="json")
        if measured:
            row = {"id": stored.row_id, **row}
        if include_retracted:
            row["retracted"] = stored.retraction.describe() if stored.retraction else None
        rows.append(row)
    rows = [r for r in rows if _matches(r, filters)]
    if as_json:
        sys.stdout.write(json.dumps({"kind": kind, "rows": rows}, indent=2) + "\n")
        return
    columns = (("id",) if measured else ()) + TABLE_COLUMNS[kind]
    if include_retracted:
        columns += ("retracted",)
    _print_table(kind, rows, Console(), columns)
    notes = Console(stderr=True)
    hidden = read.retracted.get(kind, 0)
    if hidden and not include_retracted:
        notes.print(
            f"{_rows(hidden, kind)} retracted, not shown (--include-retracted lists them)",
            highlight=False,
        )
    for bad in read.skipped_of(kind):
        if bad.retraction is not None:  # retracted because it does not validate, typically
            notes.print(
                f"{kind} id {bad.row_id} (retracted {bad.retraction}) does not validate, so "
                f"it is not listed: {bad.field}: {bad.reason}",
                highlight=False,
            )


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
    from quantplan.catalog.transfer import check_kind

    kinds = (check_kind(kind),) if kind else tuple(NAME_FIELDS)
    read = _read(db, kinds)
    found: list[tuple[str, dict[str, Any]]] = []
    known: list[str] = []
    for each in kinds:
        for record in read.records(each):
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


@catalog_app.command("import-results")
def import_results_command(
    files: Annotated[list[Path], typer.Argument(help="Results files the tool wrote.")],
    tool: Annotated[
        str,
        typer.Option(
            "--tool",
            help="vllm-bench-serve (the JSON of `vllm bench serve --save-result`) or "
            "llama-batched-bench (its `--output-format jsonl` lines)",
        ),
    ],
    model: Annotated[str, typer.Option(help="Catalog model that ran, e.g. Llama-3.1-8B.")],
    scheme: Annotated[str, typer.Option(help="Catalog scheme, e.g. awq-w4a16-g128.")],
    hardware: Annotated[str, typer.Option(help="Catalog hardware it ran on, e.g. L40S.")],
    engine: Annotated[
        str | None,
        typer.Option(help="Engine served (default: llama.cpp for llama-batched-bench)."),
    ] = None,
    count: Annotated[int, typer.Option(min=1, help="GPUs used (vCPUs on a CPU), default 1.")] = 1,
    engine_version: Annotated[
        str | None, typer.Option(help="Engine version, recorded with the rows.")
    ] = None,
    notes: Annotated[str, typer.Option(help="Anything else about the run.")] = "",
    db: DbOption = None,
) -> None:
    """Import other benchmark tools' results as measured profiles, all or nothing.

    The files do not name the model, scheme or hardware as the catalog does: say them, and
    they are checked against the catalog. Rows get a run id from the file's content, so
    importing a file twice adds nothing.

    Example: quantplan catalog import-results result.json --tool vllm-bench-serve
    --model Llama-3.1-8B --scheme awq-w4a16-g128 --engine vllm --hardware L40S
    """
    from quantplan.catalog.results_import import RESULTS_TOOLS, RunSetting, import_results

    if tool not in RESULTS_TOOLS:
        raise typer.BadParameter(
            f"{tool!r} is not one of: {', '.join(RESULTS_TOOLS)}", param_hint="--tool"
        )
    if engine is None:
        if tool != "llama-batched-bench":
            raise typer.BadParameter(
                "say which engine served the benchmarked endpoint (vllm, llama.cpp)",
                param_hint="--engine",
            )
        engine = "llama.cpp"
    setting = RunSetting.model_validate(
        {"model": model, "scheme": scheme, "engine": engine, "hardware": hardware,
         "hardware_count": count, "engine_version": engine_version, "notes": notes}
    )  # fmt: skip
    results = import_results(_engine(db), tool, files, setting)
    console = Console()
    for path, (_, counts) in zip(files, results, strict=True):
        console.print(
            f"{path.name}: {counts['inserted']} profile(s) added, "
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
    """Export one kind of rows; the file imports back into any catalog unchanged.

    Only rows in force are exported: stored rows that do not validate are skipped (each named
    on stderr) and retracted measurements are left out; stderr says how many of each.
    """
    from quantplan.catalog.transfer import check_kind, format_of, render

    check_kind(kind)
    read = _read(db, (kind,))
    records = read.records(kind)
    chosen = format_of(output or Path(f"x.{file_format or 'json'}"), file_format)
    text = render(kind, records, chosen)
    if output is None:
        sys.stdout.write(text)
    else:
        # Written beside the target and renamed, so a failed export never leaves half a file.
        partial = output.with_name(f".{output.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(output)
    left_out: list[str] = []
    if skipped := len(read.skipped_of(kind)):
        left_out.append(f"skipped {skipped} that do not validate (named above)")
    if retracted := read.retracted.get(kind, 0):
        left_out.append(f"left out {retracted} retracted")
    if output is not None or left_out:
        Console(stderr=True).print(
            f"exported {len(records)} {kind} rows"
            + (f" to {output}" if output else "")
            + "".join(f"; {part}" for part in left_out),
            highlight=False,
        )


@catalog_app.command("retract")
def retract_row(
    kind: Annotated[str, typer.Argument(help="profiles or quality.")],
    row_id: Annotated[
        int, typer.Argument(metavar="ID", help="The row's id (catalog list shows it).")
    ],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why it is taken back (kept with the row).")
    ],
    by: Annotated[
        str | None, typer.Option("--by", help="Who retracts it (default: your login name).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Take a measurement back: plans and exports stop using it, the row itself stays.

    Measurements are append-only; a retraction row records who took which row back, when
    and why. Retracting a row twice is refused (the first retraction stands). A corrected
    measurement with the same key may then be imported or reported.

    Example:\n
      quantplan catalog retract quality 17 --reason "perplexity is NaN: the eval crashed"
    """
    from quantplan.catalog.db import session_scope
    from quantplan.catalog.retractions import retract

    with session_scope(_engine(db)) as session:
        row = retract(session, kind, row_id, reason, by)
        stamp = f"{row.retracted_at:%Y-%m-%d %H:%M} UTC by {row.retracted_by}"
    Console().print(f"retracted {kind} row {row_id} ({stamp}): {reason.strip()}", highlight=False)


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
    """Add the ``catalog`` group (with ``prices``, ``reseed`` and ``gaps``) to the root app."""
    from quantplan.catalog.gaps import gaps
    from quantplan.catalog.prices_cli import prices_app, reseed

    catalog_app.add_typer(prices_app, name="prices")
    catalog_app.command("reseed")(reseed)
    catalog_app.command("gaps")(gaps)
    app.add_typer(catalog_app, name="catalog")
