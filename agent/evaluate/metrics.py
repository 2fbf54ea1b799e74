"""Quality metrics from per-position next-token data (pure functions, numpy only).

vLLM returns, per position, the logprob of the actual next token and the top-k of the
next-token distribution. From two such runs (base and quantized, same token windows):

* perplexity: exp(mean negative log-likelihood of the actual tokens) -- exact;
* top-1 agreement: share of positions where both models rank the same token first -- exact,
  because the first entry of each top-k list is each model's argmax;
* KL(base || quantized): estimated on the base model's top-k support plus one bucket for the
  rest of the vocabulary. A base top-k token missing from the quantized top-k gets the
  quantized k-th probability (an upper bound on its true value), capped so the quantized
  mass stays <= 1. The estimate is labelled ``top-k`` wherever it is reported; llama.cpp
  results use the exact full-vocabulary KL instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

# Keeps log(0) out of the tail bucket when the top-k already holds (almost) all the mass.
TAIL_FLOOR = 1e-10


class Position(BaseModel):
    """One predicted position: the actual next token's logprob and the top-k distribution."""

    model_config = ConfigDict(extra="forbid")

    target_logprob: float
    top_ids: list[int]
    top_logprobs: list[float]


def perplexity(positions: Sequence[Position]) -> float:
    if not positions:
        raise ValueError("perplexity of zero positions is undefined")
    mean_nll = -sum(position.target_logprob for position in positions) / len(positions)
    return math.exp(mean_nll)


def top1_agreement(base: Sequence[Position], other: Sequence[Position]) -> float:
    _same_length(base, other)
    matches = sum(1 for b, o in zip(base, other, strict=True) if b.top_ids[:1] == o.top_ids[:1])
    return matches / len(base)


def topk_kl(base: Position, other: Position) -> float:
    """KL(base || other) on base's top-k support plus a tail bucket (see module docstring)."""
    p = np.exp(np.asarray(base.top_logprobs, dtype=np.float64))
    other_probs = dict(zip(other.top_ids, np.exp(other.top_logprobs), strict=True))
    floor = float(np.exp(min(other.top_logprobs))) if other.top_logprobs else TAIL_FLOOR
    q = np.asarray([other_probs.get(token, floor) for token in base.top_ids], dtype=np.float64)
    q_sum = q.sum()
    if q_sum > 1.0:
        q = q / q_sum * (1.0 - TAIL_FLOOR)
    p_tail = max(1.0 - float(p.sum()), TAIL_FLOOR)
    q_tail = max(1.0 - float(q.sum()), TAIL_FLOOR)
    value = float(np.sum(p * (np.log(p) - np.log(q)))) + p_tail * math.log(p_tail / q_tail)
    return max(value, 0.0)


def mean_topk_kl(base: Sequence[Position], other: Sequence[Position]) -> float:
    _same_length(base, other)
    return float(np.mean([topk_kl(b, o) for b, o in zip(base, other, strict=True)]))


def perplexity_delta_pct(value: float, baseline: float) -> float:
    return (value - baseline) / baseline * 100.0


def _same_length(base: Sequence[Position], other: Sequence[Position]) -> None:
    if len(base) != len(other):
        raise ValueError(f"runs cover {len(base)} and {len(other)} positions; they must match")
    if not base:
        raise ValueError("no positions to compare")


def layer_error_summary(rows: Sequence[dict[str, float | str]]) -> dict[str, float]:
    """Mean and worst per-layer relative error, mean MSE (the weight-reconstruction metric)."""
    if not rows:
        return {}
    relative = [float(row["relative_error"]) for row in rows]
    mse = [float(row["mse"]) for row in rows]
    return {
        "layers": float(len(rows)),
        "mean_relative_error": float(np.mean(relative)),
        "max_relative_error": float(np.max(relative)),
        "mean_mse": float(np.mean(mse)),
    }
