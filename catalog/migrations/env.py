"""Alembic environment for the catalog: runs migrations on the connection quantplan hands over.

``quantplan.catalog.db.upgrade``/``downgrade`` open that connection inside the one transaction
the whole run uses (SQLite DDL included), so Alembic never begins or commits by itself, and the
URL (with its password) never passes through Alembic's configuration.
"""

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

from quantplan.catalog import models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():  # a no-op inside the caller's transaction
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    # Run by the `alembic` command itself (e.g. autogenerate while developing a migration):
    # the same guarded transaction as quantplan's own runs.
    from quantplan.catalog.db import make_engine, migration_transaction

    with migration_transaction(make_engine(config.get_main_option("sqlalchemy.url"))) as conn:
        run_migrations(conn)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
