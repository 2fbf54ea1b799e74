"""Write sessions on the catalog database, and the errors a session can end with.

Kept below :mod:`quantplan.catalog.db` so that the modules that write rows (seeding, transfer,
reports) need nothing from the module that opens, migrates and seeds a catalog; ``db`` imports
this one, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlmodel import Session

from quantplan.errors import QuantplanError

BEGIN_MODE = "quantplan_sqlite_begin"
"""Execution option naming the BEGIN form a SQLite transaction starts with (IMMEDIATE: writers).

The SQLite engine's "begin" hook (:func:`quantplan.catalog.db.make_engine`) reads it."""


class CatalogBusyError(QuantplanError):
    """Another process held the SQLite catalog's write lock for longer than the busy timeout.

    Temporary: retrying later can succeed (the report collector keeps its reports and retries).
    """


class CatalogDamagedError(QuantplanError):
    """The catalog file is not a SQLite database, or its pages are corrupt."""


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A write session: commits on success, rolls back everything on any error.

    On SQLite it takes the write lock as it begins, waiting up to the busy timeout for another
    writer; a deferred transaction that read first could not wait (SQLite refuses at once a
    reader whose snapshot went stale while it waited to write).
    """
    with Session(engine) as session:
        try:
            session.connection(execution_options={BEGIN_MODE: "IMMEDIATE"})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
