"""Fixtures shared by every test package: isolated user directories and catalog databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_copy import copy_catalog
from hypothesis import settings
from hypothesis_budget import PROFILE_VARIABLE
from postgres_databases import drop_database
from sqlalchemy import create_engine, text

from quantplan.catalog.db import resolve_database_url

# "fast" under `make test-fast` (fewer generated examples, see tests/hypothesis_budget.py);
# hypothesis's own defaults otherwise.
settings.load_profile(os.environ.get(PROFILE_VARIABLE) or "default")


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


# Tests with one of these markers may build toolchains and llama-server; the others run under
# `make test-fast` on machines that have built nothing, where a build costs 15-20 minutes
# (`builds` marks the few that start a build which must refuse within seconds).
BUILDING_MARKERS = ("toolchain", "engine", "ray_cluster", "slow", "builds")
BUILD_ENTRY_POINTS = (
    "quantplan.agent.toolchains.build._build",
    "quantplan.agent.toolchains.llama_server._build",
    "quantplan.agent.toolchains.wheels.ensure_wheel",
)


@pytest.fixture(autouse=True)
def builds_only_where_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail a test that would build a toolchain or binary in-process unless it is marked so."""
    if any(request.node.get_closest_marker(name) for name in BUILDING_MARKERS):
        return

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(
            "this test started a toolchain or llama-server build: mark it `toolchain` "
            "(or give the code a built binary) so `make test-fast` never builds"
        )

    for target in BUILD_ENTRY_POINTS:
        monkeypatch.setattr(target, refuse)


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
        drop_database(engine, name)
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(scope="session")
def seeded_catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated, seeded SQLite catalog per session, never written after; tests take copies.

    Migrating and seeding costs about 1.4 s of CPU, copying a few milliseconds, and dozens of
    tests only need "a freshly seeded catalog" rather than the seeding itself (which
    tests/catalog/test_seed_and_schema.py and test_migrations.py still exercise per test).
    """
    from quantplan.catalog.db import make_engine, prepare

    path = tmp_path_factory.mktemp("seeded") / "catalog.db"
    engine = make_engine(f"sqlite:///{path}")
    prepare(engine)
    engine.dispose()  # every connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture
def seeded_catalog_path(tmp_path: Path, seeded_catalog_file: Path) -> Path:
    """A seeded catalog file of this test's own, as `open_catalog` on a new file leaves it."""
    return copy_catalog(seeded_catalog_file, tmp_path / "seeded-catalog.db")


@pytest.fixture
def seeded_sqlite_url(seeded_catalog_path: Path) -> str:
    return f"sqlite:///{seeded_catalog_path}"


@pytest.fixture
def seeded_default_catalog(seeded_catalog_file: Path) -> Path:
    """The user's default catalog (QUANTPLAN_DATA_DIR/catalog.db) already seeded.

    For CLI tests that run the script without --db: each such run would otherwise seed its
    own catalog on first use. Requested after ``isolated_user_dirs`` (autouse) set the dir.
    """
    data = Path(os.environ["QUANTPLAN_DATA_DIR"])
    return copy_catalog(seeded_catalog_file, data / "catalog.db")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on the embedded SQLite catalog and on a real PostgreSQL server."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration]),
    ]
)
def seeded_db_url(request: pytest.FixtureRequest) -> str:
    """``db_url`` for tests that only need a seeded catalog: on SQLite a copy of the session's
    seeded file, on PostgreSQL a fresh database that `open_catalog` seeds as before."""
    name = "seeded_sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)
