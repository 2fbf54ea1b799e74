"""Benchmark outcomes as catalog reports: measured profiles, or failed runs with no numbers.

Everything goes through ``quantplan.catalog.reports`` (idempotent on run id). A succeeded run
carries one profile row for the best SLO-meeting level, with every level's figures, the cost
and roofline figures and the provenance in ``details``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from quantplan.agent.benchmark.protocol import RunResult, SweepResult
from quantplan.agent.costs import CostFigures, RooflineFigures
from quantplan.agent.serve.errors import ServeError
from quantplan.agent.serve.host import HostHardware
from quantplan.catalog.records import HardwareRecord, ProfileRecord
from quantplan.catalog.reports import MeasurementReport, RunInfo

PROFILE_SOURCE = "quantplan bench: closed-loop sweep, streaming /v1/completions"


def new_run_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:16]}"


def host_hardware_name(hardware: HostHardware) -> str:
    """A stable catalog name for this machine, e.g. ``local-Intel-Xeon-Processor-2vCPU``."""
    if hardware.device_kind == "gpu" and hardware.gpu_name:
        return re.sub(r"[^A-Za-z0-9]+", "-", hardware.gpu_name).strip("-")
    model = re.sub(r"\(R\)|\(TM\)|CPU|@.*", "", hardware.cpu_model)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-") or "cpu"
    return f"local-{slug}-{hardware.logical_cpus}vCPU"


def host_hardware_record(hardware: HostHardware, bandwidth_gbps: float) -> HardwareRecord:
    """This host as a catalog hardware row; its bandwidth is the measured copy bandwidth."""
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in hardware.cpu_flags]
    return HardwareRecord(
        name=host_hardware_name(hardware),
        kind="cpu",
        vendor=hardware.cpu_model.split()[0].lower() if hardware.cpu_model else "unknown",
        memory_bandwidth_gbps=round(bandwidth_gbps, 2),
        isa_flags=",".join(flags),
        cores_per_socket=hardware.logical_cpus,
        source=(
            f"measured on this host by quantplan: numpy copy bandwidth; {hardware.logical_cpus} "
            f"vCPUs of {hardware.cpu_model or 'an unknown CPU'}"
        ),
    )


def _level_summary(level: RunResult) -> dict[str, object]:
    m = level.metrics
    return {
        "concurrency": level.concurrency,
        "request_rate": level.request_rate,
        "completed": m.completed,
        "failed": m.failed,
        "output_tokens_per_s": round(m.output_tokens_per_s, 3),
        "ttft_p50_ms": m.ttft.p50_ms,
        "ttft_p95_ms": m.ttft.p95_ms,
        "itl_p50_ms": m.itl.p50_ms,
        "slo_met": m.slo_met,
    }


def profile_report(
    *,
    run_id: str,
    started_at: datetime,
    model: str,
    scheme: str,
    engine: str,
    hardware: HostHardware,
    hardware_record: HardwareRecord | None,
    sweep: SweepResult,
    tool_versions: dict[str, str],
    engine_version: str | None,
    cost: CostFigures | None = None,
    roofline: RooflineFigures | None = None,
    extra_details: dict[str, object] | None = None,
    gpu_hardware: str | None = None,
    gpu_count: int | None = None,
    run_hardware: str | None = None,
) -> MeasurementReport:
    """A succeeded run with one measured profile at the sweep's best level.

    A replica on a cluster's GPUs names them: ``gpu_hardware`` (the catalog's name of its GPU,
    e.g. H200) and ``gpu_count`` file the row under that GPU, ``run_hardware`` describes the
    run's hardware; ``hardware`` is then only the host the engine's process ran on."""
    best = sweep.best
    if best is None:
        raise ValueError("no level completed within the SLO: record a failed run instead")
    m = best.metrics
    details: dict[str, object] = {
        "levels": [_level_summary(level) for level in sweep.levels],
        "stop_reason": sweep.stop_reason,
        "ttft_p99_ms": m.ttft.p99_ms,
        "e2e_p95_ms": m.e2e.p95_ms,
        "tpot_p50_ms": m.tpot.p50_ms,
        "goodput_requests_per_s": m.goodput_requests_per_s,
        "prompt_tokens_measured": m.prompt_tokens,
        **(extra_details or {}),
    }
    if cost is not None:
        details["cost"] = cost.model_dump()
    if roofline is not None:
        details["roofline"] = roofline.model_dump()
    hardware_name = hardware_record.name if hardware_record else host_hardware_name(hardware)
    count = hardware.logical_cpus if hardware.device_kind == "cpu" else 1
    if gpu_hardware is not None:
        hardware_name, count = gpu_hardware, gpu_count or 1
    profile = ProfileRecord(
        model=model,
        scheme=scheme,
        engine=engine,
        hardware=hardware_name,
        hardware_count=count,
        input_tokens=best.workload.input_tokens,
        output_tokens=best.workload.output_tokens,
        concurrency=best.concurrency or 1,
        request_rate=best.request_rate,
        output_tokens_per_s=m.output_tokens_per_s,
        total_tokens_per_s=m.total_tokens_per_s,
        requests_per_s=m.requests_per_s,
        ttft_p50_ms=m.ttft.p50_ms,
        ttft_p95_ms=m.ttft.p95_ms,
        itl_p50_ms=m.itl.p50_ms,
        itl_p95_ms=m.itl.p95_ms,
        e2e_p50_ms=m.e2e.p50_ms,
        peak_memory_gb=best.peak_server_memory_gb,
        error_rate=m.error_rate,
        cost_per_million_tokens=cost.usd_per_million_tokens_blended if cost else None,
        basis="measured",
        source=PROFILE_SOURCE,
        run_id=run_id,
        engine_version=engine_version,
        details=details,
    )
    return MeasurementReport(
        run=RunInfo(
            run_id=run_id,
            kind="benchmark",
            status="succeeded",
            started_at=started_at,
            hardware=run_hardware or hardware.describe(),
            tool_versions=tool_versions,
        ),
        new_hardware=None if gpu_hardware is not None else hardware_record,
        profiles=(profile,),
    )


def error_kind_of(error: BaseException) -> str:
    """The catalog's error kind for a failure: the serving kinds as they are, other errors a
    user can act on (bad model, refused parameters) as bad_input, anything else internal."""
    from quantplan.agent.toolchains import StepError
    from quantplan.errors import QuantplanError

    if isinstance(error, ServeError):
        return error.kind
    if isinstance(error, QuantplanError) and not isinstance(error, StepError):
        return "bad_input"
    return "internal"


def failed_report(
    *,
    run_id: str,
    started_at: datetime,
    hardware: HostHardware,
    error: BaseException,
    tool_versions: dict[str, str] | None = None,
) -> MeasurementReport:
    """A failed run: the error's kind and message, and no measurements at all."""
    kind = error_kind_of(error)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return MeasurementReport(
        run=RunInfo(
            run_id=run_id,
            kind="benchmark",
            status="failed",
            started_at=started_at,
            hardware=hardware.describe(),
            tool_versions=tool_versions or {},
            error_kind=kind,
            error_message=message[:2000],
        )
    )
