"""Dropping a test's PostgreSQL database, also while an autovacuum worker is on it."""

from __future__ import annotations

import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

DROP_ATTEMPTS = 40
DROP_PAUSE_S = 0.25


def drop_database(admin: Engine, name: str) -> None:
    """``DROP DATABASE ... WITH (FORCE)``, retried while it is refused for privileges.

    FORCE ends the other sessions on the database, but a non-superuser may not end an
    autovacuum worker's (PostgreSQL 15: "must be a member of the role whose process is being
    terminated"); that worker is done within moments, so the drop is tried again."""
    for attempt in range(DROP_ATTEMPTS):
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError as error:
            refused = type(error.orig).__name__ == "InsufficientPrivilege"
            if not refused or attempt == DROP_ATTEMPTS - 1:
                raise
            time.sleep(DROP_PAUSE_S)
