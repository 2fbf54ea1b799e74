"""Fixtures of the CLI fuzz suite: one sandbox (seeded catalog, real plan files) per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from catalog_copy import copy_catalog
from fuzz_cases import CommandSpec, command_tree
from fuzz_harness import Sandbox, valid_plans


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> Sandbox:
    """The sandbox's template is a copy of the session's seeded catalog (tests/conftest.py), which
    is what `quantplan catalog where` leaves on a new file; Sandbox would otherwise start the
    script once more to seed its own (about 4 s)."""
    root = Path(tmp_path_factory.mktemp("fuzz"))
    copy_catalog(seeded_catalog_file, root / "template.db")
    return Sandbox(root)


@pytest.fixture(scope="session")
def plans(sandbox: Sandbox) -> list[dict[str, Any]]:
    return valid_plans(sandbox)


@pytest.fixture(scope="session")
def tree() -> list[CommandSpec]:
    return command_tree()
