"""How a stored row refers to another: shared by the store (SQLModel) and the light SQLite reader,
which must not import the store (it exists to avoid SQLAlchemy's import cost)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """A column holding another row's id, and the record field that names that row instead."""

    column: str
    kind: str
    field: str
