"""The schema revision and seed version this quantplan ships, read without Alembic or SQLAlchemy.

Deciding that a catalog needs no work (no migration, no seed upgrade) must not cost the imports
that doing the work needs: Alembic alone takes longer to import than a plan takes to compute.
So both versions are read from the files that define them -- each migration's ``revision`` and
``down_revision`` lines, and ``SEED_VERSION`` in ``seeding.py`` -- and never restated here.

Anything unexpected in those files (a line in another form, a branch, two heads) gives None,
and the caller asks Alembic or imports the seeding module instead: the cost of a surprise is
speed, never a wrong answer. tests/catalog/test_sqlite_read.py checks both against the real
thing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).parent
VERSIONS_DIR = _PACKAGE / "migrations" / "versions"
SEEDING_MODULE = _PACKAGE / "seeding.py"

_QUOTED = r"""(?:'([^'\n]+)'|"([^"\n]+)"|None)"""
_REVISION = re.compile(rf"^revision(?:\s*:[^=\n]*)?\s*=\s*{_QUOTED}\s*$", re.MULTILINE)
_DOWN_REVISION = re.compile(rf"^down_revision(?:\s*:[^=\n]*)?\s*=\s*{_QUOTED}\s*$", re.MULTILINE)
_SEED_VERSION = re.compile(r"^SEED_VERSION(?:\s*:\s*int)?\s*=\s*(\d+)\s*$", re.MULTILINE)


def _one(pattern: re.Pattern[str], text: str) -> tuple[bool, str | None]:
    """(found exactly once, the quoted value or None) of an assignment line."""
    matches = pattern.findall(text)
    if len(matches) != 1:
        return False, None
    single, double = matches[0]
    return True, single or double or None


@lru_cache(maxsize=1)
def revision_graph() -> dict[str, str | None] | None:
    """Each migration's revision and the one it revises, or None if any file is unusual."""
    graph: dict[str, str | None] = {}
    try:
        files = sorted(VERSIONS_DIR.glob("*.py"))
        for path in files:
            if path.name == "__init__.py":
                continue
            text = path.read_text(encoding="utf-8")
            found, revision = _one(_REVISION, text)
            found_down, down = _one(_DOWN_REVISION, text)
            if not (found and found_down) or revision is None or revision in graph:
                return None
            graph[revision] = down
    except OSError:
        return None
    return graph or None


def schema_head() -> str | None:
    """The newest schema revision, or None when the migrations do not form one plain line."""
    graph = revision_graph()
    if graph is None:
        return None
    heads = set(graph) - {down for down in graph.values() if down is not None}
    roots = [revision for revision, down in graph.items() if down is None]
    if len(heads) != 1 or len(roots) != 1 or any(d not in graph for d in graph.values() if d):
        return None
    return heads.pop()


@lru_cache(maxsize=1)
def seed_version() -> int | None:
    """``SEED_VERSION`` of the seeding module, or None when its line is not found as expected."""
    try:
        matches = _SEED_VERSION.findall(SEEDING_MODULE.read_text(encoding="utf-8"))
    except OSError:
        return None
    return int(matches[0]) if len(matches) == 1 else None
