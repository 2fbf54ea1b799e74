"""Fixtures shared by every test package: isolated user directories and catalog databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from quantplan.catalog.db import resolve_database_url
from sqlalchemy import create_engine, text


@pytest.fixture(autouse=True)
def isolated_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test's catalog out of the real user data directory.

    The cache directory is shared across the session (toolchains and model artifacts are slow
    to build) unless QUANTPLAN_CACHE_DIR is already set by the caller.
    """
    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.delenv("QUANTPLAN_DB", raising=False)


def postgres_admin_url() -> str | None:
    """The PostgreSQL URL that `make test` exports (scripts/postgres-up), if any."""
    return os.environ.get("QUANTPLAN_TEST_POSTGRES_URL")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real server, dropped afterwards."""
    admin = postgres_admin_url()
    if admin is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: QUANTPLAN_TEST_POSTGRES_URL is unset")
        pytest.skip("no PostgreSQL server (run through `make test`, which starts one)")
    admin = resolve_database_url(admin)
    name = f"qp_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from quantplan.catalog.db import _prepared_engine

        _prepared_engine.cache_clear()
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on the embedded SQLite catalog and on a real PostgreSQL server."""
    return request.getfixturevalue(f"{request.param}_url")
