"""Opening the catalog database: URL resolution, migrations, first-use seeding.

SQLite in the user data directory by default; any SQLAlchemy URL through ``--db`` or
``QUANTPLAN_DB`` (PostgreSQL included). The schema is always brought to the newest Alembic
revision before use, and an empty catalog is seeded from the data shipped in the package.

Alembic and the seeding code are imported only when there is work for them: a SQLite catalog's
revision is read with one query and compared with the head that the migration files declare
(``shipped_versions``), and its seed version with the one ``seeding.py`` declares. Opening a
catalog that is already current costs no Alembic import (PostgreSQL asks Alembic, which knows
its schemas).

Safety rules kept here, so no caller has to know them:

* a URL is shown only through :func:`redact_url` (the password never reaches a message);
* SQLite runs in WAL mode with a busy timeout, so readers are not blocked by a long import and
  a second writer waits for the first; writers take the write lock when they begin
  (``BEGIN IMMEDIATE``), so a writer never fails half-way on a lock it could have waited for;
* each upgrade or downgrade is one transaction (SQLite DDL included), so a failed migration
  leaves the schema as it was;
* a damaged SQLite file, a busy one, and a catalog written by a newer quantplan are
  :class:`~quantplan.errors.QuantplanError` s that name the catalog and what to do.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Connection, Engine, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlmodel import Session, create_engine, select

from quantplan.catalog.models import Hardware

# The errors and session_scope live in sessions (below seeding and transfer, which need them);
# callers have always taken them from db, so db re-exports them.
from quantplan.catalog.sessions import (
    BEGIN_MODE,
    CatalogBusyError,
    CatalogDamagedError,
)
from quantplan.catalog.sessions import session_scope as session_scope
from quantplan.catalog.shipped_versions import revision_graph, schema_head, seed_version
from quantplan.catalog.urls import (
    describe_catalog,
    redact_url,
    resolve_database_url,
    scrub,
)
from quantplan.errors import QuantplanError, shorten

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's write transaction before giving up."""

_MIGRATION_LOCK_KEY = zlib.crc32(b"quantplan catalog migrations")
"""PostgreSQL advisory lock held while migrating, so two first runs do not migrate at once."""

DAMAGED_HINT = (
    "restore it from a backup (or a `quantplan catalog export`), or point --db / QUANTPLAN_DB "
    "at a new file to start a fresh catalog"
)


class CatalogTooNewError(QuantplanError):
    """The catalog's schema revision is one this quantplan does not know (a newer release)."""


def _sqlite_file(engine: Engine) -> str | None:
    """The catalog's file path for a file-backed SQLite engine, else None."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys and transactional DDL on every SQLite connection."""
    timeout_ms = int(SQLITE_BUSY_TIMEOUT_S * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # pysqlite opens transactions itself, only before DML and never before DDL, so a failed
        # migration would leave half a schema. With its own handling off, the "begin" hook below
        # emits every BEGIN, and DDL is inside the transaction like everything else.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL lets readers go on while an import writes; it persists in the file, so this
            # only changes anything the first time a catalog is opened.
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as error:
                # A read-only file (or mount) cannot switch; it still reads in its own mode.
                if getattr(error, "sqlite_errorname", "") != "SQLITE_READONLY":
                    raise
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_MODE, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    @event.listens_for(engine, "handle_error")
    def _explain(context: ExceptionContext) -> None:
        error = _explain_sqlite_error(context.original_exception, engine.url)
        if error is not None:
            raise error from context.original_exception


def _explain_sqlite_error(error: BaseException, url: URL) -> QuantplanError | None:
    """The catalog error a raw SQLite error means, or None for anything else."""
    if not isinstance(error, sqlite3.Error):
        return None
    name = getattr(error, "sqlite_errorname", "")
    text_ = str(error)
    where = describe_catalog(url)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text_:
        return CatalogBusyError(
            f"the {where} is busy: another process kept it locked for writing for more than "
            f"{SQLITE_BUSY_TIMEOUT_S:.0f} s",
            hint="let the other quantplan command (e.g. a `catalog import`) finish, then run "
            "this one again",
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or text_ in (
        "file is not a database",
        "database disk image is malformed",
    ):
        return CatalogDamagedError(
            f"the {where} is not a usable catalog database: {text_}",
            hint=DAMAGED_HINT,
        )
    return None


def make_engine(url: str | None = None) -> Engine:
    """A SQLAlchemy engine for the catalog (no schema work; see :func:`open_catalog`)."""
    resolved = resolve_database_url(url)
    try:
        parsed = make_url(resolved)
        if parsed.get_backend_name() == "sqlite":
            # A plain path gets its directory; a "file:" URI (e.g. ?mode=ro) is SQLite's to open.
            if parsed.database not in (None, "", ":memory:") and "uri" not in parsed.query:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"check_same_thread": False})
            _configure_sqlite(engine)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as error:
        # Neither message may carry the URL as given: it holds the password.
        raise QuantplanError(
            f"cannot use database URL {shorten(redact_url(resolved))}: "
            f"{shorten(scrub(str(error), resolved), 160)}",
            hint="use a SQLAlchemy URL such as sqlite:///catalog.db or "
            "postgresql://user:password@host/dbname",
        ) from None
    return engine


# ------------------------------------------------------------------------------- migrations


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR))


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration; the database travels as a connection, never as a URL option.

    (Alembic's option values go through configparser interpolation, where the ``%`` of a
    percent-encoded password is an error, and its messages would print the password.)
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _sqlite_revisions(connection: Connection) -> list[str]:
    """Every row of SQLite's ``alembic_version`` table (none if it has no such table)."""
    exists = connection.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).scalar_one()
    if not exists:
        return []
    return list(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())


def current_revision(engine: Engine) -> str | None:
    """The catalog's schema revision; None before the first migration."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            revisions = _sqlite_revisions(connection)
            if len(revisions) <= 1:
                return revisions[0] if revisions else None
            # Several rows: branches, which Alembic reports in its own words (below).
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return schema_head() or _script().get_current_head()


def known_revisions() -> set[str]:
    graph = revision_graph() if schema_head() is not None else None
    if graph is not None:
        return set(graph)
    return {script.revision for script in _script().walk_revisions()}


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside the one transaction a whole upgrade or downgrade runs in.

    On SQLite, batch migrations rebuild tables (copy, drop, rename); with foreign keys enforced,
    dropping a table that seeded rows point at fails. So enforcement is off for the migration
    (SQLite ignores the pragma inside a transaction: it is set before BEGIN) and
    ``PRAGMA foreign_key_check`` must pass before the commit, which is SQLite's own recipe for
    schema changes. The write lock is taken at BEGIN, so a concurrent migration waits.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # On the raw DBAPI connection: the pragma is a no-op inside a transaction, and any
            # statement through SQLAlchemy would begin one. ignore: SQLAlchemy types the DBAPI
            # connection Optional (None once invalidated); a connection just checked out has one.
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            connection.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        tables = sorted({row[0] for row in broken})
                        raise QuantplanError(
                            f"the migration would leave {len(broken)} rows pointing at rows "
                            f"that no longer exist (in {', '.join(tables)}); nothing was changed",
                            hint="this is a bug in the migration; please report it",
                        )
        finally:
            if sqlite:
                try:
                    # ignore: as for foreign_keys=OFF above.
                    connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
                except sqlite3.Error:
                    connection.invalidate()  # never hand a connection without FKs back to the pool


def _migrate(engine: Engine, run: Callable[[Config], None]) -> None:
    with migration_transaction(engine) as connection:
        run(alembic_config(connection))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction (idempotent)."""
    from alembic import command

    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"``: an empty database) in one transaction."""
    from alembic import command

    _migrate(engine, lambda config: command.downgrade(config, revision))


# ------------------------------------------------------------------------------ opening


def check_sqlite_integrity(engine: Engine) -> None:
    """Refuse a damaged SQLite file now, rather than in the middle of a later command.

    ``PRAGMA quick_check`` walks every page (not the index contents, which is what makes it
    quick): on the shipped catalog it takes a few milliseconds.
    """
    if _sqlite_file(engine) is None:
        return
    with engine.connect() as connection:
        problems = connection.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        first = " ".join(str(problems[0]).replace("*** in database main ***", "").split())
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CatalogDamagedError(
            f"the {describe_catalog(engine.url)} is damaged, not a usable catalog database: "
            f"{first}{more}",
            hint=DAMAGED_HINT,
        )


def check_revision(engine: Engine) -> str | None:
    """The catalog's schema revision, refused when this quantplan does not know it."""
    from quantplan import __version__

    current = current_revision(engine)
    if current is not None and current not in known_revisions():
        raise CatalogTooNewError(
            f"the {describe_catalog(engine.url)} has schema revision {current}, which quantplan "
            f"{__version__} does not know: a newer quantplan wrote it",
            hint="upgrade quantplan to the release that wrote this catalog, or point --db / "
            "QUANTPLAN_DB at another catalog",
        )
    return current


def prepare(engine: Engine, *, seed: bool = True) -> None:
    """Check the catalog, migrate it to head, and seed it (empty) or add newer seed rows."""
    try:
        check_sqlite_integrity(engine)
        if check_revision(engine) != head_revision():
            upgrade(engine)
        if seed:
            with Session(engine) as session:
                empty = session.exec(select(Hardware.id).limit(1)).first() is None
            if empty:
                from quantplan.catalog.seeding import seed_catalog

                seed_catalog(engine)
            elif not _seed_is_current(engine):
                from quantplan.catalog.seeding import upgrade_seed

                upgrade_seed(engine)  # a catalog seeded by an older quantplan gets the new rows
    except OperationalError as error:
        raise QuantplanError(
            f"cannot open the {describe_catalog(engine.url)}: {scrub(str(error.orig), engine.url)}",
            hint="check that the server is running and the URL (--db / QUANTPLAN_DB) is right",
        ) from None
    except DatabaseError as error:
        raise QuantplanError(
            f"the {describe_catalog(engine.url)} is not a usable catalog database: "
            f"{scrub(str(error.orig), engine.url)}",
            hint="point --db / QUANTPLAN_DB at a quantplan catalog, or at a new file to create one",
        ) from None


def _seed_is_current(engine: Engine) -> bool:
    """Whether the catalog has the shipped seed version (False when that cannot be read without
    importing the seeding module: then ``upgrade_seed`` decides, as it always may)."""
    shipped = seed_version()
    if shipped is None:
        return False
    with engine.connect() as connection:
        newest = connection.exec_driver_sql("SELECT max(version) FROM seed_state").scalar()
    return isinstance(newest, int) and newest >= shipped


@lru_cache(maxsize=8)
def _prepared_engine(url: str, seed: bool) -> Engine:
    engine = make_engine(url)
    prepare(engine, seed=seed)
    return engine


def open_catalog(url: str | None = None, *, seed: bool = True) -> Engine:
    """An engine on a checked, migrated (and, by default, seeded) catalog; cached per URL."""
    return _prepared_engine(resolve_database_url(url), seed)
