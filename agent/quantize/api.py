"""``quantize(model, method, config)``: checks, cache lookup, the method's step, the store.

Order of work, so bad input fails fast and nothing half-written remains:
1. resolve the model (missing dir, remote code, unsupported architecture are refused here);
2. validate the config (strict pydantic) and the method's ``can_run`` / ``check`` (group size,
   calibration set size) -- all before any model is loaded;
3. look the artifact up by its content address and return it if it exists;
4. check free disk, quantize into a staging directory, describe the files, commit atomically.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from quantplan.agent.artifacts import (
    ArtifactManifest,
    ArtifactStore,
    artifact_id_for,
    describe_files,
    store_write_error,
)
from quantplan.agent.model_source import ModelSource, resolve_model
from quantplan.agent.quantize.base import ProgressCallback, Quantizer, QuantizeRefusal
from quantplan.agent.quantize.registry import get_quantizer
from quantplan.agent.toolchains import get_spec
from quantplan.agent.toolchains.build import toolchain_key as key_of_toolchain
from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.paths import cache_dir


def build_config(method: str, options: dict[str, Any]) -> Any:
    """The method's strict config from user options; unknown or bad options are refused."""
    quantizer = get_quantizer(method)
    try:
        return quantizer.config_type.model_validate(options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'options'}: {item['msg']}"
            for item in error.errors()
        )
        raise QuantizeRefusal(
            f"invalid {method} options: {problems}",
            hint=f"see `quantplan quantize --help` for the {method} options",
        ) from None


def quantize(
    model: str | ModelSource,
    method: str,
    options: dict[str, Any] | None = None,
    *,
    store: ArtifactStore | None = None,
    on_progress: ProgressCallback = None,
    force: bool = False,
) -> ArtifactManifest:
    """Quantize ``model`` ('default' or a local HF directory) with ``method``; cached by content."""
    from quantplan.agent.serve.host import detect_host

    quantizer = get_quantizer(method)
    config = build_config(method, options or {})
    source = resolve_model(model) if isinstance(model, str) else model
    able, reason = quantizer.can_run(detect_host(), source)
    if not able:
        raise QuantizeRefusal(f"{method} cannot run on this host: {reason}")
    quantizer.check(config, source)
    store = store or ArtifactStore()
    spec = get_spec(quantizer.toolchain)
    toolchain_key = key_of_toolchain(spec)
    address = {
        "source_model_sha256": source.content_sha256,
        "method": quantizer.method,  # canonical: "INT8" and "int8" are one artifact
        "config": config.model_dump(mode="json"),
        "toolchain_key": toolchain_key,
    }
    artifact_id = artifact_id_for(address)
    # One builder per artifact on this host: a concurrent identical request waits, then reuses.
    with exclusive_lock(cache_dir() / "locks" / f"artifact-{artifact_id}.lock"):
        existing = store.get(artifact_id)
        if existing is not None and not force:
            return existing
        return _build(
            quantizer, config, source, store, artifact_id, toolchain_key, on_progress, force
        )


def _build(
    quantizer: Quantizer,
    config: Any,
    source: ModelSource,
    store: ArtifactStore,
    artifact_id: str,
    toolchain_key: str,
    on_progress: ProgressCallback,
    force: bool = False,
) -> ArtifactManifest:
    _check_free_disk(store, source)
    staging = store.staging_dir(artifact_id)
    try:
        # An intermediate artifact (GGUF's F16) is built, or found, through this same entry, so
        # it is cached and shared; the method only receives its manifest.
        needed = quantizer.prerequisite(config)
        prerequisite = (
            quantize(source, needed[0], needed[1], store=store) if needed is not None else None
        )
        outcome = quantizer.quantize(source, config, staging, on_progress, store, prerequisite)
        files, total = describe_files(staging)
        from quantplan.agent.toolchains import ensure_toolchain

        toolchain = ensure_toolchain(quantizer.toolchain)
        manifest = ArtifactManifest(
            artifact_id=artifact_id,
            kind=outcome.kind,
            method=quantizer.method,
            scheme=outcome.scheme,
            parameters={**config.model_dump(mode="json"), "resolved": outcome.details},
            source_model=source.name,
            source_model_sha256=source.content_sha256,
            source_dequantized_from=source.dequantized_from,
            calibration=outcome.calibration,
            # The toolchain that ran: inside a GPU lease 'llmcompressor' is its CUDA build.
            toolchain=get_spec(quantizer.toolchain).name,
            toolchain_key=toolchain_key,
            tool_versions=toolchain.versions,
            files=tuple(files),
            total_bytes=total,
            source_weight_bytes=source.weight_bytes,
            bits_per_weight=outcome.bits_per_weight,
            main_file=outcome.main_file,
            quantize_seconds=outcome.quantize_seconds,
            peak_memory_mb=outcome.peak_memory_mb,
            created_at=datetime.now(UTC),
        )
        if outcome.layer_errors:
            _write_layer_errors(staging, outcome.layer_errors)
            files, total = describe_files(staging)
            manifest = manifest.model_copy(update={"files": tuple(files), "total_bytes": total})
        return store.commit(staging, manifest, replace=force)
    except OSError as error:
        store.discard(staging)
        raise store_write_error(error, store.url) from None
    except BaseException:  # StepError, interrupts: no half artifact stays behind
        store.discard(staging)
        raise


def _write_layer_errors(staging: Any, rows: list[dict[str, Any]]) -> None:
    import json

    (staging / "quantplan-layer-errors.json").write_text(json.dumps(rows, indent=1))


def _check_free_disk(store: ArtifactStore, source: ModelSource) -> None:
    """Refuse up front when the store's disk clearly cannot hold the result (about 1x source)."""
    if not store.is_local:
        return
    from pathlib import Path

    root = Path(store.root)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < source.weight_bytes * 1.2:
        raise store_write_error(OSError(28, "No space left on device"), store.url)
