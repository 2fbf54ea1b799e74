"""An immutable, session-free view of the catalog: what the planner reads.

The planner never sees a database session. It gets a :class:`CatalogSnapshot` holding the same
frozen records the catalog imports and exports, so tests and benchmarks can build synthetic
catalogs without a database at all.

A snapshot loaded from a database holds only rows that validate as records and are not
retracted. A stored row that does not validate (written by an older version, or by hand) is
left out, named in a warning on stderr, and listed in ``skipped``: one bad row must not stop
every plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field

from quantplan.catalog.records import (
    KIND_ORDER,
    EngineSupportRecord,
    EngineTraitRecord,
    HardwareRecord,
    InstanceRecord,
    MethodTraitRecord,
    ModelRecord,
    ProfileRecord,
    QualityRecord,
    SchemeRecord,
    SpotInterruptionRecord,
)
from quantplan.catalog.skipped import SkippedRow
from quantplan.errors import UnknownNameError

if TYPE_CHECKING:
    from sqlalchemy import Engine


class CatalogSnapshot(BaseModel):
    """Every catalog row, frozen. Lookups by name raise UnknownNameError with suggestions."""

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached_property,))

    hardware: tuple[HardwareRecord, ...] = ()
    instances: tuple[InstanceRecord, ...] = ()
    models: tuple[ModelRecord, ...] = ()
    schemes: tuple[SchemeRecord, ...] = ()
    support: tuple[EngineSupportRecord, ...] = ()
    engine_traits: tuple[EngineTraitRecord, ...] = ()
    method_traits: tuple[MethodTraitRecord, ...] = ()
    spot_interruptions: tuple[SpotInterruptionRecord, ...] = ()
    profiles: tuple[ProfileRecord, ...] = ()
    quality: tuple[QualityRecord, ...] = ()
    skipped: tuple[SkippedRow, ...] = Field(
        default=(), description="Stored rows left out because they do not validate"
    )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied; the lookups cached on this snapshot are not carried
        over (they would still describe the rows before the update)."""
        copied = super().model_copy(update=update, deep=deep)
        for name, member in vars(type(self)).items():
            if isinstance(member, cached_property):
                copied.__dict__.pop(name, None)
        return copied

    @cached_property
    def hardware_by_name(self) -> dict[str, HardwareRecord]:
        return {h.name: h for h in self.hardware}

    @cached_property
    def model_by_name(self) -> dict[str, ModelRecord]:
        return {m.name: m for m in self.models}

    @cached_property
    def scheme_by_name(self) -> dict[str, SchemeRecord]:
        return {s.name: s for s in self.schemes}

    @cached_property
    def engine_trait_by_key(self) -> dict[tuple[str, str], EngineTraitRecord]:
        """(engine, device kind) -> its row; the planner gives a missing one its default."""
        return {(t.engine, t.device_kind): t for t in self.engine_traits}

    @cached_property
    def spot_interruption_by_key(self) -> dict[tuple[str, str, str], SpotInterruptionRecord]:
        """(cloud, device kind, instance type or "") -> its row (planner/spot.py)."""
        return {(r.cloud, r.device_kind, r.instance_type): r for r in self.spot_interruptions}

    @cached_property
    def method_trait_by_name(self) -> dict[str, MethodTraitRecord]:
        return {t.method: t for t in self.method_traits}

    def get_hardware(self, name: str) -> HardwareRecord:
        try:
            return self.hardware_by_name[name]
        except KeyError:
            raise UnknownNameError("hardware", name, self.hardware_by_name) from None

    def get_model(self, name: str) -> ModelRecord:
        try:
            return self.model_by_name[name]
        except KeyError:
            raise UnknownNameError("model", name, self.model_by_name) from None

    def get_scheme(self, name: str) -> SchemeRecord:
        try:
            return self.scheme_by_name[name]
        except KeyError:
            raise UnknownNameError("scheme", name, self.scheme_by_name) from None


RECORD_KINDS = KIND_ORDER
"""Every kind a snapshot holds, in the catalog's dependency order."""


def load_snapshot(engine: Engine) -> CatalogSnapshot:
    """Read the whole catalog once into a frozen snapshot, leaving out rows that do not validate
    (each named in a warning) and retracted measurements."""
    from sqlmodel import Session

    from quantplan.catalog.reading import read_catalog

    with Session(engine) as session:
        read = read_catalog(session, RECORD_KINDS)
    kinds = {kind: tuple(read.records(kind)) for kind in RECORD_KINDS}
    return CatalogSnapshot(**kinds, skipped=tuple(read.skipped))
