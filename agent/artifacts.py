"""Content-addressed artifact store with a manifest per artifact, on any fsspec filesystem.

An artifact's id is the hash of everything that determines it (source model hash, method,
parameters, calibration fingerprint, toolchain lock key), so asking twice for the same thing
finds the first result. Layout under the store root::

    <root>/<artifact_id>/manifest.json   written last: its presence marks a complete artifact
    <root>/<artifact_id>/<files...>

Artifacts are produced in a local staging directory first. On a local filesystem the staging
directory is renamed into place (atomic); on a remote one the files are uploaded and the
manifest goes up last, so a reader never sees a manifest without its files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from quantplan.errors import QuantplanError
from quantplan.paths import cache_dir

MANIFEST = "manifest.json"


class ArtifactFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Path relative to the artifact directory.")
    bytes: int = Field(ge=0)
    sha256: str


class ArtifactManifest(BaseModel):
    """What an artifact is, how it was made, and what it contains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    artifact_id: str = Field(description="Content address: hash of the request that made it.")
    kind: Literal["compressed-tensors", "gguf"]
    method: Literal["gptq", "awq", "gguf"]
    scheme: str = Field(description="Catalog scheme name, e.g. 'gptq-w4a16-g64', 'gguf-q4_k_m'.")
    parameters: dict[str, Any] = Field(description="The quantizer config as given (validated).")
    source_model: str = Field(description="Model name.")
    source_model_sha256: str
    source_dequantized_from: str | None = Field(
        default=None, description="Set when the base weights were dequantized (e.g. Q4_1)."
    )
    calibration: dict[str, Any] | None = Field(
        default=None, description="Calibration text fingerprint, samples and length."
    )
    toolchain: str
    toolchain_key: str
    tool_versions: dict[str, str]
    files: tuple[ArtifactFile, ...]
    total_bytes: int = Field(ge=0)
    source_weight_bytes: int = Field(gt=0)
    bits_per_weight: float | None = Field(
        default=None, description="Measured: stored bits of quantizable weights / their count."
    )
    main_file: str | None = Field(default=None, description="The file engines load (GGUF).")
    quantize_seconds: float = Field(ge=0)
    peak_memory_mb: float | None = Field(default=None, description="Peak RSS of the step.")
    created_at: datetime

    @property
    def compression_ratio(self) -> float:
        """Source weight bytes / artifact bytes (higher is smaller)."""
        return self.source_weight_bytes / self.total_bytes if self.total_bytes else 0.0


class ArtifactStoreError(QuantplanError):
    """The store cannot be read or written (missing, disk full, permissions)."""


def artifact_id_for(request: dict[str, Any]) -> str:
    """Stable content address of a quantization request."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[
        :24
    ]


def describe_files(directory: Path) -> tuple[list[ArtifactFile], int]:
    """Every file under ``directory`` with its size and sha256, and the total size."""
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        files.append(
            ArtifactFile(
                path=str(path.relative_to(directory)),
                bytes=path.stat().st_size,
                sha256=digest.hexdigest(),
            )
        )
    return files, sum(file.bytes for file in files)


def default_store_url() -> str:
    return os.environ.get("QUANTPLAN_ARTIFACTS", str(cache_dir() / "artifacts"))


class ArtifactStore:
    """Artifacts under ``url`` (a directory by default; any fsspec URL works)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.is_local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )

    def staging_dir(self, artifact_id: str) -> Path:
        """A fresh local directory to produce an artifact in (same disk as the store if local)."""
        base = Path(self.root) if self.is_local else cache_dir() / "staging"
        path = base / f".staging-{artifact_id}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def _path(self, artifact_id: str, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), artifact_id, *parts])

    def get(self, artifact_id: str) -> ArtifactManifest | None:
        """The manifest of a complete artifact, or None."""
        path = self._path(artifact_id, MANIFEST)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as handle:
            return ArtifactManifest.model_validate_json(handle.read())

    def list(self) -> list[ArtifactManifest]:
        if not self.fs.exists(self.root):
            return []
        manifests = []
        for entry in self.fs.ls(self.root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("."):
                continue
            manifest = self.get(name)
            if manifest is not None:
                manifests.append(manifest)
        return sorted(manifests, key=lambda manifest: manifest.created_at)

    def find(self, reference: str) -> ArtifactManifest:
        """An artifact by id, unique id prefix, or scheme name (newest wins)."""
        manifests = self.list()
        by_id = [m for m in manifests if m.artifact_id.startswith(reference)]
        if len(by_id) == 1:
            return by_id[0]
        by_scheme = [m for m in manifests if m.scheme == reference]
        if by_scheme:
            return by_scheme[-1]
        from quantplan.errors import UnknownNameError

        known = sorted({m.scheme for m in manifests} | {m.artifact_id[:12] for m in manifests})
        raise UnknownNameError("artifact", reference, known)

    def local_dir(self, manifest: ArtifactManifest) -> Path:
        """A local directory holding the artifact's files (downloaded once when remote)."""
        if self.is_local:
            return Path(self._path(manifest.artifact_id))
        target = cache_dir() / "artifact-mirror" / manifest.artifact_id
        if not (target / MANIFEST).is_file():
            staging = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
            self.fs.get(self._path(manifest.artifact_id) + "/", str(staging), recursive=True)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        return target

    def commit(self, staging: Path, manifest: ArtifactManifest) -> ArtifactManifest:
        """Publish a finished staging directory under its id; the manifest goes in last."""
        try:
            manifest_tmp = staging / (MANIFEST + ".tmp")
            manifest_tmp.write_text(manifest.model_dump_json(indent=2))
            manifest_tmp.rename(staging / MANIFEST)
            if self.is_local:
                final = Path(self._path(manifest.artifact_id))
                if final.exists():  # an identical artifact landed meanwhile: keep that one
                    shutil.rmtree(staging, ignore_errors=True)
                    return self.get(manifest.artifact_id) or manifest
                final.parent.mkdir(parents=True, exist_ok=True)
                staging.rename(final)
                return manifest
            for file in manifest.files:
                self.fs.put_file(
                    str(staging / file.path), self._path(manifest.artifact_id, file.path)
                )
            self.fs.put_file(str(staging / MANIFEST), self._path(manifest.artifact_id, MANIFEST))
            shutil.rmtree(staging, ignore_errors=True)
            return manifest
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise store_write_error(error, self.url) from None

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def remove_stale_staging(self) -> None:
        """Staging leftovers of killed runs (same-host, local store only)."""
        if self.is_local and Path(self.root).is_dir():
            for leftover in Path(self.root).glob(".staging-*"):
                age = datetime.now(UTC).timestamp() - leftover.stat().st_mtime
                if age > 24 * 3600:
                    shutil.rmtree(leftover, ignore_errors=True)


def store_write_error(error: OSError, where: str) -> ArtifactStoreError:
    if error.errno == 28:
        return ArtifactStoreError(
            f"no space left on device while writing to {where}; nothing was kept",
            hint="free disk space, or point QUANTPLAN_ARTIFACTS / QUANTPLAN_CACHE_DIR elsewhere",
        )
    return ArtifactStoreError(f"cannot write to the artifact store {where}: {error}")
