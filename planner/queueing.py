"""Time to first token under load: waiting for prefill capacity, then the prefill itself.

A continuous-batching engine (vLLM, SGLang, llama.cpp's server with free slots) starts a new
request's prefill at the next engine step, in the same step as the running decodes (chunked
prefill), so a request's first token comes after

* the wait for the prefills queued ahead of it: an M/G/1 queue whose server is the replica's
  prefill capacity, with Poisson arrivals at the planned rate. The mean wait is
  Pollaczek-Khinchine's ``rho s (1 + cv^2) / (2 (1 - rho))`` (``s`` the prefill time, ``cv^2``
  its squared coefficient of variation, ``rho = rate x s``); its tail is taken exponential with
  ``P(wait > 0) = rho`` (exact for M/M/1, the usual heavy-traffic approximation otherwise), so
  the p95 wait is ``s (1 + cv^2) / (2 (1 - rho)) x ln(rho / 0.05)`` and zero while
  ``rho <= 0.05``. A workload of one fixed prompt length has ``cv^2 = 0`` (M/D/1): half the
  M/M/1 wait, which assumed exponential prefill times. A benchmark's closed loop of ``c``
  clients with one prompt and one output length is not Poisson: its requests start together
  and, all taking the same time, stay in step, so each round is a burst of ``c`` prompts and
  the p95 request waits for the ``0.95 c - 1`` prefills ahead of it in that burst.
* its own prefill, at the p95 prompt length where the workload gives a spread (prefill time
  taken proportional to prompt tokens);
* one decode step: the step in progress when it arrives, and the running decodes that share the
  prefill's step (interference).

The three p95s are added, which bounds the p95 of the sum from above.

The running decodes pay for the same prefills: with prefills interleaved into the batch, a
share ``rate x prefill`` of the replica's time goes to them, so the mean gap between a
sequence's tokens is the decode step over ``1 - rate x prefill`` (the time sharing behind the
saturated throughput ``1 / (prefill + output x step / batch)``).
"""

from __future__ import annotations

import numpy as np

TAIL = 0.05
"""1 - the percentile reported (p95)."""
MAX_UTILIZATION = 0.999
"""Prefill utilization is clipped here: at or past 1 the queue grows without bound."""


def burst_services_to_p95(clients: np.ndarray | float) -> np.ndarray:
    """Services a closed loop's p95 request waits for before its first token, its own
    included: a burst of ``clients`` prompts in step, ``ceil(0.95 c)`` of them (see the
    module)."""
    return np.maximum(np.ceil((1.0 - TAIL) * np.asarray(clients, dtype=float)), 1.0)


def p95_prefill_wait_s(
    prefill_s: np.ndarray | float,
    rate: np.ndarray | float,
    service_cv2: np.ndarray | float = 0.0,
    clients: np.ndarray | float | None = None,
) -> np.ndarray:
    """p95 wait before a request's prefill starts (M/G/1, exponential tail; see the module).

    ``rate``: arrivals per second at one replica; ``service_cv2``: squared coefficient of
    variation of the prefill time (0: one prompt length); ``clients``: a benchmark's closed
    loop of that many clients in step (see the module): the wait is the burst's prefills ahead
    of the p95 request, whatever the rate.
    """
    service = np.asarray(prefill_s, dtype=float)
    if clients is not None:
        return np.asarray((burst_services_to_p95(clients) - 1.0) * service)
    rho = np.minimum(np.asarray(rate, dtype=float) * service, MAX_UTILIZATION)
    conditional_mean = service * (1.0 + np.asarray(service_cv2)) / (2.0 * (1.0 - rho))
    wait = conditional_mean * np.log(np.maximum(rho / TAIL, 1.0))
    return np.asarray(wait)


def p95_ttft_s(
    prefill_s: np.ndarray | float,
    decode_s: np.ndarray | float,
    rate: np.ndarray | float,
    *,
    prompt_p95_over_mean: float = 1.0,
    prompt_cv: float = 0.0,
    clients: np.ndarray | float | None = None,
) -> np.ndarray:
    """p95 TTFT (seconds): queue wait + own prefill + one decode step (see the module).

    ``prefill_s`` is the prefill of the mean prompt; ``prompt_p95_over_mean`` and ``prompt_cv``
    describe the prompt-length spread when the workload gives one (defaults: one length).
    """
    service = np.asarray(prefill_s, dtype=float)
    wait = p95_prefill_wait_s(service, rate, prompt_cv**2, clients)
    return np.asarray(wait + service * prompt_p95_over_mean + np.asarray(decode_s))


def itl_under_load_s(
    decode_s: np.ndarray | float, prefill_s: np.ndarray | float, rate: np.ndarray | float
) -> np.ndarray:
    """Mean inter-token gap (seconds) at ``rate``: the decode step stretched by the prefills
    interleaved into the running batch (see the module)."""
    rho = np.minimum(np.asarray(rate, dtype=float) * np.asarray(prefill_s), MAX_UTILIZATION)
    return np.asarray(np.asarray(decode_s) / (1.0 - rho))
