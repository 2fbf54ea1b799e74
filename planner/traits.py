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
        source=f"no method_traits row for {method}: the scheme's bits per weight cover the "
        "whole model, BF16 math",
    )


def engine_traits(snapshot: CatalogSnapshot, engine: str, kind: DeviceKind) -> EngineTraitRecord:
    """The catalog's row for ``engine`` on ``kind``, or the kind's explicit default."""
    row = snapshot.engine_trait_by_key.get((engine, kind))
    return row if row is not None else default_engine_traits(engine, kind)


def method_traits(snapshot: CatalogSnapshot, method: str) -> MethodTraitRecord:
    """The catalog's row for a scheme family, or the explicit default."""
    row = snapshot.method_trait_by_name.get(method)
    return row if row is not None else default_method_traits(method)
