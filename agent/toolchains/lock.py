"""Regenerate a toolchain's lock file (``requirements/<name>.txt``) from its ``<name>.in``.

Maintainers run ``python -m quantplan.agent.toolchains.lock NAME`` after editing a ``.in`` file.
pip resolves the inputs with ``--dry-run --report`` (nothing is installed) and every resolved
distribution is written pinned, so a toolchain built later gets exactly these versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from quantplan.agent.toolchains.specs import get_spec, requirement_file


def lock_lines_from_report(report: dict) -> list[str]:
    """Pinned ``name==version`` lines from a ``pip install --report`` document, sorted."""
    pins = {
        item["metadata"][
            "name"
        ].lower(): f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in report["install"]
    }
    return [pins[name] for name in sorted(pins)]


def write_lock(
    name: str, *, report_path: Path | None = None, find_links: tuple[Path, ...] = ()
) -> Path:
    """Resolve ``<name>.in`` (or reuse an existing pip report) and write ``<name>.txt``."""
    spec = get_spec(name)
    if report_path is None:
        report_path = Path(tempfile.mkdtemp()) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--quiet", "--report", str(report_path)]
        for link in find_links:
            command += ["--find-links", str(link)]
        command += ["-r", str(requirement_file(f"{name}.in"))]
        subprocess.run(command, check=True)
    lines = lock_lines_from_report(json.loads(report_path.read_text()))
    header = [
        f"# Lock for the {spec.name} toolchain: {spec.summary}.",
        f"# Generated from {spec.name}.in by `python -m quantplan.agent.toolchains.lock "
        f"{spec.name}`; do not edit by hand.",
    ]
    target = requirement_file(f"{name}.txt")
    target.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    return target


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--report", type=Path, default=None, help="Reuse an existing pip report")
    parser.add_argument("--find-links", type=Path, action="append", default=[])
    arguments = parser.parse_args()
    links = tuple(arguments.find_links)
    print(write_lock(arguments.name, report_path=arguments.report, find_links=links))
