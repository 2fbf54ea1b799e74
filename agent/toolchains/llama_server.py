"""llama.cpp's own ``llama-server``, built from the llama.cpp tree vendored in the pinned sdist.

llama-cpp-python's server answers one request at a time; llama.cpp's ``llama-server`` has
parallel slots and continuous batching. Both come from the same source: the llama.cpp tree
vendored in the ``llama-cpp-python==0.3.36`` source distribution the llama-cpp toolchain already
builds its wheel from. Nothing prebuilt is downloaded: the sdist is fetched with pip (checked
against its pinned sha256), kept under ``cache_dir()/sdists``, and compiled with cmake.

The binaries live at ``cache_dir()/builds/llama-server-<key>/bin`` where the key hashes the
sdist's sha256, the cmake flags and the targets (and with them the CUDA architecture). This is
separate from the llama-cpp toolchain's environment, whose cache key does not change. A build
happens in a temporary sibling directory and is renamed into place after the binary answered
``--version``; a manifest written last marks it complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.model_source import file_sha256
from quantplan.agent.toolchains.build import ToolchainMissingError, base_python
from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.agent.toolchains.process import run_logged
from quantplan.agent.toolchains.specs import LLAMA_CPP_CMAKE_ARGS, get_spec
from quantplan.errors import QuantplanError
from quantplan.paths import cache_dir

MANIFEST_NAME = "llama-server-build.json"
# The sdist the llama-cpp toolchain builds its wheel from, and the sha256 PyPI serves for it.
SDIST_REQUIREMENT = get_spec("llama-cpp").source_builds[0].requirement
SDIST_NAME = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED_TREE = "llama_cpp_python-0.3.36/vendor/llama.cpp"
# No web UI assets (they would be fetched or need npm), no libcurl (models are local files),
# static libraries so the binary does not depend on the build directory it was linked in.
COMMON_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)
TARGETS = ("llama-server", "llama-batched-bench")

Progress = Callable[[str], None]


class LlamaServerBuild(BaseModel):
    """A built ``llama-server`` (and ``llama-batched-bench``) for this host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Content hash of sdist, cmake flags and targets.")
    root: Path = Field(description="The build's directory; binaries are in root/bin.")
    backend: str = Field(description="'cpu' or 'cuda'.")
    cuda_architecture: str | None = Field(default=None, description="e.g. '90' for Hopper.")
    cmake_args: tuple[str, ...] = Field(description="The flags it was configured with.")
    sdist_sha256: str = Field(description="sha256 of the llama-cpp-python sdist it came from.")
    version: str = Field(description="What `llama-server --version` printed (build number).")
    built_at: datetime = Field(description="When the build finished (UTC).")
    build_seconds: float = Field(description="Wall time of the build.")

    @property
    def server(self) -> Path:
        return self.root / "bin" / "llama-server"

    @property
    def batched_bench(self) -> Path:
        return self.root / "bin" / "llama-batched-bench"


def detect_cuda_architecture() -> str | None:
    """The first GPU's compute capability as cmake wants it ('90'), or None without a GPU/nvcc."""
    if shutil.which("nvidia-smi") is None or shutil.which("nvcc") is None:
        return None
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return None
    return lines[0].strip().replace(".", "") or None


def cmake_args(cuda_architecture: str | None) -> tuple[str, ...]:
    """Flags for the CPU build (AMX off, as the wheel) or the CUDA build for one architecture."""
    args = (*COMMON_CMAKE_ARGS, *LLAMA_CPP_CMAKE_ARGS.split())
    if cuda_architecture:
        args += ("-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_architecture}")
    return args


def build_key(cuda_architecture: str | None) -> str:
    payload = {
        "sdist_sha256": SDIST_SHA256,
        "cmake_args": list(cmake_args(cuda_architecture)),
        "targets": list(TARGETS),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def builds_root() -> Path:
    return cache_dir() / "builds"


def build_dir(cuda_architecture: str | None) -> Path:
    return builds_root() / f"llama-server-{build_key(cuda_architecture)}"


def find_llama_server(cuda_architecture: str | None = None) -> LlamaServerBuild | None:
    """The completed build for these settings, or None."""
    manifest = build_dir(cuda_architecture) / MANIFEST_NAME
    if not manifest.is_file():
        return None
    build = LlamaServerBuild.model_validate_json(manifest.read_text(encoding="utf-8"))
    return build if build.server.is_file() else None


def ensure_llama_server(
    cuda_architecture: str | None = None,
    *,
    install: bool = True,
    progress: Progress | None = None,
) -> LlamaServerBuild:
    """The llama-server build for this host (CPU, or CUDA for ``cuda_architecture``).

    Builds it first when missing (minutes, done once); ``install=False`` raises
    :class:`ToolchainMissingError` instead.
    """
    found = find_llama_server(cuda_architecture)
    if found is not None:
        return found
    if not install:
        raise ToolchainMissingError(
            "llama-server is not built"
            + (f" for CUDA {cuda_architecture}" if cuda_architecture else ""),
            hint="run `quantplan toolchain install llama-cpp` (it builds llama-server too)",
        )
    final = build_dir(cuda_architecture)
    with exclusive_lock(builds_root() / ".locks" / f"{final.name}.lock"):
        found = find_llama_server(cuda_architecture)
        if found is not None:
            return found
        return _build(cuda_architecture, progress or (lambda _line: None))


def _sdist(log_path: Path, progress: Progress) -> Path:
    """The pinned sdist, fetched once with pip and checked against its sha256."""
    target = cache_dir() / "sdists" / SDIST_NAME
    with exclusive_lock(cache_dir() / "sdists" / ".locks" / f"{SDIST_NAME}.lock"):
        if target.is_file() and file_sha256(target) == SDIST_SHA256:
            return target
        staging = target.parent / f".tmp-sdist-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            progress(f"fetching the {SDIST_REQUIREMENT} source distribution")
            command = [str(base_python()), "-m", "pip", "download", "--no-deps"]
            command += ["--no-binary", ":all:", SDIST_REQUIREMENT, "-d", str(staging)]
            run_logged(
                command,
                log_path,
                on_line=progress,
                what="fetching the llama-cpp-python sdist",
                hint="check the network to PyPI, or put the sdist at " + str(target),
            )
            fetched = staging / SDIST_NAME
            digest = file_sha256(fetched) if fetched.is_file() else "missing"
            if digest != SDIST_SHA256:
                raise QuantplanError(
                    f"the fetched {SDIST_NAME} has sha256 {digest}, expected {SDIST_SHA256}",
                    hint="the index served other bytes than the pinned release; check the index",
                )
            fetched.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _build(cuda_architecture: str | None, progress: Progress) -> LlamaServerBuild:
    final = build_dir(cuda_architecture)
    staging = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    log_path = builds_root() / "logs" / f"{final.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"# build of llama-server started {datetime.now(UTC).isoformat()}\n")
    started = time.monotonic()
    shutil.rmtree(staging, ignore_errors=True)
    args = cmake_args(cuda_architecture)
    try:
        sdist = _sdist(log_path, progress)
        progress("unpacking the vendored llama.cpp tree")
        source = staging / "src"
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(VENDORED_TREE + "/")]
            archive.extractall(source, members=members, filter="data")
        tree = source / VENDORED_TREE
        objects = staging / "cmake-build"
        progress("configuring llama-server (cmake)")
        run_logged(
            ["cmake", "-S", str(tree), "-B", str(objects), "-G", "Ninja", *args],
            log_path,
            on_line=progress,
            what="configuring llama-server",
            hint="cmake, ninja and a C++ compiler are needed (`quantplan toolchain doctor`)",
        )
        progress("compiling llama-server (minutes on few cores)")
        jobs = str(os.cpu_count() or 1)
        run_logged(
            ["cmake", "--build", str(objects), "-j", jobs, "--target", *TARGETS],
            log_path,
            on_line=progress,
            what="compiling llama-server",
        )
        (staging / "bin").mkdir()
        for target in TARGETS:
            shutil.copy2(objects / "bin" / target, staging / "bin" / target)
        shutil.rmtree(source)
        shutil.rmtree(objects)
        version = _version(staging / "bin" / "llama-server")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        build = LlamaServerBuild(
            key=build_key(cuda_architecture),
            root=final,
            backend="cuda" if cuda_architecture else "cpu",
            cuda_architecture=cuda_architecture,
            cmake_args=args,
            sdist_sha256=SDIST_SHA256,
            version=version,
            built_at=datetime.now(UTC),
            build_seconds=round(time.monotonic() - started, 1),
        )
        manifest = final / MANIFEST_NAME
        manifest.with_suffix(".tmp").write_text(build.model_dump_json(indent=2))
        manifest.with_suffix(".tmp").rename(manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"llama-server ready in {build.build_seconds:.0f} s")
    return build


def _version(server: Path) -> str:
    """The build line ``llama-server --version`` prints; a binary that cannot start fails here."""
    result = subprocess.run([str(server), "--version"], capture_output=True, text=True, timeout=60)
    text = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise QuantplanError(
            f"the built llama-server does not start (exit {result.returncode}): {text[-300:]}",
            hint="see the build log under " + str(builds_root() / "logs"),
        )
    lines = [line for line in text.splitlines() if line.startswith("version")]
    return lines[0] if lines else text.splitlines()[-1] if text else "unknown"
