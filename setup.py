"""Package discovery for the flat layout.

The repository keeps catalog/, planner/, agent/ and tui/ at the top level, as the project asks,
but installs them under one import namespace (``quantplan.catalog``, ...) so that nothing clashes
with the unrelated PyPI distributions named ``planner``, ``agent`` or ``tui``.
"""

from pathlib import Path

from setuptools import setup

FOLDER_OF = {
    "quantplan": "quantplan",
    "quantplan.catalog": "catalog",
    "quantplan.planner": "planner",
    "quantplan.agent": "agent",
    "quantplan.tui": "tui",
}
DATA_PATTERNS = [
    "*.yaml",
    "*.yml",
    "*.json",
    "*.txt",
    "*.mako",
    "*.ini",
    "*.tcss",
    "*.html",
    "*.in",
]


def discover_packages() -> list[str]:
    packages = []
    for name, folder in FOLDER_OF.items():
        root = Path(folder)
        for init in sorted(root.rglob("__init__.py")):
            relative = init.parent.relative_to(root)
            packages.append(".".join([name, *relative.parts]) if relative.parts else name)
    return packages


setup(
    packages=discover_packages(),
    package_dir=FOLDER_OF,
    package_data={"": DATA_PATTERNS},
)
