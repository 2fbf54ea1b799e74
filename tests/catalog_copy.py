"""Copying a seeded SQLite catalog for a test (see the seeded_* fixtures in tests/conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def copy_catalog(source: Path, target: Path) -> Path:
    """``source`` copied page by page with SQLite's backup API (consistent even in WAL mode)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target
