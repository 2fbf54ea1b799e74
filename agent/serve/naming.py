"""The model name a server answers to: ``<model>-<scheme>`` for the artifacts quantplan made.

An artifact's directory is named by its content hash, so naming the served model after the
directory gave clients ``03ddbc9186a6...``; a GGUF file gave its file name. Clients want the
model and how it was quantized. The artifact's manifest (written by ``quantplan quantize``)
holds both; a model directory or file without one keeps its own name.
"""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST = "manifest.json"
# Bigger than any manifest quantplan writes (a few KB), small enough to read on every start.
MAX_MANIFEST_BYTES = 1_000_000
# OpenAI-style model ids: no spaces or slashes, which break URLs and shell use.
_UNSAFE = re.compile(r"[^A-Za-z0-9._:+-]+")


def _manifest_names(path: Path) -> tuple[str, str] | None:
    """(source model, scheme) from the artifact manifest next to ``path``, or None."""
    from pydantic import ValidationError

    from quantplan.agent.artifacts import ArtifactManifest
    from quantplan.inputs import InputFileError, read_text

    directory = path if path.is_dir() else path.parent
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    try:
        record = ArtifactManifest.model_validate_json(
            read_text(manifest, "artifact manifest", max_bytes=MAX_MANIFEST_BYTES)
        )
    except (InputFileError, ValidationError):
        return None  # not a quantplan manifest: the path's own name is the honest fallback
    return record.source_model, record.scheme


def default_served_name(path: Path, file_format: str) -> str:
    """``<model>-<scheme>`` from the artifact's manifest; else the file stem or directory name."""
    names = _manifest_names(path)
    if names is not None:
        model, scheme = names
        name = f"{model.rsplit('/', 1)[-1]}-{scheme}"
        return _UNSAFE.sub("-", name).strip("-") or path.name
    return path.stem if file_format == "gguf" else path.name


SERVED_NAME_PATTERN = r"^[A-Za-z0-9._:+/-]{1,200}$"


def check_served_name(name: str) -> str:
    """``--served-name`` as given, or a one-line error: clients put it in JSON and URLs."""
    from quantplan.errors import QuantplanError

    if not re.fullmatch(SERVED_NAME_PATTERN, name):
        raise QuantplanError(
            f"--served-name {name!r} is not a model name",
            hint="use 1-200 letters, digits and . _ : + / - (no spaces)",
        )
    return name
