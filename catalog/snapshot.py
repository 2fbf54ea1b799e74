"""An immutable, session-free view of the catalog: what the planner reads.

The planner never sees a database session. It gets a :class:`CatalogSnapshot` holding the same
frozen records the catalog imports and exports, so tests and benchmarks can build synthetic
catalogs without a database at all.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from quantplan.catalog.records import (
    EngineSupportRecord,
    HardwareRecord,
    InstanceRecord,
    ModelRecord,
    ProfileRecord,
    QualityRecord,
    SchemeRecord,
)

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
    profiles: tuple[ProfileRecord, ...] = ()
    quality: tuple[QualityRecord, ...] = ()

    @cached_property
    def hardware_by_name(self) -> dict[str, HardwareRecord]:
        return {h.name: h for h in self.hardware}

    @cached_property
    def model_by_name(self) -> dict[str, ModelRecord]:
        return {m.name: m for m in self.models}

    @cached_property
    def scheme_by_name(self) -> dict[str, SchemeRecord]:
        return {s.name: s for s in self.schemes}

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


def load_snapshot(engine: Engine) -> CatalogSnapshot:
    """Read the whole catalog once into a frozen snapshot."""
    from quantplan.catalog.store import read_records
    from sqlmodel import Session

    with Session(engine) as session:
        kinds = {kind: tuple(read_records(session, kind)) for kind in CatalogSnapshot.model_fields}
    return CatalogSnapshot(**kinds)
