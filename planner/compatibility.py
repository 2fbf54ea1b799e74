"""Can this engine run this scheme on this hardware? Answered up front, with the reason.

The catalog's support matrix has one row per (engine, family, device kind, bits) that works,
with the minimum CUDA compute capability (GPUs) or the CPU ISA flags it needs. No row means the
combination is unsupported. A row with ``bits = 0`` covers every bit width.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from quantplan.catalog.records import EngineSupportRecord, HardwareRecord, SchemeRecord


@dataclass(frozen=True)
class SupportVerdict:
    """The answer for one (engine, scheme, hardware): ok, and why (not)."""

    ok: bool
    reason: str
    kernel: str | None = None


class SupportMatrix:
    """Lookup over the catalog's support rows; immutable once built."""

    def __init__(self, rows: Iterable[EngineSupportRecord]) -> None:
        table: dict[tuple[str, str, str, int], EngineSupportRecord] = {}
        for row in rows:
            table[(row.engine, row.family, row.device_kind, row.bits)] = row
        self._rows = table

    def row_for(
        self, engine: str, family: str, device_kind: str, bits: int
    ) -> EngineSupportRecord | None:
        exact = self._rows.get((engine, family, device_kind, bits))
        return exact if exact is not None else self._rows.get((engine, family, device_kind, 0))

    def check(self, engine: str, scheme: SchemeRecord, hardware: HardwareRecord) -> SupportVerdict:
        """Whether ``engine`` runs ``scheme`` on ``hardware``, with the reason."""
        engines = {name.strip() for name in scheme.engines.split(",")}
        if engine not in engines:
            return SupportVerdict(False, f"{scheme.name} is not served by {engine}")
        row = self.row_for(engine, scheme.family, hardware.kind, scheme.bits)
        if row is None:
            return SupportVerdict(
                False,
                f"{engine} has no {scheme.bits}-bit {scheme.family} kernel for {hardware.kind}s",
            )
        if hardware.kind == "gpu" and row.min_compute_capability is not None:
            capability = float(hardware.compute_capability or 0.0)
            if capability + 1e-9 < row.min_compute_capability:
                # The row's note says what happens instead (FP8 on Ampere: weight-only Marlin).
                why = f" ({row.note})" if row.note else ""
                return SupportVerdict(
                    False,
                    f"{row.kernel} needs compute capability >= {row.min_compute_capability:g}; "
                    f"{hardware.name} has {hardware.compute_capability}{why}",
                )
        if hardware.kind == "cpu" and row.required_isa:
            have = {flag.strip() for flag in hardware.isa_flags.split(",") if flag.strip()}
            missing = [
                flag.strip()
                for flag in row.required_isa.split(",")
                if flag.strip() and flag.strip() not in have
            ]
            if missing:
                return SupportVerdict(
                    False, f"{row.kernel} needs {', '.join(missing)}; {hardware.name} lacks it"
                )
        return SupportVerdict(True, f"runs with {row.kernel}", row.kernel)
