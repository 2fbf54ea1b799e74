"""Fixtures for planner tests: the shipped catalog as a snapshot (no database) and helpers."""

from __future__ import annotations

import pytest

from quantplan.catalog.seeding import seed_records
from quantplan.catalog.snapshot import CatalogSnapshot


@pytest.fixture(scope="session")
def shipped() -> CatalogSnapshot:
    """The seed catalog shipped in the package, as the planner sees it."""
    return CatalogSnapshot(**{kind: tuple(records) for kind, records in seed_records()})
