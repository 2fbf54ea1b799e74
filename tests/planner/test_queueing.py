"""The TTFT-under-load terms of planner/queueing.py against closed-form queueing results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantplan.planner.estimate import CONCURRENCY_GRID
from quantplan.planner.operating import _search, p95_itl_ms, p95_ttft_ms
from quantplan.planner.queueing import itl_under_load_s, p95_prefill_wait_s, p95_ttft_s
from quantplan.planner.targets import Slos, Workload


def test_no_wait_while_the_prefill_queue_is_nearly_idle() -> None:
    # rho = 0.04 <= 0.05: a request finds the prefill capacity free at least 95 % of the time.
    assert float(p95_prefill_wait_s(0.02, 2.0)) == 0.0


def test_exponential_prefill_times_give_the_exact_mm1_p95_wait() -> None:
    # M/M/1: P(W > t) = rho exp(-(mu - lambda) t), so p95 = ln(20 rho) / (mu - lambda).
    service, rate = 0.1, 6.0
    rho = rate * service
    exact = math.log(rho / 0.05) / (1 / service - rate)
    assert float(p95_prefill_wait_s(service, rate, service_cv2=1.0)) == pytest.approx(exact)


def test_one_prompt_length_waits_half_as_long_as_exponential_prefills() -> None:
    # Pollaczek-Khinchine: the mean wait scales with (1 + cv^2) / 2; M/D/1 is half of M/M/1.
    deterministic = float(p95_prefill_wait_s(0.1, 6.0))
    exponential = float(p95_prefill_wait_s(0.1, 6.0, service_cv2=1.0))
    assert deterministic == pytest.approx(exponential / 2)
    # its mean (P(wait > 0) x the conditional mean) is P-K's rho s / (2 (1 - rho))
    assert 0.6 * deterministic / math.log(12) == pytest.approx(0.6 * 0.1 / (2 * 0.4))


def test_wait_grows_with_load_and_without_bound_near_saturation() -> None:
    rates = np.array([1.0, 3.0, 6.0, 9.0, 9.9])
    waits = p95_prefill_wait_s(0.1, rates)
    assert np.all(np.diff(waits) > 0)
    assert waits[-1] > 50 * 0.1


def test_a_closed_loop_in_step_waits_for_its_burst() -> None:
    """A benchmark's clients start together and stay in step: the p95 request of a burst of
    ``c`` waits for the ``ceil(0.95 c) - 1`` prefills ahead of it, at any rate."""
    assert float(p95_prefill_wait_s(0.1, 9.9, clients=4)) == pytest.approx(0.3)
    assert float(p95_prefill_wait_s(0.1, 9.9, clients=1)) == 0.0
    assert float(p95_prefill_wait_s(0.01, 0.5, clients=64)) == pytest.approx(0.6)  # 61 - 1
    assert float(p95_prefill_wait_s(0.01, 0.5)) == 0.0  # the same rate as Poisson arrivals


def test_ttft_adds_wait_own_prefill_and_one_step() -> None:
    wait = float(p95_prefill_wait_s(0.03, 8.0))
    assert float(p95_ttft_s(0.03, 0.02, 8.0)) == pytest.approx(wait + 0.03 + 0.02)
    assert float(p95_ttft_ms(np.array(0.03), np.array(0.02), np.array(8.0))) == pytest.approx(
        1000 * (wait + 0.05)
    )


def test_a_prompt_length_spread_lengthens_both_the_prefill_and_the_queue() -> None:
    fixed = float(p95_ttft_s(0.03, 0.02, 8.0))
    spread = float(p95_ttft_s(0.03, 0.02, 8.0, prompt_p95_over_mean=3.0, prompt_cv=1.0))
    wait = float(p95_prefill_wait_s(0.03, 8.0, service_cv2=1.0))
    assert spread == pytest.approx(wait + 0.09 + 0.02)
    assert spread > fixed


def test_interleaved_prefills_stretch_the_inter_token_gap() -> None:
    # A quarter of the replica's time on prefills leaves 3/4 for decode steps.
    assert float(itl_under_load_s(0.012, 0.05, 5.0)) == pytest.approx(0.012 / 0.75)
    assert float(itl_under_load_s(0.012, 0.05, 0.0)) == pytest.approx(0.012)


def _one_cell(
    prefill_s: float, step_s: float, slos: Slos, overhead_s: float = 0.0
) -> tuple[np.ndarray, ...]:
    k = len(CONCURRENCY_GRID)
    ones = np.ones((1, k))
    return _search(
        np.full((1, k), step_s),
        np.array([prefill_s]),
        np.array([prefill_s + overhead_s]),  # what a request holds before its first token
        np.array([int(CONCURRENCY_GRID[-1])]),
        Workload(requests_per_s=1, output_tokens=100),
        slos,
        (ones, ones, ones),
    )


def test_an_itl_objective_loads_a_replica_less_when_prefills_interleave() -> None:
    # Unloaded, p95 ITL is 1.2 x 10 ms = 12 ms, inside 20 ms at any concurrency; at 85 % load
    # with long prefills (0.5 s against 100 x 10 ms / batch of decoding) most of the replica's
    # time goes to prefills and the gap stretches past 20 ms, so a lower load is chosen.
    rate, _, _, _, itl, _, lowest_itl = _one_cell(0.5, 0.01, Slos(itl_p95_ms=20))
    free_rate, *_ = _one_cell(0.5, 0.01, Slos())
    assert 0 < rate[0] < free_rate[0]
    assert itl[0] <= 20
    assert float(p95_itl_ms(np.array(0.5), np.array(0.01), rate)[0]) == pytest.approx(itl[0])
    assert rate[0] * 0.5 <= 1 - 12 / 20 + 1e-9  # prefill share at most 40 %
    assert lowest_itl[0] < itl[0]


@pytest.mark.parametrize("rho", [0.2, 0.5, 0.85])
def test_the_md1_p95_wait_is_close_to_a_simulated_queue(rho: float) -> None:
    # Lindley's recursion over Poisson arrivals and fixed prefill times (one prompt length).
    rng = np.random.default_rng(7)
    gaps = rng.exponential(1 / rho, 100_000)  # service time 1
    waits = np.zeros(gaps.size)
    for i in range(1, gaps.size):
        waits[i] = max(0.0, waits[i - 1] + 1.0 - gaps[i])
    simulated = float(np.percentile(waits[1000:], 95))
    assert float(p95_prefill_wait_s(1.0, rho)) == pytest.approx(simulated, rel=0.25)


def test_a_request_overhead_queues_like_the_prefill_for_ttft_only() -> None:
    # 20 ms of server time per request before its first token (llama-server on an H200 spends
    # 15-30 ms) on a 10 ms prefill: TTFT's queue is served in 30 ms, so a 100 ms p95 TTFT
    # allows less load; the running decodes' gaps do not change.
    plain = _one_cell(0.01, 0.01, Slos(ttft_p95_ms=100))
    loaded = _one_cell(0.01, 0.01, Slos(ttft_p95_ms=100), overhead_s=0.02)
    assert 0 < loaded[0][0] < plain[0][0]
    assert loaded[3][0] <= 100
    assert float(p95_ttft_ms(np.array(0.03), np.array(0.01), loaded[0])[0]) == pytest.approx(
        loaded[3][0]
    )
    assert loaded[5][0] == pytest.approx(plain[5][0] + 20)  # unloaded TTFT: + the overhead
    assert loaded[6][0] == pytest.approx(plain[6][0])  # lowest ITL: unchanged
