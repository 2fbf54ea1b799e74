"""Fixtures of the CLI fuzz suite: one sandbox (seeded catalog, real plan files) per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fuzz_cases import CommandSpec, command_tree
from fuzz_harness import Sandbox, valid_plans


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(Path(tmp_path_factory.mktemp("fuzz")))


@pytest.fixture(scope="session")
def plans(sandbox: Sandbox) -> list[dict[str, Any]]:
    return valid_plans(sandbox)


@pytest.fixture(scope="session")
def tree() -> list[CommandSpec]:
    return command_tree()
