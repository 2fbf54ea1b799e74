"""A cache of wheels built from source distributions, keyed by what determines the build.

llama-cpp-python ships only a source distribution; compiling it takes minutes on two cores. The
built wheel is kept under ``cache_dir()/wheels/<key>/`` where the key hashes the requirement, the
build environment (CMAKE_ARGS) and the interpreter's tag, so a rebuild happens only when one of
those changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.agent.toolchains.process import run_logged
from quantplan.agent.toolchains.specs import SourceBuild

from quantplan.paths import cache_dir


def wheels_root() -> Path:
    return cache_dir() / "wheels"


def wheel_key(build: SourceBuild, python_tag: str) -> str:
    """Hash of the requirement, build environment and interpreter tag."""
    payload = json.dumps(
        {"requirement": build.requirement, "env": build.environment, "python": python_tag},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cached_wheel_dir(build: SourceBuild, python_tag: str) -> Path | None:
    """The directory holding the cached wheel for ``build``, or None when not built yet."""
    directory = wheels_root() / wheel_key(build, python_tag)
    return directory if any(directory.glob("*.whl")) else None


def ensure_wheel(
    build: SourceBuild,
    python: Path,
    python_tag: str,
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
) -> Path:
    """Build ``build`` into a wheel once (under a lock) and return the directory holding it.

    The wheel is built into a temporary sibling directory and renamed into place, so an
    interrupted compile never leaves a directory that looks complete.
    """
    final = wheels_root() / wheel_key(build, python_tag)
    with exclusive_lock(wheels_root() / ".locks" / f"{final.name}.lock"):
        if any(final.glob("*.whl")):
            return final
        staging = final.with_name(f".tmp-{final.name}-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            environment = {**os.environ, **build.environment}
            # Use every core the machine offers for the compile; ninja would otherwise guess.
            environment.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
            command = [str(python), "-m", "pip", "wheel", "--no-deps", "--no-binary"]
            command += [build.requirement.split("=")[0].split("[")[0], build.requirement]
            command += ["-w", str(staging)]
            run_logged(command, log_path, env=environment, on_line=on_line, what="building wheel")
            if not any(staging.glob("*.whl")):
                raise RuntimeError(f"pip wheel produced no wheel for {build.requirement}")
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return final
