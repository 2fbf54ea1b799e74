"""The snapshot of an unchanged SQLite catalog, kept between commands.

Reading the catalog means checking it and validating every row (and, unless the file is current
and clean enough for catalog/sqlite_read.py, importing SQLAlchemy and SQLModel to open it in
full). When nothing changed since the last command read it, the snapshot it read is loaded from
this cache instead, and none of that is done.

"Nothing changed" is decided from file metadata, never guessed:

- the database file and its write-ahead log (every committed write changes one of them: WAL
  mode appends to the log, a checkpoint rewrites the file), by device, inode, size and mtime;
- the catalog package's own files (schema, migrations, seed data), so a new quantplan, or a
  new seed, never reads a snapshot made by the old code.

File times are coarse (a kernel tick): a write in the same tick as the read that made the
snapshot could leave every stamp equal. So a snapshot is cached only when the database had been
still for ``QUIET_S`` before it was read; any later write then carries a later time.

The cache lives in quantplan's private cache directory (mode 0700, files 0600) and holds a
pickle: only this user's own quantplan writes there, as it writes the toolchains it runs.
PostgreSQL catalogs, in-memory SQLite and URLs with options are always read afresh.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from pathlib import Path
from typing import TYPE_CHECKING

from quantplan.paths import cache_dir, data_dir

if TYPE_CHECKING:
    from quantplan.catalog.snapshot import CatalogSnapshot

QUIET_S = 2.0
"""How long the database must have been unchanged for its snapshot to be cached."""
KEEP = 16
"""Snapshots kept, newest first (one per catalog file; test suites make many catalogs)."""
FORMAT = 1
_PACKAGE = Path(__file__).parent

Stamp = tuple[object, ...]


def sqlite_path(url: str | None) -> Path | None:
    """The database file a catalog URL names, when it is a plain SQLite file; else None."""
    chosen = url or os.environ.get("QUANTPLAN_DB")
    if not chosen:
        return data_dir() / "catalog.db"
    prefix = "sqlite:///"
    if not chosen.startswith(prefix):
        return None
    path = chosen[len(prefix) :]
    # Options, percent-encoding or no path (memory) mean SQLAlchemy must read the URL.
    if not path or any(c in path for c in "?%#") or path == ":memory:":
        return None
    return Path(path).absolute()


def _file_stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _code_stamp() -> str:
    """The catalog package's files (code, migrations, seed data) by name, size and mtime."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".yaml", ".csv", ".json")):
                info = os.stat(os.path.join(root, name))
                digest.update(f"{root}/{name}:{info.st_size}:{info.st_mtime_ns};".encode())
    return digest.hexdigest()


def _stamp(database: Path) -> Stamp | None:
    main = _file_stamp(database)
    if main is None:
        return None
    wal = _file_stamp(database.with_name(database.name + "-wal"))
    # Every reader creates an empty log and the last one to close deletes it: an empty log
    # holds no data, so its coming and going is no change.
    if wal is not None and wal[2] == 0:
        wal = None
    return (FORMAT, str(database), main, wal, _code_stamp())


def _cache_file(database: Path) -> Path:
    key = hashlib.sha256(str(database).encode()).hexdigest()[:24]
    return cache_dir() / "snapshots" / f"{key}.pickle"


def _database_and_stamp(url: str | None) -> tuple[Path, Stamp] | None:
    database = sqlite_path(url)
    stamp = _stamp(database) if database is not None else None
    return (database, stamp) if database is not None and stamp is not None else None


def load(url: str | None) -> tuple[CatalogSnapshot, str | None] | None:
    """The cached (snapshot, schema revision) of the catalog at ``url``, if it is unchanged."""
    found = _database_and_stamp(url)
    if found is None:
        return None
    database, stamp = found
    try:
        with _cache_file(database).open("rb") as handle:
            stored_stamp, revision, snapshot = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
        return None  # absent, half-written by a crash, or made by other code: read afresh
    if stored_stamp != stamp:
        return None
    if snapshot.skipped:  # said again, as reading the catalog would (rare: imports SQLAlchemy)
        from quantplan.catalog.reading import warn_skipped

        warn_skipped(snapshot.skipped)
    return snapshot, revision


def stamp_before_reading(url: str | None) -> Stamp | None:
    """The stamp to store with a snapshot about to be read, or None when it may not be
    cached (not a plain SQLite file, or written less than ``QUIET_S`` ago)."""
    found = _database_and_stamp(url)
    if found is None:
        return None
    stamp = found[1]
    newest = max(s[3] for s in stamp[2:4] if isinstance(s, tuple))
    if time.time_ns() - newest < QUIET_S * 1e9:
        return None
    return stamp


def store(
    url: str | None, stamp: Stamp | None, snapshot: CatalogSnapshot, revision: str | None
) -> None:
    """Keep ``snapshot`` for the next command, if the catalog still has ``stamp`` (taken before
    the snapshot was read: a write while reading leaves the two stamps different)."""
    database = sqlite_path(url)
    if stamp is None or database is None or _stamp(database) != stamp:
        return
    target = _cache_file(database)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            pickle.dump((stamp, revision, snapshot), handle, protocol=pickle.HIGHEST_PROTOCOL)
        staging.replace(target)  # whole or not at all, for a reader in another process
        kept = sorted(
            target.parent.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True
        )
        for old in kept[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return  # a read-only or full cache directory only costs the next command its speed-up
