"""Where quantplan keeps things on a user's machine.

Data (the SQLite catalog) lives in the user data directory, everything rebuildable (toolchain
environments, model checkpoints, artifacts, built wheels) in the user cache directory. Each can be
pointed elsewhere with an environment variable, e.g. a shared filesystem on a real cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path, user_data_path

APP_NAME = "quantplan"


def data_dir() -> Path:
    """Directory for durable user data (the embedded catalog). ``QUANTPLAN_DATA_DIR`` overrides."""
    override = os.environ.get("QUANTPLAN_DATA_DIR")
    # Absolute, so the catalog URL names the same file whatever directory a command runs in.
    return Path(override).expanduser().absolute() if override else user_data_path(APP_NAME)


def cache_dir() -> Path:
    """Directory for rebuildable caches (toolchains, models, artifacts). ``QUANTPLAN_CACHE_DIR``."""
    override = os.environ.get("QUANTPLAN_CACHE_DIR")
    return Path(override).expanduser().absolute() if override else user_cache_path(APP_NAME)


def default_database_url() -> str:
    """SQLite file in the data directory, used when neither --db nor QUANTPLAN_DB is given."""
    # Built, not formatted: SQLAlchemy percent-decodes the path of a sqlite URL and ends it at
    # a "?", so a directory such as "a%40b" or "what?" must be encoded to name the real file.
    from sqlalchemy import URL

    path = str(data_dir() / "catalog.db")
    return URL.create("sqlite", database=path).render_as_string(hide_password=False)
