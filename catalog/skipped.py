"""A stored row that a read left out, and why (see :mod:`quantplan.catalog.reading`).

Its own module because both the session-free snapshot (what the planner reads) and the database
reader that fills it name it, and the snapshot must not import the reader.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SkippedRow(BaseModel):
    """A stored row left out of a read because it does not validate, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(description="The catalog kind, as --kind spells it (e.g. quality)")
    table: str = Field(description="The database table (e.g. quality_result)")
    row_id: int | str | None = Field(description="The row's id in that table (a run's is text)")
    label: str | None = Field(default=None, description="Its natural key, where it has one")
    field: str = Field(description="The first field that failed, or (row)")
    reason: str = Field(description="Why it failed")
    retraction: str | None = Field(
        default=None, description="Who retracted it, when and why, if it was retracted"
    )
    cascaded: bool = Field(
        default=False, description="Skipped only because a row it refers to was skipped"
    )

    def describe(self) -> str:
        named = f" ({self.label})" if self.label else ""
        return f"{self.table} id {self.row_id}{named}: {self.field}: {self.reason}"
