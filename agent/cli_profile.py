"""``quantplan profile``: the whole scheme x engine matrix on this machine, with a final table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from quantplan.agent.cli_serve import stops_children_on_signals
from quantplan.cli_options import DbOption
from quantplan.errors import QuantplanError

if TYPE_CHECKING:
    from quantplan.agent.profile import ModelShape, ProfileRow
    from quantplan.catalog.snapshot import CatalogSnapshot

console = Console()
err_console = Console(stderr=True)
# A rentable machine like this one (2 vCPUs, Sapphire Rapids with AVX-512 and AMX).
DEFAULT_INSTANCE = "aws/c7i.large/us-east-1"


def model_shape(name: str, checkpoint: Path) -> ModelShape:
    """Layers, KV heads and head size from the checkpoint's config.json."""
    from quantplan.agent.profile import ModelShape

    config = json.loads((checkpoint / "config.json").read_text())
    heads = int(config["num_attention_heads"])
    return ModelShape(
        name=name,
        layers=int(config["num_hidden_layers"]),
        kv_heads=int(config.get("num_key_value_heads", heads)),
        head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
        parameters=0.0,
    )


def instance_price(snapshot: CatalogSnapshot, spec: str) -> tuple[float, str]:
    """USD/hour of ``cloud/name/region`` from the catalog."""
    for instance in snapshot.instances:
        if f"{instance.cloud}/{instance.name}/{instance.region}" == spec:
            return instance.price_per_hour, f"{spec} (catalog: {instance.price_source})"
    from quantplan.errors import UnknownNameError

    raise UnknownNameError(
        "instance",
        spec,
        [f"{i.cloud}/{i.name}/{i.region}" for i in snapshot.instances],
    )


def rows_table(rows: list[ProfileRow], title: str) -> Table:
    table = Table(title=title)
    for column in (
        "scheme",
        "engine",
        "best c",
        "out tok/s",
        "p95 TTFT ms",
        "quality Δ ppl %",
        "$/M out",
        "$/M blended",
        "latency cut vs bf16",
        "roofline",
        "status",
    ):
        table.add_column(column, justify="right")

    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in rows:
        table.add_row(
            row.scheme,
            row.engine,
            num(row.best_concurrency, "d"),
            num(row.output_tokens_per_s, ".1f"),
            num(row.ttft_p95_ms, ".0f"),
            num(row.quality_delta_pct, "+.2f"),
            num(row.usd_per_million_output, ".3f"),
            num(row.usd_per_million_blended, ".3f"),
            num(row.latency_reduction_pct, "+.0f") + ("%" if row.latency_reduction_pct else ""),
            num(row.fraction_of_roofline, ".0%"),
            "ok" if row.status == "succeeded" else f"failed: {row.error_kind}",
        )
    return table


@stops_children_on_signals
def profile_command(
    model: Annotated[str, typer.Option("--model", help="'default' or a local HF dir.")] = "default",
    schemes: Annotated[
        str | None, typer.Option("--schemes", help="Comma-separated subset, e.g. bf16,gguf-q8_0.")
    ] = None,
    price_per_hour: Annotated[
        float | None, typer.Option("--price-per-hour", help="USD/hour of this machine.")
    ] = None,
    instance: Annotated[
        str,
        typer.Option("--instance", help="Catalog instance whose price to use (cloud/name/region)."),
    ] = DEFAULT_INSTANCE,
    input_tokens: Annotated[int, typer.Option("--input-tokens", min=1, max=32768)] = 128,
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=1, max=32768)] = 64,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, max=4096)] = 16,
    requests: Annotated[int | None, typer.Option("--requests", "-n", min=1, max=1_000_000)] = None,
    slo_ttft_ms: Annotated[float | None, typer.Option("--slo-ttft-ms")] = None,
    db: DbOption = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Quantize where needed, serve, benchmark, evaluate and record every scheme on this machine."""
    from quantplan.agent.benchmark.metrics import slo_from_flags
    from quantplan.agent.benchmark.recording import host_hardware_record
    from quantplan.agent.benchmark.runner import BenchPlan
    from quantplan.agent.benchmark.workload import Workload
    from quantplan.agent.profile import (
        DEFAULT_MATRIX,
        ProfileContext,
        default_providers,
        run_profile,
    )
    from quantplan.agent.serve.host import detect_host, measure_memory_bandwidth_gbps
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.reports import record_report
    from quantplan.catalog.snapshot import load_snapshot

    slo = slo_from_flags(slo_ttft_ms)  # before any slow step
    cells = list(DEFAULT_MATRIX)
    if schemes:
        wanted = [s.strip() for s in schemes.split(",") if s.strip()]
        known = {cell.scheme for cell in DEFAULT_MATRIX}
        for name in wanted:
            if name not in known:
                from quantplan.errors import UnknownNameError

                raise UnknownNameError("scheme", name, known)
        cells = [cell for cell in cells if cell.scheme in wanted]
    catalog = open_catalog(db)
    snapshot = load_snapshot(catalog)
    if price_per_hour is not None:
        price, price_source = price_per_hour, "given with --price-per-hour"
    else:
        price, price_source = instance_price(snapshot, instance)
    hardware = detect_host()
    if hardware.device_kind != "cpu":
        raise QuantplanError(
            "quantplan profile measures CPU hosts with the managed toolchains for now",
            hint="on GPU hosts, use `quantplan bench` against a server you started",
        )
    with err_console.status("measuring this host's memory bandwidth ..."):
        bandwidth = measure_memory_bandwidth_gbps()
    from quantplan.agent.model_source import resolve_model

    with err_console.status("preparing the base model ..."):
        source = resolve_model(model)
    context = ProfileContext(
        shape=model_shape(source.name, source.path),
        plan=BenchPlan(
            workload=Workload(input_tokens=input_tokens, output_tokens=output_tokens),
            max_concurrency=max_concurrency,
            num_requests=requests,
            slo=slo,
        ),
        hardware=hardware,
        hardware_record=host_hardware_record(hardware, bandwidth),
        bandwidth_gbps=bandwidth,
        bandwidth_source="numpy copy bandwidth measured on this host",
        price_per_hour=price,
        price_source=price_source,
    )
    artifact_for, quality_for = default_providers(source)
    rows = run_profile(
        cells,
        context,
        artifact_for=artifact_for,
        quality_for=quality_for,
        record=lambda report: record_report(catalog, report),
        progress=lambda line: err_console.print(f"[dim]{line}[/]"),
    )
    if json_output:
        summary = {
            "model": source.name,
            "dequantized_from": source.dequantized_from,
            "hardware": hardware.describe(),
            "price_per_hour": price,
            "price_source": price_source,
            "memory_bandwidth_gbps": bandwidth,
            "workload": context.plan.workload.model_dump(),
            "max_concurrency": max_concurrency,
            "rows": [row.model_dump(mode="json") for row in rows],
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    console.print(rows_table(rows, f"{source.name} on {hardware.describe()}"))
    console.print(f"price: ${price:g}/h ({price_source}); memory bandwidth {bandwidth:.1f} GB/s")
    if source.dequantized_from:
        console.print(
            f"[yellow]note:[/] the base weights were dequantized from {source.dequantized_from}; "
            "requantizing them looks cheaper in quality than it would on a real 16-bit model."
        )


def register(app: typer.Typer) -> None:
    """Add ``profile`` to the root app."""
    app.command("profile")(profile_command)
