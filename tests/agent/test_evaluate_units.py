"""Quality metric math on known inputs (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantplan.agent.evaluate.metrics import (
    Position,
    layer_error_summary,
    mean_topk_kl,
    perplexity,
    perplexity_delta_pct,
    top1_agreement,
    topk_kl,
)


def position(ids: list[int], probs: list[float], target_prob: float) -> Position:
    return Position(
        target_logprob=math.log(target_prob),
        top_ids=ids,
        top_logprobs=[math.log(p) for p in probs],
    )


def test_perplexity_of_uniform_guesses_is_the_branching_factor() -> None:
    positions = [position([1], [0.25], 0.25) for _ in range(10)]
    assert perplexity(positions) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        perplexity([])


def test_identical_distributions_have_zero_kl_and_full_agreement() -> None:
    a = [position([3, 1, 2], [0.5, 0.3, 0.1], 0.3)] * 5
    assert mean_topk_kl(a, a) == pytest.approx(0.0, abs=1e-12)
    assert top1_agreement(a, a) == 1.0


def test_topk_kl_matches_the_exact_kl_when_the_topk_covers_everything() -> None:
    p, q = np.array([0.6, 0.3, 0.1]), np.array([0.5, 0.25, 0.25])
    exact = float(np.sum(p * np.log(p / q)))
    estimate = topk_kl(position([0, 1, 2], list(p), 0.6), position([0, 1, 2], list(q), 0.5))
    assert estimate == pytest.approx(exact, rel=1e-6)


def test_topk_kl_uses_a_tail_bucket_and_never_goes_negative() -> None:
    base = position([7, 8], [0.7, 0.2], 0.7)  # 0.1 in the tail
    other = position([8, 9], [0.5, 0.3], 0.5)  # token 7 missing: gets 0.3 (k-th prob) at most
    value = topk_kl(base, other)
    q7, q8 = 0.3, 0.5
    expected = 0.7 * math.log(0.7 / q7) + 0.2 * math.log(0.2 / q8)
    expected += 0.1 * math.log(0.1 / max(1 - q7 - q8, 1e-10))
    assert value == pytest.approx(expected)
    assert value >= 0


def test_top1_agreement_counts_matching_argmax() -> None:
    base = [position([1, 2], [0.6, 0.2], 0.6), position([5, 6], [0.6, 0.2], 0.6)]
    other = [position([1, 3], [0.5, 0.2], 0.5), position([6, 5], [0.5, 0.4], 0.4)]
    assert top1_agreement(base, other) == 0.5
    with pytest.raises(ValueError, match="must match"):
        top1_agreement(base, other[:1])


def test_delta_and_layer_error_summary() -> None:
    assert perplexity_delta_pct(11.0, 10.0) == pytest.approx(10.0)
    summary = layer_error_summary(
        [
            {"layer": "a", "mse": 1.0, "relative_error": 0.1},
            {"layer": "b", "mse": 3.0, "relative_error": 0.3},
        ]
    )
    assert summary == {
        "layers": 2.0,
        "mean_relative_error": pytest.approx(0.2),
        "max_relative_error": 0.3,
        "mean_mse": 2.0,
    }
    assert layer_error_summary([]) == {}
