"""Opening the catalog database: URL resolution, migrations, first-use seeding.

SQLite in the user data directory by default; any SQLAlchemy URL through ``--db`` or
``QUANTPLAN_DB`` (PostgreSQL included). The schema is always brought to the newest Alembic
revision before use, and an empty catalog is seeded from the data shipped in the package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlmodel import Session, create_engine, select

from quantplan.errors import QuantplanError
from quantplan.paths import default_database_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def resolve_database_url(url: str | None = None) -> str:
    """The URL to use: the explicit one, else ``QUANTPLAN_DB``, else the embedded SQLite file."""
    chosen = url or os.environ.get("QUANTPLAN_DB") or default_database_url()
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def _enable_sqlite_foreign_keys(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def make_engine(url: str | None = None) -> Engine:
    """A SQLAlchemy engine for the catalog (no schema work; see :func:`open_catalog`)."""
    resolved = resolve_database_url(url)
    try:
        if resolved.startswith("sqlite"):
            path = resolved.removeprefix("sqlite:///")
            if path and path != resolved and not path.startswith(":memory:"):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(resolved, connect_args={"check_same_thread": False})
            _enable_sqlite_foreign_keys(engine)
        else:
            engine = create_engine(resolved, pool_pre_ping=True)
    except (ArgumentError, ImportError) as error:
        raise QuantplanError(
            f"cannot use database URL {resolved!r}: {error}",
            hint="use a SQLAlchemy URL such as sqlite:///catalog.db or "
            "postgresql://user:password@host/dbname",
        ) from error
    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def prepare(engine: Engine, *, seed: bool = True) -> None:
    """Migrate to head and, if the catalog holds no reference data yet, seed it."""
    try:
        if current_revision(engine) != head_revision():
            upgrade(engine)
    except OperationalError as error:
        raise QuantplanError(
            f"cannot open the catalog database at {engine.url!r}: {error.orig}",
            hint="check that the server is running and the URL (--db / QUANTPLAN_DB) is right",
        ) from error
    except DatabaseError as error:
        raise QuantplanError(
            f"{engine.url!r} is not a usable catalog database: {error.orig}",
            hint="point --db / QUANTPLAN_DB at a quantplan catalog, or at a new file to create one",
        ) from error
    if seed:
        from quantplan.catalog.models import Hardware
        from quantplan.catalog.seeding import seed_catalog

        with Session(engine) as session:
            empty = session.exec(select(Hardware.id).limit(1)).first() is None
        if empty:
            seed_catalog(engine)


@lru_cache(maxsize=8)
def _prepared_engine(url: str, seed: bool) -> Engine:
    engine = make_engine(url)
    prepare(engine, seed=seed)
    return engine


def open_catalog(url: str | None = None, *, seed: bool = True) -> Engine:
    """An engine on a migrated (and, by default, seeded) catalog; cached per URL."""
    return _prepared_engine(resolve_database_url(url), seed)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back everything on any error."""
    with Session(engine) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
