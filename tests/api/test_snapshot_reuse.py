"""A server reading its catalog afresh keeps the snapshot object while the rows are unchanged,
so that what the planner keeps per snapshot (candidate spaces, operating points) stays warm."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from catalog_copy import copy_catalog

from quantplan.services import CatalogService, Services


def test_an_unchanged_catalog_keeps_its_snapshot(tmp_path: Path, seeded_catalog_file: Path) -> None:
    path = copy_catalog(seeded_catalog_file, tmp_path / "catalog.db")
    service = CatalogService(f"sqlite:///{path}", max_age_s=0.0)  # read afresh every time
    first, revision = service.snapshot_and_revision()
    assert service.snapshot_and_revision() == (first, revision)
    assert service.load() is first
    with sqlite3.connect(path) as db:
        db.execute("UPDATE instance_type SET price_per_hour = price_per_hour * 2")
    db.close()
    changed = service.load()
    assert changed is not first and changed != first
    assert service.load() is changed


def test_plans_follow_a_changed_catalog(tmp_path: Path, seeded_catalog_file: Path) -> None:
    path = copy_catalog(seeded_catalog_file, tmp_path / "catalog.db")
    services = Services(catalog=CatalogService(f"sqlite:///{path}", max_age_s=0.0))
    targets = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}
    before = services.plan(targets)
    assert services.plan(targets) == before
    with sqlite3.connect(path) as db:
        db.execute("UPDATE instance_type SET price_per_hour = price_per_hour * 2")
    db.close()
    after = services.plan(targets)
    assert after.fleet_usd_per_month == pytest.approx(2 * before.fleet_usd_per_month, rel=1e-6)
    assert after.provenance.catalog_fingerprint != before.provenance.catalog_fingerprint
