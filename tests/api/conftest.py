"""A seeded SQLite catalog shared by the API tests (a copy of the session's seeded catalog)."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_copy import copy_catalog


@pytest.fixture(scope="session")
def catalog_url(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> str:
    path = Path(tmp_path_factory.mktemp("api")) / "catalog.db"
    return f"sqlite:///{copy_catalog(seeded_catalog_file, path)}"


TARGETS = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}
