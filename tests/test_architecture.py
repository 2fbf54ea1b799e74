"""The architecture as a checked contract (``[tool.importlinter]``), the type checker
(``[tool.mypy]``) and ruff (``[tool.ruff]``), all in pyproject.toml, so `make test` (CI) checks
what `make lint` checks.

The first two run as ``make lint`` runs them: in the symlink view that lays the folders out as the
installed ``quantplan`` package (scripts/package_view.py), since neither tool can see setup.py's
folder mapping from the source tree.
"""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MYPY = Path(sys.executable).with_name("mypy")
RUFF = Path(sys.executable).with_name("ruff")
build_view = runpy.run_path(str(ROOT / "scripts" / "package_view.py"))["build_view"]


def lint_imports(view: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        # lint-imports puts its working directory first on sys.path, so `quantplan` is the view.
        cwd=view,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold(tmp_path: Path) -> None:
    result = lint_imports(build_view(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    """The contracts see the real graph: the catalog importing the TUI is caught."""
    view = build_view(tmp_path)
    catalog = view / "quantplan" / "catalog"
    catalog.unlink()  # the symlink; a copy with one bad module replaces it
    shutil.copytree(ROOT / "catalog", catalog, ignore=shutil.ignore_patterns("__pycache__"))
    (catalog / "upward.py").write_text("from quantplan.tui.state import CatalogState\n")

    result = lint_imports(view)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "catalog imports nothing above it BROKEN" in result.stdout
    assert "quantplan.catalog.upward -> quantplan.tui.state" in result.stdout


@pytest.mark.slow  # about 20 s of CPU with a cold cache (CI); seconds once the cache is warm
def test_the_clean_packages_type_check() -> None:
    """mypy over the whole package; [tool.mypy] lists the modules whose errors are not shown yet."""
    # A fixed view (not tmp_path) so mypy's cache in it is reused from run to run.
    view = build_view(ROOT / "build" / "package-view-tests")
    result = subprocess.run(
        [str(MYPY), "--config-file", str(ROOT / "pyproject.toml")],
        cwd=view,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(check: list[str]) -> None:
    result = subprocess.run(
        [str(RUFF), *check, "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
