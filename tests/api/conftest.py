"""A seeded SQLite catalog shared by the API tests (seeding takes seconds; do it once)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def catalog_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from quantplan.catalog.db import open_catalog

    url = f"sqlite:///{Path(tmp_path_factory.mktemp('api')) / 'catalog.db'}"
    open_catalog(url)
    return url


TARGETS = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}
