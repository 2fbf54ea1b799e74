"""Command-line options that several commands share, declared once.

A command takes one as a parameter annotation, ``db: DbOption = None``, so its flag, environment
variable and help read the same in every command. This module imports only typer: any command
module, at any layer, may use it without slowing ``quantplan --help``.
"""

from __future__ import annotations

from typing import Annotated

import typer

DB_ENV = "QUANTPLAN_DB"
"""The environment variable that names the catalog when ``--db`` is not given."""

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="Catalog URL, any SQLAlchemy URL (default: SQLite in the user data directory).",
        show_default=False,
    ),
]
"""The catalog to open: ``--db``, else ``QUANTPLAN_DB``, else the user data directory's SQLite
file (``quantplan catalog where`` prints the one in use). ``None`` leaves the choice to
:func:`quantplan.catalog.urls.resolve_database_url`."""
