"""``evaluate(artifacts)``: quality of quantized artifacts vs the base, with the serving engines.

compressed-tensors artifacts (GPTQ, AWQ) are scored by vLLM CPU against the bf16 base run in
vLLM; GGUF artifacts are scored by llama.cpp against the F16 GGUF of the same base. Both see the
same held-out token windows. Each row carries the metric definitions it used (``kl_method``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.artifacts import ArtifactManifest, ArtifactStore
from quantplan.agent.evaluate import metrics
from quantplan.agent.evaluate.engines import (
    EvalSettings,
    evaluation_windows,
    llamacpp_scores,
    vllm_positions,
)
from quantplan.agent.model_source import ModelSource, resolve_model
from quantplan.agent.toolchains import StepError
from quantplan.catalog.registry import EngineName

DEQUANTIZED_NOTE = (
    "base weights of this model are dequantized from {source}: they already sit on a 4-bit "
    "grid, so requantizing looks cheaper than on a real bf16 model; not a general ranking"
)


class QualityRow(BaseModel):
    """One evaluated model (base or artifact) on one engine."""

    model_config = ConfigDict(extra="forbid")

    scheme: str
    engine: EngineName
    artifact_id: str | None = Field(description="None for the base/reference row.")
    perplexity: float | None = None
    baseline_perplexity: float | None = None
    perplexity_delta_pct: float | None = None
    kl_divergence: float | None = None
    kl_method: str = ""
    top1_agreement: float | None = None
    bits_per_weight: float | None = None
    compression_ratio: float | None = None
    size_bytes: int | None = None
    layer_error: dict[str, float] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="Why this row has no numbers.")


class QualityTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    model_sha256: str
    eval_set: str
    tokens_per_model: int
    notes: list[str]
    rows: list[QualityRow]


def _layer_error(store: ArtifactStore, manifest: ArtifactManifest) -> dict[str, float]:
    path = store.local_dir(manifest) / "quantplan-layer-errors.json"
    if not path.is_file():
        return {}
    return metrics.layer_error_summary(json.loads(path.read_text()))


def _artifact_row(store: ArtifactStore, manifest: ArtifactManifest, engine: str) -> QualityRow:
    return QualityRow(
        scheme=manifest.scheme,
        engine=engine,
        artifact_id=manifest.artifact_id,
        bits_per_weight=manifest.bits_per_weight,
        compression_ratio=round(manifest.compression_ratio, 3),
        size_bytes=manifest.total_bytes,
        layer_error=_layer_error(store, manifest),
    )


def evaluate(
    artifacts: Sequence[ArtifactManifest],
    *,
    model: str | ModelSource = "default",
    settings: EvalSettings | None = None,
    store: ArtifactStore | None = None,
    on_progress: Any = None,
) -> QualityTable:
    """Score ``artifacts`` (all quantized from ``model``) and their base on held-out text."""
    from quantplan.agent.quantize import quantize

    settings = settings or EvalSettings()
    store = store or ArtifactStore()
    source = resolve_model(model) if isinstance(model, str) else model
    for manifest in artifacts:
        if manifest.source_model_sha256 != source.content_sha256:
            from quantplan.errors import QuantplanError

            raise QuantplanError(
                f"artifact {manifest.artifact_id[:12]} ({manifest.scheme}) was made from another "
                f"model than {source.name}",
                hint="evaluate artifacts together with the model they were quantized from",
            )
    windows = evaluation_windows(source, settings)
    rows: list[QualityRow] = []
    vllm_artifacts = [m for m in artifacts if m.kind == "compressed-tensors"]
    gguf_artifacts = [m for m in artifacts if m.kind == "gguf" and m.scheme != "gguf-f16"]
    if vllm_artifacts:
        base = vllm_positions(source.path, source.content_sha256, windows, settings, on_progress)
        base_ppl = metrics.perplexity(base)
        rows.append(
            QualityRow(
                scheme="bf16",
                engine="vllm",
                artifact_id=None,
                perplexity=base_ppl,
                bits_per_weight=16.0,
                compression_ratio=1.0,
                size_bytes=source.weight_bytes,
            )
        )
        for manifest in vllm_artifacts:
            row = _artifact_row(store, manifest, "vllm")
            try:
                positions = vllm_positions(
                    store.local_dir(manifest), manifest.artifact_id, windows, settings, on_progress
                )
            except StepError as error:
                rows.append(row.model_copy(update={"error": f"{error.kind}: {error.message}"}))
                continue
            value = metrics.perplexity(positions)
            rows.append(
                row.model_copy(
                    update={
                        "perplexity": value,
                        "baseline_perplexity": base_ppl,
                        "perplexity_delta_pct": metrics.perplexity_delta_pct(value, base_ppl),
                        "kl_divergence": metrics.mean_topk_kl(base, positions),
                        "kl_method": f"top-{settings.top_k} + tail bucket (vLLM prompt logprobs)",
                        "top1_agreement": metrics.top1_agreement(base, positions),
                    }
                )
            )
    if gguf_artifacts or any(m.scheme == "gguf-f16" for m in artifacts):
        f16 = quantize(source, "gguf", {"type": "F16"}, store=store)
        reference = store.local_dir(f16) / (f16.main_file or "")
        paths = [store.local_dir(m) / (m.main_file or "") for m in gguf_artifacts]
        scores = llamacpp_scores(reference, paths, windows, on_progress)
        base_score = scores[str(reference)]
        rows.append(
            _artifact_row(store, f16, "llama.cpp").model_copy(
                update={"perplexity": base_score.perplexity}
            )
        )
        for manifest, path in zip(gguf_artifacts, paths, strict=True):
            score = scores[str(path)]
            rows.append(
                _artifact_row(store, manifest, "llama.cpp").model_copy(
                    update={
                        "perplexity": score.perplexity,
                        "baseline_perplexity": base_score.perplexity,
                        "perplexity_delta_pct": metrics.perplexity_delta_pct(
                            score.perplexity, base_score.perplexity
                        ),
                        "kl_divergence": score.kl_divergence,
                        "kl_method": "exact, full vocabulary (llama.cpp logits) vs F16 GGUF",
                        "top1_agreement": score.top1_agreement,
                    }
                )
            )
    notes = [
        "vLLM rows compare with the bf16 base in vLLM; llama.cpp rows with the F16 GGUF.",
    ]
    if source.dequantized_from:
        notes.insert(0, DEQUANTIZED_NOTE.format(source=source.dequantized_from))
    return QualityTable(
        model=source.name,
        model_sha256=source.content_sha256,
        eval_set=settings.eval_set_name,
        tokens_per_model=len(windows) * (settings.window_length - 1),
        notes=notes,
        rows=rows,
    )
