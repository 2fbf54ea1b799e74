"""``quantplan profile``: the whole matrix on this machine, measured and recorded.

For each (scheme, engine) cell: make the artifact (quantize where needed, cached by the
artifact store), serve it, run the benchmark sweep, take its quality from the evaluation, and
record the outcome in the catalog (a measured profile, or a failed run with no numbers). The
final table shows scheme, engine, tokens/s, p95 TTFT, quality delta and $/M tokens, with
latency reduction vs the 16-bit baseline and the fraction of the bandwidth roofline reached.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.benchmark.recording import (
    error_kind_of,
    failed_report,
    new_run_id,
    profile_report,
)
from quantplan.agent.benchmark.runner import ArtifactBench, BenchPlan, benchmark_artifact
from quantplan.agent.costs import (
    cost_figures,
    kv_bytes_per_position,
    latency_reduction_pct,
    roofline_figures,
)
from quantplan.agent.model_source import ModelSource
from quantplan.agent.serve import get_engine
from quantplan.agent.serve.engine import ServeOptions
from quantplan.agent.serve.errors import ServeError
from quantplan.agent.serve.host import HostHardware
from quantplan.catalog.records import HardwareRecord
from quantplan.catalog.registry import EngineName, MethodName
from quantplan.catalog.reports import MeasurementReport
from quantplan.errors import QuantplanError

if TYPE_CHECKING:
    from quantplan.agent.evaluate.api import QualityTable


class MatrixCell(BaseModel):
    """One scheme on one engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: str = Field(description="Catalog scheme name, e.g. gptq-w4a16-g64")
    engine: EngineName
    method: MethodName
    gguf_type: str | None = Field(default=None, description="GGUF type, e.g. Q4_K_M")


# Group size 64: SmolLM2's 576-wide layers are not divisible by 128.
DEFAULT_MATRIX: tuple[MatrixCell, ...] = (
    MatrixCell(scheme="bf16", engine="vllm", method="baseline"),
    MatrixCell(scheme="gptq-w4a16-g64", engine="vllm", method="gptq"),
    MatrixCell(scheme="awq-w4a16-g64", engine="vllm", method="awq"),
    MatrixCell(scheme="gguf-f16", engine="llama.cpp", method="gguf", gguf_type="F16"),
    MatrixCell(scheme="gguf-q8_0", engine="llama.cpp", method="gguf", gguf_type="Q8_0"),
    MatrixCell(scheme="gguf-q4_k_m", engine="llama.cpp", method="gguf", gguf_type="Q4_K_M"),
)


class ModelShape(BaseModel):
    """What the roofline needs of the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    parameters: float


class ProfileRow(BaseModel):
    """One line of the final table; numbers only for succeeded cells."""

    model_config = ConfigDict(extra="forbid")

    scheme: str
    engine: str
    status: Literal["succeeded", "failed"]
    run_id: str
    error_kind: str | None = None
    error: str | None = None
    best_concurrency: int | None = None
    output_tokens_per_s: float | None = None
    total_tokens_per_s: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    itl_p50_ms: float | None = None
    single_stream_e2e_ms: float | None = Field(
        default=None, description="e2e p50 at concurrency 1 (latency of one user)"
    )
    latency_reduction_pct: float | None = Field(
        default=None, description="Single-stream e2e vs the 16-bit baseline (positive = faster)"
    )
    quality_delta_pct: float | None = Field(default=None, description="Perplexity delta vs base")
    usd_per_million_output: float | None = None
    usd_per_million_blended: float | None = None
    bandwidth_utilization: float | None = None
    fraction_of_roofline: float | None = None
    peak_memory_gb: float | None = None
    artifact_bytes: int | None = None
    engine_version: str | None = None
    stop_reason: str | None = None


ArtifactFor = Callable[[MatrixCell], Path]
QualityFor = Callable[[MatrixCell, Path], float | None]
Progress = Callable[[str], None]


def single_stream_e2e_ms(bench: ArtifactBench) -> float | None:
    for level in bench.result.levels:
        if level.concurrency == 1:
            return level.metrics.e2e.p50_ms
    return None


class ProfileContext(BaseModel):
    """Everything shared by the cells of one profile run."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    shape: ModelShape
    plan: BenchPlan
    hardware: HostHardware
    hardware_record: HardwareRecord | None
    bandwidth_gbps: float = Field(gt=0)
    bandwidth_source: str
    price_per_hour: float | None = Field(default=None, ge=0)
    price_source: str = ""
    serve_options: ServeOptions = Field(default_factory=ServeOptions)
    tool_versions: dict[str, str] = Field(default_factory=dict)


def profile_cell(
    cell: MatrixCell,
    context: ProfileContext,
    *,
    artifact_for: ArtifactFor,
    quality_for: QualityFor | None,
    record: Callable[[MeasurementReport], object],
    progress: Progress,
) -> tuple[ProfileRow, ArtifactBench | None]:
    """Make, serve, measure and record one cell; a failure becomes a failed row, not a crash."""
    run_id = new_run_id("profile")
    started = datetime.now(UTC)
    try:
        progress(f"{cell.scheme}: preparing the artifact")
        artifact = artifact_for(cell)
        engine = get_engine(cell.engine)
        progress(f"{cell.scheme}: serving with {engine.name} and sweeping concurrency")
        bench = benchmark_artifact(
            engine,
            artifact,
            context.plan,
            options=context.serve_options,
            on_level=lambda level: progress(
                f"{cell.scheme}: c={level.concurrency} "
                f"{level.metrics.output_tokens_per_s:.1f} out tok/s, "
                f"TTFT p50 {level.metrics.ttft.p50_ms or 0:.0f} ms"
            ),
        )
        if bench.result.best is None:
            raise ServeError(
                f"no level completed requests within the SLO ({bench.result.stop_reason})"
            )
        quality = quality_for(cell, artifact) if quality_for else None
    except (QuantplanError, OSError) as error:
        record(
            failed_report(
                run_id=run_id,
                started_at=started,
                hardware=context.hardware,
                error=error,
                tool_versions=context.tool_versions,
            )
        )
        message = getattr(error, "message", str(error))
        return (
            ProfileRow(
                scheme=cell.scheme,
                engine=cell.engine,
                status="failed",
                run_id=run_id,
                error_kind=error_kind_of(error),
                # The headline and the engine's last words (e.g. the exception it died of).
                error=" ".join(dict.fromkeys([lines[0], lines[-1]]))[:300]
                if (lines := message.splitlines())
                else type(error).__name__,
            ),
            None,
        )
    best = bench.result.best
    m = best.metrics
    cost = (
        cost_figures(
            context.price_per_hour,
            m.output_tokens_per_s,
            m.total_tokens_per_s,
            context.price_source,
        )
        if context.price_per_hour is not None
        else None
    )
    shape = context.shape
    mean_context = best.workload.input_tokens + best.workload.output_tokens / 2
    roofline = roofline_figures(
        output_tokens_per_s=m.output_tokens_per_s,
        concurrency=best.concurrency or 1,
        weight_bytes=bench.artifact.size_bytes,
        kv_bytes_per_token=mean_context
        * kv_bytes_per_position(shape.layers, shape.kv_heads, shape.head_dim, 2),
        peak_bandwidth_gbps=context.bandwidth_gbps,
        peak_bandwidth_source=context.bandwidth_source,
    )
    record(
        profile_report(
            run_id=run_id,
            started_at=started,
            model=shape.name,
            scheme=cell.scheme,
            engine=cell.engine,
            hardware=context.hardware,
            hardware_record=context.hardware_record,
            sweep=bench.result,
            tool_versions={
                **context.tool_versions,
                **({cell.engine: bench.engine_version} if bench.engine_version else {}),
            },
            engine_version=bench.engine_version,
            cost=cost,
            roofline=roofline,
            extra_details={
                "engine_build": bench.engine_build,
                "artifact": str(bench.artifact.path),
                "artifact_bytes": bench.artifact.size_bytes,
                "startup_s": bench.startup_s,
                "quality_delta_pct": quality,
                "single_stream_e2e_p50_ms": single_stream_e2e_ms(bench),
            },
        )
    )
    row = ProfileRow(
        scheme=cell.scheme,
        engine=cell.engine,
        status="succeeded",
        run_id=run_id,
        best_concurrency=best.concurrency,
        output_tokens_per_s=m.output_tokens_per_s,
        total_tokens_per_s=m.total_tokens_per_s,
        ttft_p50_ms=m.ttft.p50_ms,
        ttft_p95_ms=m.ttft.p95_ms,
        itl_p50_ms=m.itl.p50_ms,
        single_stream_e2e_ms=single_stream_e2e_ms(bench),
        quality_delta_pct=quality,
        usd_per_million_output=cost.usd_per_million_output_tokens if cost else None,
        usd_per_million_blended=cost.usd_per_million_tokens_blended if cost else None,
        bandwidth_utilization=roofline.bandwidth_utilization,
        fraction_of_roofline=roofline.fraction_of_roofline,
        peak_memory_gb=best.peak_server_memory_gb,
        artifact_bytes=bench.artifact.size_bytes,
        engine_version=bench.engine_version,
        stop_reason=bench.result.stop_reason,
    )
    return row, bench


def add_latency_reduction(rows: list[ProfileRow], baseline_scheme: str = "bf16") -> None:
    """Fill latency reduction vs the baseline's single-stream latency, on the same machine."""
    baseline = next(
        (r for r in rows if r.scheme == baseline_scheme and r.status == "succeeded"), None
    )
    for row in rows:
        if baseline is not None and row.status == "succeeded":
            row.latency_reduction_pct = latency_reduction_pct(
                baseline.single_stream_e2e_ms, row.single_stream_e2e_ms
            )


def run_profile(
    cells: tuple[MatrixCell, ...] | list[MatrixCell],
    context: ProfileContext,
    *,
    artifact_for: ArtifactFor,
    quality_for: QualityFor | None,
    record: Callable[[MeasurementReport], object],
    progress: Progress,
) -> list[ProfileRow]:
    """Profile every cell in order; one cell's failure never stops the others."""
    rows = [
        profile_cell(
            cell,
            context,
            artifact_for=artifact_for,
            quality_for=quality_for,
            record=record,
            progress=progress,
        )[0]
        for cell in cells
    ]
    add_latency_reduction(rows)
    return rows


def quality_delta_of(table: QualityTable, artifact_id: str) -> float | None:
    """The perplexity delta of ``artifact_id``'s row. A GGUF table also holds its F16
    reference, itself an artifact, so the row is found by id, not as 'the one with an id'."""
    row = next((r for r in table.rows if r.artifact_id == artifact_id), None)
    return row.perplexity_delta_pct if row is not None else None


def default_providers(source: ModelSource) -> tuple[ArtifactFor, QualityFor]:
    """Artifacts from the quantization API and quality from the evaluation API.

    Both are content-addressed and cached by those APIs: a second profile run reuses them. The
    quality delta is the perplexity change on the held-out text, scored by the serving engine:
    vLLM rows against the bf16 base in vLLM, GGUF rows against the F16 GGUF in llama.cpp.
    """
    from quantplan.agent.artifacts import ArtifactManifest, ArtifactStore

    store = ArtifactStore()
    manifests: dict[str, ArtifactManifest] = {}

    def artifact_for(cell: MatrixCell) -> Path:
        if cell.method == "baseline":
            return source.path
        from quantplan.agent.quantize import quantize

        if cell.method == "gguf":
            manifest = quantize(source, "gguf", {"type": cell.gguf_type}, store=store)
        else:
            # Group size left to the quantizer: it picks the largest that divides the model.
            manifest = quantize(source, cell.method, {"scheme": "W4A16"}, store=store)
        manifests[cell.scheme] = manifest
        directory = store.local_dir(manifest)
        return directory / manifest.main_file if manifest.main_file else directory

    def quality_for(cell: MatrixCell, artifact: Path) -> float | None:
        del artifact
        if cell.method == "baseline" or cell.scheme == "gguf-f16":
            return 0.0  # the references the deltas are measured against
        from quantplan.agent.evaluate.api import evaluate

        manifest = manifests[cell.scheme]
        table = evaluate([manifest], model=source, store=store)
        return quality_delta_of(table, manifest.artifact_id)

    return artifact_for, quality_for
