"""Build a folder of symlinks laid out as the installed ``quantplan`` package, for import-linter
and mypy.

setup.py installs the top-level folders catalog/, planner/, agent/ and tui/ as
``quantplan.catalog``, ... (its ``FOLDER_OF``), through an editable-install import hook. Tools
that find a package by walking its folder (grimp under import-linter, mypy) see only quantplan/
and none of the others, so they would check a graph without the architecture in it. The view
puts each folder where the import name says it lives:

    VIEW/quantplan/__init__.py -> quantplan/__init__.py   (every entry of quantplan/)
    VIEW/quantplan/catalog     -> catalog/                 (every other FOLDER_OF entry)

Run the tools with VIEW as the working directory. Folders are linked whole, so files added
inside them are seen at once; the view is rebuilt on every run so new entries of quantplan/ are
too. Usage: ``python scripts/package_view.py VIEW`` (make lint uses build/package-view).
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "quantplan"


def folder_of(setup_py: Path = ROOT / "setup.py") -> dict[str, str]:
    """setup.py's ``FOLDER_OF`` (import name -> folder), read without running setup()."""
    for node in ast.parse(setup_py.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "FOLDER_OF" for target in node.targets
        ):
            return dict(ast.literal_eval(node.value))
    raise SystemExit(f"{setup_py} has no FOLDER_OF mapping; this script reads the layout from it")


def build_view(view: Path) -> Path:
    """(Re)build ``view/quantplan`` and return ``view``."""
    mapping = folder_of()
    package_dir = view / PACKAGE
    if package_dir.exists():
        shutil.rmtree(package_dir)  # symlinks only: the linked folders are left alone
    package_dir.mkdir(parents=True)
    for entry in sorted((ROOT / mapping[PACKAGE]).iterdir()):
        if entry.name != "__pycache__":
            (package_dir / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        parts = name.split(".")
        if name == PACKAGE:
            continue
        if parts[0] != PACKAGE or len(parts) != 2:
            raise SystemExit(f"setup.py maps {name!r}; this script knows only quantplan.<folder>")
        (package_dir / parts[1]).symlink_to(ROOT / folder, target_is_directory=True)
    return view


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/package_view.py VIEW_DIR")
    build_view(Path(sys.argv[1]))
