"""Retractions: how an append-only measurement is taken back without deleting it.

A measurement row (a profile or a quality result) is never edited or deleted. When one turns
out to be wrong (a broken run, a bad import, a value no reader can use) a retraction row says
who took it back, when and why; readers then leave the row out of plans and exports, and the
original stays in the database as evidence.
"""

from __future__ import annotations

import getpass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, select

from quantplan.catalog.models import Profile, QualityResult, Retraction
from quantplan.errors import QuantplanError, did_you_mean

# Kind names as the CLI spells them (--kind), mapped to the tables they live in (by name for
# readers, by class for retract).
RETRACTABLE_TABLES = {"profiles": "profile", "quality": "quality_result"}
_TABLES: dict[str, type[Profile] | type[QualityResult]] = {
    "profiles": Profile,
    "quality": QualityResult,
}


class RetractionInfo(BaseModel):
    """A retraction as readers show it next to the row it retracts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    retracted_by: str
    retracted_at: datetime

    def describe(self) -> str:
        return f"{self.retracted_at:%Y-%m-%d} by {self.retracted_by}: {self.reason}"


def check_retractable(kind: str) -> str:
    if kind not in RETRACTABLE_TABLES:
        raise QuantplanError(
            f"only measurements can be retracted (profiles, quality), not {kind!r}",
            hint=did_you_mean(kind, RETRACTABLE_TABLES)
            or "reference rows are corrected in place: quantplan catalog import FILE --replace",
        )
    return kind


def retractions_of(session: Session, kind: str) -> dict[int, RetractionInfo]:
    """Row id -> retraction, for every retracted row of one measurement kind."""
    rows = session.exec(select(Retraction).where(Retraction.kind == kind)).all()
    return {
        row.row_id: RetractionInfo(
            reason=row.reason, retracted_by=row.retracted_by, retracted_at=row.retracted_at
        )
        for row in rows
    }


def default_retracted_by() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container user without a passwd entry)
        return "unknown"


def retract(
    session: Session, kind: str, row_id: int, reason: str, retracted_by: str | None = None
) -> Retraction:
    """Append a retraction of one measurement row; the row itself is left untouched.

    Retracting a row twice is refused (the first reason stays), as is an id with no row.
    """
    check_retractable(kind)
    if not reason.strip():
        raise QuantplanError("a retraction needs a reason", hint='pass --reason "why"')
    table = _TABLES[kind]
    if session.get(table, row_id) is None:
        raise QuantplanError(
            f"no {kind} row has id {row_id}", hint=_near_ids(session, kind, row_id)
        )
    earlier = retractions_of(session, kind).get(row_id)
    if earlier is not None:
        raise QuantplanError(
            f"{kind} row {row_id} is already retracted ({earlier.describe()})",
            hint="a retraction is final; nothing was changed",
        )
    row = Retraction(
        kind=kind,
        row_id=row_id,
        reason=reason.strip(),
        retracted_by=retracted_by or default_retracted_by(),
    )
    session.add(row)
    session.flush()
    return row


def _near_ids(session: Session, kind: str, row_id: int) -> str:
    """Point at the other measurement kind if it has that id, else at the ids that exist."""
    for other in RETRACTABLE_TABLES:
        if other != kind and session.get(_TABLES[other], row_id) is not None:
            return f"{other} has a row {row_id}: quantplan catalog retract {other} {row_id}"
    ids = session.exec(select(_TABLES[kind].id)).all()
    close = did_you_mean(str(row_id), [str(i) for i in ids])
    listing = f"see the ids with: quantplan catalog list --kind {kind}"
    return f"{close} ({listing})" if close else listing
