"""Benchmark outcomes as catalog reports: measured profiles, or failed runs with no numbers.

Everything goes through ``quantplan.catalog.reports`` (idempotent on run id). A succeeded run
carries one profile row for the best SLO-meeting level, with every level's figures, the cost
and roofline figures and the provenance in ``details``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from quantplan.agent.benchmark.protocol import RunResult, SweepResult
from quantplan.agent.costs import CostFigures, RooflineFigures
from quantplan.agent.serve.errors import ServeError
from quantplan.agent.serve.host import HostHardware
from quantplan.catalog.records import HardwareRecord, ProfileRecord
from quantplan.catalog.reports import MeasurementReport, RunInfo
from quantplan.catalog.vocabulary import QUANTPLAN_BENCH_SOURCE


def new_run_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:16]}"


def host_hardware_name(hardware: HostHardware) -> str:
    """A stable catalog name for this machine, e.g. ``local-Intel-Xeon-Processor-2vCPU``."""
    if hardware.device_kind == "gpu" and hardware.gpu_name:
        return re.sub(r"[^A-Za-z0-9]+", "-", hardware.gpu_name).strip("-")
    model = re.sub(r"\(R\)|\(TM\)|CPU|@.*", "", hardware.cpu_model)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-") or "cpu"
    return f"local-{slug}-{hardware.logical_cpus}vCPU"


CATALOG_ISA = {"avx512f": "avx512", "amx_bf16": "amx"}
"""/proc/cpuinfo flags under the names the catalog's hardware rows use for them."""


def cpu_vendor(hardware: HostHardware) -> str:
    """``intel``, ``amd`` or the model name's first word, lower case (the catalog's vendors)."""
    model = hardware.cpu_model.lower()
    for vendor in ("intel", "amd"):
        if vendor in model:
            return vendor
    return re.sub(r"[^a-z0-9]+", "", model.split()[0]) if model.split() else "unknown"


def recognized_cpu_family(
    hardware: HostHardware, families: Iterable[HardwareRecord]
) -> HardwareRecord | None:
    """The catalog CPU family this host belongs to: of its vendor, the one whose ISA flags this
    host has with the most of them (None when none fits, or two fit equally).

    Cloud VMs often hide the model name (this machine's says "Intel(R) Xeon(R) Processor"), but
    the flags tell the generation: AMX and AVX-512 BF16 on an Intel host is Sapphire Rapids or
    its refresh. Filed under the family, a host's profiles are evidence for the catalog
    instances of that family -- the same setting where the vCPUs match -- instead of a machine
    no plan can choose."""
    if hardware.device_kind != "cpu":
        return None
    flags = set(hardware.cpu_flags) | {
        name for flag, name in CATALOG_ISA.items() if flag in hardware.cpu_flags
    }
    vendor = cpu_vendor(hardware)
    fits = [
        (len(isa), family)
        for family in families
        if family.kind == "cpu"
        and family.vendor == vendor
        and (isa := {f for f in family.isa_flags.split(",") if f}) <= flags
    ]
    best = max((width for width, _ in fits), default=None)
    top = [family for width, family in fits if width == best]
    return top[0] if len(top) == 1 else None


def family_vcpus(hardware: HostHardware, family: HardwareRecord) -> int:
    """This host's vCPUs counted as ``family``'s instances count them: its cores times the
    family's threads a core. A VM that shows every vCPU as a core of its own (this machine: 2
    cores of one thread) has the compute and bandwidth of that many whole cores, which the
    family's instances give with 2 vCPUs a core (a c7i.xlarge's 4 vCPUs are 2 cores)."""
    cores = hardware.logical_cpus / hardware.threads_per_core
    return max(1, round(cores * family.threads_per_core))


def host_hardware_record(
    hardware: HostHardware,
    bandwidth_gbps: float,
    families: Iterable[HardwareRecord] | None = None,
) -> HardwareRecord:
    """The catalog row this host's profiles are filed under: its CPU family where the shipped
    hardware rows (or ``families``) name one (:func:`recognized_cpu_family`), else a row of its
    own whose bandwidth is the measured copy bandwidth of all its vCPUs."""
    if families is None:
        from quantplan.catalog.seeding import shipped_hardware

        families = shipped_hardware()
    family = recognized_cpu_family(hardware, families)
    if family is not None:
        return family
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in hardware.cpu_flags]
    return HardwareRecord(
        name=host_hardware_name(hardware),
        kind="cpu",
        vendor=cpu_vendor(hardware),
        memory_bandwidth_gbps=round(bandwidth_gbps, 2),
        isa_flags=",".join(flags),
        # The whole host is one "socket" of its vCPUs: a replica on all of them gets all of
        # the measured bandwidth (with the default 2 threads a core it got half).
        cores_per_socket=hardware.logical_cpus,
        threads_per_core=1,
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
        # Through the engine's HTTP server: the planner keeps served and engine-loop curves
        # apart (planner/batching.py), and a served row read as an engine-loop one is converted
        # by their ratio (7x on one H200 at 64 requests).
        "served": True,
    }
    if cost is not None:
        details["cost"] = cost.model_dump()
    if roofline is not None:
        details["roofline"] = roofline.model_dump()
    hardware_name = hardware_record.name if hardware_record else host_hardware_name(hardware)
    count = hardware.logical_cpus if hardware.device_kind == "cpu" else 1
    if hardware_record is not None and hardware_name != host_hardware_name(hardware):
        count = family_vcpus(hardware, hardware_record)  # filed under its CPU family
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
        source=QUANTPLAN_BENCH_SOURCE,
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
