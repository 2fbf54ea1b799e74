"""``quantplan quantize`` and ``quantplan evaluate``: thin shells over the agent functions."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from quantplan.agent.cli_serve import stops_children_on_signals
from quantplan.cli_options import DbOption

GGUF_ALL = "all"


def _progress_printer(console: Console, status: Any) -> Any:
    def show(progress: Any) -> None:
        done = ""
        if progress.total:
            done = f" [{progress.completed or 0:.0f}/{progress.total:.0f}]"
        status.update(f"{progress.message}{done}")

    return show


def _human_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    return f"{count / 1e6:.1f} MB"


@stops_children_on_signals
def quantize_command(
    method: Annotated[str, typer.Option("--method", "-m", help="gptq, awq, int8, fp8 or gguf.")],
    model: Annotated[
        str, typer.Option("--model", help="'default' (SmolLM2-135M) or a local HF directory.")
    ] = "default",
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="gptq/awq: W4A16 (default) or W8A16. int8, fp8: W8A8. gguf: F16, Q8_0, Q6_K, "
            "Q5_K_M, Q4_K_M (default), Q4_0, Q3_K_M, Q2_K, or 'all'.",
        ),
    ] = "",
    group_size: Annotated[
        int | None, typer.Option(help="W4A16 group size (default: largest of 128/64/32 dividing)")
    ] = None,
    samples: Annotated[int, typer.Option(help="Calibration samples (gptq/awq/int8).")] = 64,
    sequence_length: Annotated[int, typer.Option(help="Tokens per calibration sample.")] = 256,
    calibration: Annotated[
        str, typer.Option(help="'pydoc-topics' (offline default) or a .txt/.jsonl file.")
    ] = "pydoc-topics",
    store: Annotated[
        str | None, typer.Option(help="Artifact store directory or fsspec URL.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Rebuild even when a cached artifact exists.")
    ] = False,
    layer_error: Annotated[
        bool,
        typer.Option(
            help="Dequantize every quantized weight and record its error (MSE, relative) against "
            "the 16-bit weight; seconds of extra work. Off gives the same weights, no error."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print manifests as JSON.")] = False,
) -> None:
    """Quantize a model; artifacts are cached by content and reused on repeat."""
    from rich.status import Status

    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.quantize import get_quantizer, quantize
    from quantplan.agent.quantize.gguf import GGUF_TYPES

    if method == "gguf":
        wanted = scheme.upper() if scheme else "Q4_K_M"
        runs: list[dict[str, Any]] = [
            {"type": kind, "measure_layer_error": layer_error}
            for kind in (GGUF_TYPES if wanted == GGUF_ALL.upper() else (wanted,))
        ]
    else:
        # Without --scheme each method's config default applies (W4A16; int8: W8A8).
        options: dict[str, Any] = {
            "measure_layer_error": layer_error,
            "calibration": {
                "source": calibration,
                "num_samples": samples,
                "sequence_length": sequence_length,
            },
        }
        if "calibration" not in get_quantizer(method).config_type.model_fields:
            del options["calibration"]  # computed from the weights alone (fp8)
        if scheme:
            options["scheme"] = scheme.upper()
        if group_size is not None:
            options["group_size"] = group_size
        runs = [options]
    console = Console(stderr=True)
    artifact_store = ArtifactStore(store)
    manifests = []
    for options in runs:
        with Status(f"{method} {options.get('type', options.get('scheme'))}", console=console) as s:
            manifests.append(
                quantize(
                    model,
                    method,
                    options,
                    store=artifact_store,
                    on_progress=_progress_printer(console, s),
                    force=force,
                )
            )
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in manifests], indent=2))
        return
    table = Table(title=f"artifacts in {artifact_store.url}")
    for column in ("scheme", "id", "size", "bits/weight", "ratio", "seconds", "path"):
        table.add_column(column)
    for manifest in manifests:
        table.add_row(
            manifest.scheme,
            manifest.artifact_id[:12],
            _human_bytes(manifest.total_bytes),
            f"{manifest.bits_per_weight:.2f}" if manifest.bits_per_weight else "-",
            f"{manifest.compression_ratio:.2f}x",
            f"{manifest.quantize_seconds:.0f}",
            str(artifact_store.local_dir(manifest)) if artifact_store.is_local else "-",
        )
    Console().print(table)


@stops_children_on_signals
def evaluate_command(
    artifacts: Annotated[
        list[str], typer.Argument(help="Artifact ids (or prefixes), scheme names, or 'all'.")
    ],
    model: Annotated[str, typer.Option(help="The base model the artifacts came from.")] = "default",
    windows: Annotated[int, typer.Option(help="Held-out token windows to score.")] = 16,
    window_length: Annotated[int, typer.Option(help="Tokens per window.")] = 256,
    store: Annotated[
        str | None, typer.Option(help="Artifact store directory or fsspec URL.")
    ] = None,
    record: Annotated[bool, typer.Option(help="Write the results to the catalog.")] = True,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Perplexity, KL, top-1 agreement, bits/weight, compression and layer error vs the base."""
    from datetime import UTC, datetime

    from rich.status import Status

    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.evaluate.api import evaluate
    from quantplan.agent.evaluate.engines import EvalSettings
    from quantplan.agent.toolchains.steps import without_stderr_tail

    started = datetime.now(UTC)
    artifact_store = ArtifactStore(store)
    if artifacts == ["all"]:
        from quantplan.agent.model_source import resolve_model

        source_hash = resolve_model(model).content_sha256
        manifests = [m for m in artifact_store.list() if m.source_model_sha256 == source_hash]
    else:
        manifests = [artifact_store.find(reference) for reference in artifacts]
    console = Console(stderr=True)
    with Status("evaluating", console=console) as status:
        table = evaluate(
            manifests,
            model=model,
            settings=EvalSettings(num_windows=windows, window_length=window_length),
            store=artifact_store,
            on_progress=_progress_printer(console, status),
        )
    recorded = None
    if record:
        recorded = _record(table, started, manifests, db)
    if as_json:
        typer.echo(json.dumps({**table.model_dump(mode="json"), "catalog": recorded}, indent=2))
        return
    view = Table(title=f"quality of {table.model} on {table.eval_set}")
    columns = ("scheme", "engine", "ppl", "Δppl %", "KL", "top-1", "bits/w", "ratio", "rel.err")
    for column in columns:
        view.add_column(column)
    for row in table.rows:
        if row.error:
            view.add_row(row.scheme, row.engine, "[red]failed: see below[/]")
            continue
        view.add_row(
            row.scheme,
            row.engine,
            f"{row.perplexity:.3f}" if row.perplexity else "-",
            f"{row.perplexity_delta_pct:+.2f}" if row.perplexity_delta_pct is not None else "-",
            f"{row.kl_divergence:.4f}" if row.kl_divergence is not None else "-",
            f"{row.top1_agreement:.3f}" if row.top1_agreement is not None else "-",
            f"{row.bits_per_weight:.2f}" if row.bits_per_weight else "-",
            f"{row.compression_ratio:.2f}x" if row.compression_ratio else "-",
            f"{row.layer_error['mean_relative_error']:.4f}" if row.layer_error else "-",
        )
    out = Console()
    out.print(view)
    for row in table.rows:
        if row.error:
            # The reported errors, without the traceback tail (--json keeps it all).
            out.print(f"[red]{row.scheme} on {row.engine} could not be evaluated:[/]")
            out.print(without_stderr_tail(row.error), markup=False, highlight=False)
    for note in table.notes:
        out.print(f"[yellow]note:[/] {note}")
    if recorded:
        out.print(f"catalog: {recorded}")


def _record(table: Any, started: Any, manifests: list[Any], db: str | None) -> str:
    from quantplan.agent.evaluate.report import quality_report
    from quantplan.agent.serve.host import detect_host
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.reports import record_report
    from quantplan.catalog.snapshot import load_snapshot

    engine = open_catalog(db)
    known = {scheme.name for scheme in load_snapshot(engine).schemes}
    versions: dict[str, str] = {}
    for manifest in manifests:
        versions.update(manifest.tool_versions)
    report, skipped = quality_report(
        table,
        started_at=started,
        hardware=detect_host().describe(),
        tool_versions=versions,
        known_schemes=known,
    )
    outcome = record_report(engine, report)
    text = f"{outcome} run {report.run.run_id} with {len(report.quality)} quality rows"
    if skipped:
        text += "; not recorded: " + ", ".join(skipped)
    return text


def register(app: typer.Typer) -> None:
    """Add ``quantize`` and ``evaluate`` to the root app."""
    app.command("quantize")(quantize_command)
    app.command("evaluate")(evaluate_command)
