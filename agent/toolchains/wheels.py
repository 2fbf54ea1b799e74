"""Where a toolchain's wheels come from that plain PyPI cannot give.

Two kinds:

- The CPU-only torch the locks pin (``torch==2.13.0+cpu``). PyPI has only the multi-GB CUDA
  build; the ``+cpu`` wheel lives on PyTorch's own CPU index, or in a local wheel folder (this
  project's machines keep it in /opt/wheels and reach no index but PyPI). The folder is the first
  choice; the index is asked only when the folder lacks the wheel, with a short probe so an
  unreachable index costs seconds, not a failed build.
- llama-cpp-python ships only a source distribution; compiling it takes minutes on two cores.
  The built wheel is kept under ``cache_dir()/wheels/<key>/`` where the key hashes the
  requirement, the build environment (CMAKE_ARGS) and the interpreter's tag, so a rebuild happens
  only when one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.agent.toolchains.process import run_logged
from quantplan.agent.toolchains.specs import SourceBuild
from quantplan.paths import cache_dir

# Where the machine image keeps prebuilt wheels; QUANTPLAN_WHEELHOUSE names another folder.
DEFAULT_WHEELHOUSE = Path("/opt/wheels")
# PyTorch's index of CPU-only builds; QUANTPLAN_TORCH_INDEX names a mirror, or "" for none.
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
INDEX_PROBE_TIMEOUT_S = 3.0


def wheelhouses() -> list[Path]:
    """Local wheel folders that exist, passed to pip as ``--find-links``."""
    override = os.environ.get("QUANTPLAN_WHEELHOUSE")
    candidates = [Path(override)] if override else [DEFAULT_WHEELHOUSE]
    return [path for path in candidates if path.is_dir()]


def torch_index() -> str | None:
    """The CPU torch index to ask, or None when QUANTPLAN_TORCH_INDEX is set empty."""
    return os.environ.get("QUANTPLAN_TORCH_INDEX", PYTORCH_CPU_INDEX).rstrip("/") or None


@cache
def index_reachable(index: str, timeout_s: float = INDEX_PROBE_TIMEOUT_S) -> bool:
    """Does ``index`` list torch within ``timeout_s``? Asked once per process.

    The request runs in a thread that is given up on after ``timeout_s``: httpx's timeouts do
    not cover the DNS lookup, which is what hangs on some offline machines.
    """
    answers: list[bool] = []

    def ask() -> None:
        try:
            with httpx.stream("GET", f"{index}/torch/", timeout=timeout_s) as response:
                answers.append(response.status_code < 400)  # headers only; the page is large
        except httpx.HTTPError:
            answers.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answers and answers[0])


class TorchSource(BaseModel):
    """Where pip gets a toolchain's CPU-only torch wheel from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requirement: str = Field(description="The lock's pin, e.g. 'torch==2.13.0+cpu'.")
    python: str = Field(description="The interpreter's X.Y the wheel must be built for.")
    kind: Literal["wheelhouse", "index", "missing"] = Field(
        description="A local wheel folder, PyTorch's CPU index, or nowhere reachable."
    )
    location: str | None = Field(description="The folder or index URL; None when missing.")
    tried: tuple[str, ...] = Field(default=(), description="Folders and index asked.")

    def describe(self) -> str:
        """One line for the doctor and for build errors."""
        if self.kind == "wheelhouse":
            return f"{self.requirement} from the local wheel folder {self.location}"
        if self.kind == "index":
            return f"{self.requirement} from PyTorch's CPU index {self.location}"
        return (
            f"{self.requirement} for Python {self.python} found nowhere (asked: "
            f"{', '.join(self.tried) or 'nothing'}); PyPI has only the CUDA build"
        )


def torch_pin(lock_text: str) -> str | None:
    """The lock's ``torch==...+cpu`` pin, or None when the lock needs no CPU-only torch."""
    for line in lock_text.splitlines():
        name, _, version = line.split("#")[0].split(";")[0].partition("==")
        if name.strip().lower() == "torch" and "+cpu" in version:
            return f"torch=={version.strip()}"
    return None


def resolve_torch_source(
    requirement: str,
    python_version: str,
    *,
    probe: Callable[[str], bool] = index_reachable,
) -> TorchSource:
    """Where ``requirement`` (``torch==X+cpu``) comes from for an interpreter ``X.Y[.Z]``.

    A local folder holding a wheel for this interpreter wins, with no network asked; else
    PyTorch's CPU index when it answers.
    """
    major, minor = python_version.split(".")[:2]
    found = {"requirement": requirement, "python": f"{major}.{minor}"}
    pattern = f"torch-{requirement.partition('==')[2]}-cp{major}{minor}-*.whl"
    houses = wheelhouses()
    for house in houses:
        if any(house.glob(pattern)):
            return TorchSource(**found, kind="wheelhouse", location=str(house))
    index = torch_index()
    if index is not None and probe(index):
        return TorchSource(**found, kind="index", location=index)
    tried = tuple(str(house) for house in houses) + ((index,) if index else ())
    return TorchSource(**found, kind="missing", location=None, tried=tried)


def wheels_root() -> Path:
    return cache_dir() / "wheels"


def wheel_key(build: SourceBuild, python_tag: str) -> str:
    """Hash of the requirement, build environment and interpreter tag."""
    payload = json.dumps(
        {"requirement": build.requirement, "env": build.environment, "python": python_tag},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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
