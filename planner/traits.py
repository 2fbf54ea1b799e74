"""What the planner assumes of engines and quantization methods: catalog rows, or the default.

The figures are the catalog's ``engine_traits`` rows (per engine and device kind: efficiencies,
runtime overhead, concurrency cap, tensor parallelism, batching) and ``method_traits`` rows (16-bit
embeddings, W8A8 math, a legacy kernel below a compute capability), each with its basis and
source; the shipped ones are ``catalog/seed/engine_traits.yaml`` and ``method_traits.yaml``. The
planner holds no figure of any engine or method. A missing row gets the one fallback below: the
generic default of its device kind (for a method: whole-model bits, BF16 math), marked
``modeled`` with a source that says no row exists.
"""

from __future__ import annotations

from functools import cache

from quantplan.catalog.records import EngineTraitRecord, MethodTraitRecord
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.catalog.vocabulary import DeviceKind

# bandwidth efficiency, compute efficiency, runtime overhead GB, max sequences per device kind
_GENERIC: dict[DeviceKind, tuple[float, float, float, int]] = {
    "gpu": (0.60, 0.40, 1.0, 256),
    "cpu": (0.50, 0.30, 1.0, 256),
}


@cache
def default_engine_traits(engine: str, kind: DeviceKind) -> EngineTraitRecord:
    """The generic ``modeled`` default of ``kind`` for an engine the catalog has no row of."""
    bandwidth, compute, overhead, concurrency = _GENERIC[kind]
    return EngineTraitRecord(
        engine=engine,
        device_kind=kind,
        bandwidth_efficiency=bandwidth,
        compute_efficiency=compute,
        runtime_overhead_gb=overhead,
        max_concurrency=concurrency,
        tensor_parallel=False,
        batching="continuous",
        basis="modeled",
        source=f"no engine_traits row for {engine} on {kind}: the generic {kind.upper()} default",
    )


@cache
def default_method_traits(method: str) -> MethodTraitRecord:
    """The default of a method the catalog has no row of: bits cover the model, BF16 math."""
    return MethodTraitRecord(
        method=method,
        embeddings_in_16_bit=False,
        w8a8=False,
        basis="modeled",
        source=f"no method_traits row for {method}: the default, the scheme's bits per weight "
        "cover the whole model",
    )


def engine_traits(snapshot: CatalogSnapshot, engine: str, kind: DeviceKind) -> EngineTraitRecord:
    """The catalog's row for ``engine`` on ``kind``, or the kind's explicit default."""
    row = snapshot.engine_trait_by_key.get((engine, kind))
    return row if row is not None else default_engine_traits(engine, kind)


def method_traits(snapshot: CatalogSnapshot, method: str) -> MethodTraitRecord:
    """The catalog's row for a scheme family, or the explicit default."""
    row = snapshot.method_trait_by_name.get(method)
    return row if row is not None else default_method_traits(method)


def describe_engine_traits(row: EngineTraitRecord) -> str:
    """One assumption line: what a plan assumed of an engine on a device kind, and why."""
    gpu = row.device_kind == "gpu"
    split = ("tensor parallel" if row.tensor_parallel else "splits layers") if gpu else ""
    kv = ""
    if row.kv_read_efficiency is not None:
        without = row.kv_read_efficiency_without_flash_attention
        plain = f", {without:g} without flash attention" if without is not None else ""
        kv = f" (the KV cache at {row.kv_read_efficiency:g}{plain})"
    return (
        f"engine traits, {row.engine} on {row.device_kind} ({row.basis}): "
        f"{row.bandwidth_efficiency:g} of spec bandwidth{kv}, {row.compute_efficiency:g} of "
        f"spec FLOPS, {row.runtime_overhead_gb:g} GB runtime overhead per "
        f"{'GPU' if gpu else 'host'}, at most {row.max_concurrency} sequences, {row.batching} "
        f"batching{', ' + split if split else ''}; source: {row.source}"
    )


def describe_method_traits(row: MethodTraitRecord) -> str:
    """One assumption line: what a plan assumed of a quantization method, and why."""
    rules = []
    if row.embeddings_in_16_bit:
        rules.append("embeddings and lm_head stay 16-bit")
    if row.w8a8:
        rules.append("W8A8 math on tensor cores")
    below = row.slow_kernel_below_capability
    if below is not None:
        rules.append(f"a slower legacy kernel below compute capability {below:g}")
    said = ", ".join(rules) or "bits per weight cover the whole model, BF16 math"
    return f"method traits, {row.method} ({row.basis}): {said}; source: {row.source}"


def trait_notes(
    snapshot: CatalogSnapshot, settings: list[tuple[str, DeviceKind, str, bool]]
) -> tuple[str, ...]:
    """The trait lines of a plan's deployments, each (engine, device kind, method, split over
    GPU and host) once: the rows the plan's numbers rest on, or the defaults it fell back to."""
    engines: dict[tuple[str, DeviceKind], None] = {}
    methods: dict[str, None] = {}
    for engine, kind, method, offloaded in settings:
        engines[(engine, kind)] = None
        if offloaded:
            engines[(engine, "cpu")] = None
        methods[method] = None
    return tuple(
        describe_engine_traits(engine_traits(snapshot, engine, kind)) for engine, kind in engines
    ) + tuple(describe_method_traits(method_traits(snapshot, method)) for method in methods)
