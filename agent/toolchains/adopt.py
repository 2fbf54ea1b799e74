"""Adopt an environment that is already on the host as a toolchain, instead of building one.

GPU hosts are often offline images with their framework stack preinstalled (a CUDA PyTorch
image, a vendor's container): the pinned CUDA lock cannot be installed there, but an
environment that imports the toolchain's modules can run its steps. ``quantplan toolchain adopt
NAME --python PATH`` checks that interpreter (the toolchain's smoke imports), records the
versions it really has, and registers it where the built toolchain would live. Nothing is copied
or installed.

What an adopted toolchain changes, so that nothing claims the lock ran:

* its key hashes the lock's key with the adopted interpreter and its versions, so artifacts made
  with it get their own content address and never mix with artifacts of the locked build;
* its manifest says ``adopted`` and lists where its versions differ from the lock's pins, and
  ``toolchain list`` / ``doctor`` show both;
* artifacts record the versions that ran (``tool_versions``), as for a built toolchain.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from quantplan.agent.toolchains.build import (
    MANIFEST_NAME,
    Toolchain,
    base_python,
    find_toolchain,
    installed_versions,
    python_version_of,
    toolchain_dir,
)
from quantplan.agent.toolchains.specs import ToolchainSpec, get_spec
from quantplan.errors import QuantplanError

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(spec: ToolchainSpec) -> dict[str, str]:
    """``distribution -> version`` of the lock's plain pins (canonical names)."""
    pins: dict[str, str] = {}
    for line in spec.lock_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_canonical(match.group(1))] = match.group(2)
    return pins


def lock_differences(spec: ToolchainSpec, versions: dict[str, str]) -> tuple[str, ...]:
    """Where the adopted versions differ from the lock: ``"torch 2.11.0+cu130 (lock 2.14.0)"``."""
    pins = lock_pins(spec)
    differences = []
    for name in spec.version_of:
        pinned = pins.get(_canonical(name))
        have = versions.get(name)
        if have is None:
            differences.append(f"{name} not installed (lock {pinned or 'unpinned'})")
        elif pinned is not None and have != pinned:
            differences.append(f"{name} {have} (lock {pinned})")
    return tuple(differences)


def adopted_key(spec: ToolchainSpec, interpreter: Path, versions: dict[str, str]) -> str:
    payload = {
        "lock_key": spec.content_key(python_version_of(base_python())),
        "interpreter": str(interpreter),
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def adopt_toolchain(name: str, python: Path) -> Toolchain:
    """Register ``python``'s environment as toolchain ``name`` after checking its imports.

    Refused, with nothing written, when the interpreter does not run, a smoke import fails, or a
    toolchain built from the lock is already installed under that name.
    """
    spec = get_spec(name)
    interpreter = python.expanduser().absolute()
    if not interpreter.is_file():
        raise QuantplanError(
            f"no interpreter at {interpreter}",
            hint="give --python the environment's python executable, e.g. /opt/venv/bin/python",
        )
    existing = find_toolchain(spec.name)
    if existing is not None and not existing.adopted:
        raise QuantplanError(
            f"toolchain {spec.name} is already built from its lock at {existing.root}",
            hint="the built environment is used as it is; delete that folder first to adopt "
            "another one instead",
        )
    smoke = "; ".join(f"import {module}" for module in spec.smoke_imports)
    try:
        result = subprocess.run(
            [str(interpreter), "-c", smoke], capture_output=True, text=True, timeout=600
        )
    except OSError as error:
        raise QuantplanError(f"{interpreter} does not run: {error.strerror}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise QuantplanError(
            f"{interpreter} cannot be the {spec.name} toolchain: `{smoke}` failed: {last[:300]}",
            hint="install the missing packages into that environment (offline: pip install "
            "--no-index --find-links DIR), then adopt it again",
        )
    versions = installed_versions(interpreter, spec.version_of)
    toolchain = Toolchain(
        name=spec.name,
        key=adopted_key(spec, interpreter, versions),
        root=toolchain_dir(spec),
        python_version=python_version_of(interpreter),
        versions=versions,
        built_at=datetime.now(UTC),
        build_seconds=0.0,
        adopted_interpreter=interpreter,
        lock_differences=lock_differences(spec, versions),
    )
    toolchain.root.mkdir(parents=True, exist_ok=True)
    manifest = toolchain.root / MANIFEST_NAME
    manifest.with_suffix(".tmp").write_text(toolchain.model_dump_json(indent=2))
    manifest.with_suffix(".tmp").rename(manifest)
    return toolchain
