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
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import fsspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantplan.catalog.registry import MethodName
from quantplan.errors import QuantplanError
from quantplan.inputs import MAX_INPUT_BYTES
from quantplan.paths import cache_dir

MANIFEST = "manifest.json"
# An id is the first 24 hex digits of a sha256 (``artifact_id_for``). Ids become directory
# names, and a shared store is written by other people: anything else ("../../x", "/etc", "a/b")
# is refused wherever an id comes in, so no id can name a path outside the store.
ARTIFACT_ID_LENGTH = 24
ARTIFACT_ID_PATTERN = re.compile(r"[0-9a-f]{24}")
# What a user may type to pick artifacts: an id prefix or a scheme name ("gguf-q4_k_m").
ARTIFACT_REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


class InvalidArtifactIdError(QuantplanError):
    """An artifact id that is not of the store's own form (a path, or anything else)."""


def check_artifact_id(artifact_id: object, where: str) -> str:
    """``artifact_id`` if it is exactly of the form the store makes, else a clear error."""
    if isinstance(artifact_id, str) and ARTIFACT_ID_PATTERN.fullmatch(artifact_id):
        return artifact_id
    raise InvalidArtifactIdError(
        f"{where}: {artifact_id!r} is not an artifact id "
        f"({ARTIFACT_ID_LENGTH} lowercase hex digits)",
        hint="artifact ids come from `quantplan quantize`; a manifest with another id was not "
        "written by quantplan and is not used",
    )


def check_artifact_reference(reference: str) -> str:
    """A user's artifact reference (id, id prefix or scheme name), refusing anything path-like."""
    if ARTIFACT_REFERENCE_PATTERN.fullmatch(reference) and ".." not in reference:
        return reference
    raise InvalidArtifactIdError(
        f"{reference!r} is not an artifact id, id prefix or scheme name",
        hint="list artifacts with `quantplan evaluate all`, or give the id shown by "
        "`quantplan quantize`",
    )


def _check_relative_file(path: str) -> str:
    """A file name inside an artifact: relative, no '..', no backslashes or empty parts."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"{path!r} is not a relative path inside the artifact")
    return path


class ArtifactFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Path relative to the artifact directory.")
    bytes: int = Field(ge=0)
    sha256: str

    @field_validator("path")
    @classmethod
    def _inside_artifact(cls, value: str) -> str:
        return _check_relative_file(value)


class ArtifactManifest(BaseModel):
    """What an artifact is, how it was made, and what it contains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    artifact_id: str = Field(description="Content address: hash of the request that made it.")
    kind: Literal["compressed-tensors", "gguf"]
    method: MethodName
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

    @field_validator("artifact_id")
    @classmethod
    def _strict_id(cls, value: str) -> str:
        if not ARTIFACT_ID_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not an artifact id ({ARTIFACT_ID_LENGTH} hex digits)")
        return value

    @field_validator("main_file")
    @classmethod
    def _main_file_inside(cls, value: str | None) -> str | None:
        return None if value is None else _check_relative_file(value)

    @property
    def compression_ratio(self) -> float:
        """Source weight bytes / artifact bytes (higher is smaller)."""
        return self.source_weight_bytes / self.total_bytes if self.total_bytes else 0.0


class ArtifactStoreError(QuantplanError):
    """The store cannot be read or written (missing, disk full, permissions)."""


def artifact_id_for(request: dict[str, Any]) -> str:
    """Stable content address of a quantization request."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:ARTIFACT_ID_LENGTH]


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
    """Artifacts under ``url`` (a directory by default; any fsspec URL works).

    Every path the store builds goes through ``_path`` (a strict id, relative file names) and,
    on a local disk, ``_confined`` (resolved, symlinks included, it must stay under the root),
    because a shared store's contents are written by other people.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.is_local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )

    def staging_dir(self, artifact_id: str) -> Path:
        """A fresh local directory to produce an artifact in (same disk as the store if local)."""
        check_artifact_id(artifact_id, f"artifact store {self.url}")
        base = Path(self.root) if self.is_local else cache_dir() / "staging"
        path = base / f".staging-{artifact_id}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def _path(self, artifact_id: str, *parts: str) -> str:
        check_artifact_id(artifact_id, f"artifact store {self.url}")
        for part in parts:
            try:
                _check_relative_file(part)
            except ValueError as error:
                raise ArtifactStoreError(
                    f"artifact {artifact_id} in {self.url}: {error}",
                    hint="the manifest was not written by quantplan; remove that artifact",
                ) from None
        return "/".join([self.root.rstrip("/"), artifact_id, *parts])

    def _confined(self, path: str | Path, base: Path | None = None) -> Path:
        """``path`` resolved, refused unless it stays under ``base`` (the store root)."""
        root = (base or Path(self.root)).resolve()
        resolved = Path(path).resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise ArtifactStoreError(
                f"{path} leads outside the artifact store {root} (to {resolved}); not used",
                hint="a symlink in the store points elsewhere; remove it",
            )
        return resolved

    def get(self, artifact_id: str) -> ArtifactManifest | None:
        """The manifest of a complete artifact, or None."""
        path = self._path(artifact_id, MANIFEST)
        if self.is_local:
            self._confined(path)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            raw = handle.read(MAX_INPUT_BYTES + 1)
        return self._parse_manifest(raw, artifact_id, path)

    def _parse_manifest(self, raw: bytes, artifact_id: str, path: str) -> ArtifactManifest:
        """The manifest at ``path`` if it is well formed and names the directory it lies in."""
        if len(raw) > MAX_INPUT_BYTES:
            raise ArtifactStoreError(f"manifest {path} is larger than {MAX_INPUT_BYTES:,} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ArtifactStoreError(
                f"manifest {path} is not valid JSON",
                hint="remove the artifact; `quantplan quantize` makes it again",
            ) from None
        claimed = data.get("artifact_id") if isinstance(data, dict) else None
        check_artifact_id(claimed, f"manifest {path}")
        if claimed != artifact_id:
            raise ArtifactStoreError(
                f"manifest {path} names artifact {claimed!r} but lies under {artifact_id!r}",
                hint="the store's layout is <root>/<artifact_id>/manifest.json; remove it",
            )
        try:
            return ArtifactManifest.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ArtifactStoreError(
                f"manifest {path} is not valid: {where}: {first['msg']}",
                hint="remove the artifact; `quantplan quantize` makes it again",
            ) from None

    def list(self) -> list[ArtifactManifest]:
        if not self.fs.exists(self.root):
            return []
        manifests = []
        for entry in self.fs.ls(self.root, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            # Staging directories and anything not named like an artifact are not artifacts.
            if not ARTIFACT_ID_PATTERN.fullmatch(name):
                continue
            manifest = self.get(name)
            if manifest is not None:
                manifests.append(manifest)
        return sorted(manifests, key=lambda manifest: manifest.created_at)

    def find(self, reference: str) -> ArtifactManifest:
        """An artifact by id, unique id prefix, or scheme name (newest wins)."""
        check_artifact_reference(reference)
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
            directory = self._confined(self._path(manifest.artifact_id))
            for name in (*(file.path for file in manifest.files), manifest.main_file):
                if name is not None:  # a file symlinked out of the store is not served either
                    self._confined(self._path(manifest.artifact_id, name), directory)
            return directory
        mirror = cache_dir() / "artifact-mirror"
        target = mirror / check_artifact_id(manifest.artifact_id, f"artifact store {self.url}")
        if not (target / MANIFEST).is_file():
            mirror.mkdir(parents=True, exist_ok=True)
            staging = self._confined(mirror / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}", mirror)
            try:
                self._download(manifest, staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if target.is_symlink():
                target.unlink()
            shutil.rmtree(self._confined(target, mirror), ignore_errors=True)
            staging.rename(target)
        return target

    def _download(self, manifest: ArtifactManifest, staging: Path) -> None:
        """The manifest's files, and only those, checked against their recorded sha256."""
        for file in manifest.files:
            local = staging / file.path
            local.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self._path(manifest.artifact_id, file.path), str(local))
            self._check_file(manifest, file, local)
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))

    def _check_file(self, manifest: ArtifactManifest, file: ArtifactFile, local: Path) -> None:
        digest = hashlib.sha256()
        with local.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != file.sha256:
            raise ArtifactStoreError(
                f"artifact {manifest.artifact_id} in {self.url}: {file.path} does not match "
                "its manifest's sha256",
                hint="the store copy changed after it was written; quantize it again",
            )

    def pull(self, manifest: ArtifactManifest) -> Path:
        """A local directory with the artifact's files, every one checked against the
        manifest's sha256: what a replica on another node than the quantizer's loads.

        A remote store is downloaded into this node's mirror (checked on the way). A local
        store is a shared filesystem here: its files are hashed in place, once per node while
        their sizes and modification times stay what they were when checked."""
        directory = self.local_dir(manifest)
        if not self.is_local:
            return directory
        stamp: dict[str, list[int]] = {}
        for file in manifest.files:
            try:
                status = (directory / file.path).stat()
            except FileNotFoundError:
                raise ArtifactStoreError(
                    f"artifact {manifest.artifact_id} in {self.url}: {file.path} is missing",
                    hint="the store copy changed after it was written; quantize it again",
                ) from None
            stamp[file.path] = [status.st_size, status.st_mtime_ns]
        marker = cache_dir() / "artifact-checked" / f"{manifest.artifact_id}.json"
        if marker.is_file() and json.loads(marker.read_text()) == stamp:
            return directory
        for file in manifest.files:
            self._check_file(manifest, file, directory / file.path)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(stamp))
        return directory

    def commit(
        self, staging: Path, manifest: ArtifactManifest, *, replace: bool = False
    ) -> ArtifactManifest:
        """Publish a finished staging directory under its id; the manifest goes in last.

        An artifact already there under that id is kept (an identical build landed meanwhile)
        unless ``replace`` (a forced rebuild): then the new one takes its place."""
        try:
            manifest_tmp = staging / (MANIFEST + ".tmp")
            manifest_tmp.write_text(manifest.model_dump_json(indent=2))
            manifest_tmp.rename(staging / MANIFEST)
            if self.is_local:
                final = Path(self._path(manifest.artifact_id))
                final.parent.mkdir(parents=True, exist_ok=True)
                self._confined(final)
                if (final.exists() or final.is_symlink()) and not replace:
                    shutil.rmtree(staging, ignore_errors=True)
                    return self.get(manifest.artifact_id) or manifest
                if final.exists() or final.is_symlink():  # moved aside, so a reader never
                    old = final.with_name(f".replaced-{final.name}-{os.getpid()}")  # sees half
                    final.rename(old)
                    staging.rename(final)
                    shutil.rmtree(old, ignore_errors=True)
                    return manifest
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
                if leftover.is_symlink() or not leftover.is_dir():
                    continue  # we only ever make directories here; leave anything else alone
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
