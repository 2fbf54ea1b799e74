"""How an engine's speed bends with concurrency, read from measured curves in the catalog.

The roofline (planner/estimate.py) batches ideally: a decode step costs the weight read until
the batch's FLOPs take over. llama.cpp does not: its quantized matmul kernels and its server
loop bend away from that line well before the compute knee (an 8B Q4_K_M on an H200 gives
9.1x its single-sequence output at 32 sequences where the roofline gives 17x;
bench/results/llamacpp_server_gpu.md). A constant efficiency cannot say so.

A *measured curve* is one setting (model, scheme, engine, hardware, token shape, run)
measured at concurrency 1 and at least one more. Its batching factor at ``b`` is the roofline's
modeled-over-measured time (measured over modeled speed) at ``b`` over the same at 1: below 1
where the engine batches worse than the roofline. Curves are averaged in log space per
(engine, device kind, scheme), per (engine, device kind, weight precision: 16-bit or
quantized) and per (engine, device kind); a candidate takes the most specific curve with
evidence and interpolates it in log(concurrency), clamped past the measured ends. With no
curve the factor is 1: the roofline's own batching, ``modeled`` (:data:`MODELED_BATCHING`).

Curves measured through the engine's HTTP server (``details: {served: true}``) and through
its own batched loop (llama-batched-bench, no HTTP) are kept apart: on an H200, llama-server
gave 27-38 % of its loop's output at 16-64 requests on the same file. A plan's replicas are
served, so it draws on served curves first and on loop curves where no served one exists
(:func:`lookup_keys`); where a setting was measured both ways, its served points pin it
(:func:`pinned_curve`), and where it was measured only the other way its points are read
through the engine's served-over-loop bend (:func:`served_over_loop`). Beyond a setting's
measured levels its pinned ratio bends as its engine's curve does (:func:`pinned_values`),
so one point at concurrency 1 no longer scales ideally to 64.

The planner applies the factor on top of the class efficiency (which is then taken from
ratios divided by their factor, so a class's points at high concurrency do not drag its
single-stream speed down), and a setting's own measurements still pin its curve exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.vocabulary import QUANTPLAN_BENCH_SOURCE, Basis, DeviceKind

CurveKey = tuple[str, ...]


@dataclass(frozen=True)
class BatchingCurve:
    """An engine's batching factor against concurrency on one device kind, with its basis."""

    key: CurveKey  # ("scheme", how, engine, kind, scheme) / ("precision", ...) / ("engine", ...)
    concurrencies: tuple[float, ...]  # increasing, starting at 1
    factors: tuple[float, ...]  # measured over roofline speed, relative to concurrency 1
    settings: int  # measured curves averaged
    basis: Basis
    source: str
    sources: tuple[str, ...] = ()  # the source of each measured curve averaged (plans cite them)

    def factor(self, concurrency: np.ndarray | float) -> np.ndarray:
        """The factor at ``concurrency`` (interpolated in log space, clamped at the ends)."""
        logs = np.log(np.asarray(concurrency, dtype=float))
        return np.exp(np.interp(logs, np.log(self.concurrencies), np.log(self.factors)))


MODELED_BATCHING = BatchingCurve(
    key=("modeled",),
    concurrencies=(1.0,),
    factors=(1.0,),
    settings=0,
    basis="modeled",
    source="no measured curve of this engine on this device kind: the roofline's own batching "
    "(decode step = max(weight and KV read, batch FLOPs), no engine knee)",
)


def precision_class(bits: float) -> str:
    """16-bit weights (dense BLAS matmuls) or quantized (the engine's own kernels)."""
    return "16-bit" if bits >= 16 else "quantized"


SERVED, ENGINE_LOOP = "served", "engine loop"
"""How a curve was measured: through the engine's HTTP server, or its own batched loop."""


def curve_keys(
    engine: str, kind: DeviceKind, scheme: str, bits: float, served: bool
) -> tuple[CurveKey, ...]:
    """The curves a setting measured this way contributes to, most specific first."""
    how = SERVED if served else ENGINE_LOOP
    return (
        ("scheme", how, engine, kind, scheme),
        ("precision", how, engine, kind, precision_class(bits)),
        ("engine", how, engine, kind),
    )


def lookup_keys(keys: tuple[CurveKey, ...]) -> tuple[CurveKey, ...]:
    """The curves a prediction draws on, best first: at each level of ``keys`` (scheme, weight
    precision, engine) the curve measured the way the prediction asks for (a plan's replicas
    are served), then the one measured the other way. Served and engine-loop curves are never
    averaged together: llama-server on an H200 gave 27-38 % of its engine loop's output at
    16-64 requests where both were measured on one file (bench/results/llamacpp_served_gap.md),
    so a mixed curve bends both predictions wrongly."""
    other = {SERVED: ENGINE_LOOP, ENGINE_LOOP: SERVED}
    return tuple(k for key in keys for k in (key, (key[0], other[key[1]], *key[2:])))


def setting_of(profile: ProfileRecord) -> tuple[object, ...]:
    """What one measured curve shares: everything but the concurrency."""
    return (
        profile.model, profile.scheme, profile.engine, profile.hardware,
        profile.hardware_count, profile.input_tokens, profile.output_tokens,
        profile.run_id or profile.source,
    )  # fmt: skip


def source_setting_of(profile: ProfileRecord) -> tuple[object, ...]:
    """A setting as its source measured it, whatever the run id of each level (a level set
    apart may carry one of its own: planner/estimate.py COLD_START)."""
    return (
        profile.model, profile.scheme, profile.engine, profile.hardware,
        profile.hardware_count, profile.input_tokens, profile.output_tokens, profile.source,
    )  # fmt: skip


@dataclass(frozen=True)
class CurvePoint:
    """One profile's modeled-over-measured ratio, with the curve keys of its setting."""

    profile: ProfileRecord
    ratio: float
    keys: tuple[CurveKey, ...]
    on_curve: bool = True  # the point says how the engine batches (see estimate._evidence)


def curve_settings(points: Iterable[CurvePoint]) -> set[tuple[object, ...]]:
    """The settings among ``points`` measured as a curve: at concurrency 1 and another."""
    levels: dict[tuple[object, ...], set[int]] = defaultdict(set)
    for point in points:
        if point.ratio > 0:
            levels[setting_of(point.profile)].add(point.profile.concurrency)
    return {setting for setting, found in levels.items() if 1 in found and len(found) > 1}


def measured_curves(points: Iterable[CurvePoint]) -> dict[CurveKey, BatchingCurve]:
    """Every curve key's averaged batching factor from the settings measured at concurrency 1
    and at least one other concurrency (repeated concurrencies of a setting are averaged)."""
    by_setting: dict[tuple[object, ...], list[CurvePoint]] = defaultdict(list)
    for point in points:
        if point.ratio > 0:
            by_setting[setting_of(point.profile)].append(point)
    logs: dict[CurveKey, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    settings: dict[CurveKey, int] = defaultdict(int)
    sources: dict[CurveKey, list[str]] = defaultdict(list)
    for found in by_setting.values():
        per_level: dict[float, list[float]] = defaultdict(list)
        for point in found:
            per_level[float(point.profile.concurrency)].append(math.log(point.ratio))
        if 1.0 not in per_level or len(per_level) < 2:
            continue
        base = float(np.mean(per_level[1.0]))
        for key in found[0].keys:
            settings[key] += 1
            sources[key].append(found[0].profile.source)
            for level, values in per_level.items():
                # ratio = modeled over measured time = measured over modeled speed
                logs[key][level].append(float(np.mean(values)) - base)
    curves = {}
    for key, levels in logs.items():
        xs = sorted(levels)
        curves[key] = BatchingCurve(
            key=key,
            concurrencies=tuple(xs),
            factors=tuple(min(1.0, math.exp(float(np.mean(levels[x])))) for x in xs),
            settings=settings[key],
            basis="measured",
            source=f"{settings[key]} measured curve(s) of {' '.join(key[2:])}, {key[1]}",
            sources=tuple(sources[key]),
        )
    return curves


def batching_curve(
    curves: dict[CurveKey, BatchingCurve], keys: tuple[CurveKey, ...]
) -> BatchingCurve:
    """The most specific measured curve among ``keys``, else :data:`MODELED_BATCHING`."""
    for key in keys:
        if key in curves:
            return curves[key]
    return MODELED_BATCHING


def is_served(profile: ProfileRecord) -> bool:
    """Whether ``profile`` was measured through the serving engine's HTTP server: its
    ``details.served``, else whether quantplan's own benchmark (always over HTTP) recorded it."""
    served = profile.details.get("served")
    if served is None:
        return profile.source == QUANTPLAN_BENCH_SOURCE
    return bool(served)


def served_over_loop(
    curves: dict[CurveKey, BatchingCurve], keys: tuple[CurveKey, ...]
) -> BatchingCurve | None:
    """How the asked way of measuring (``keys``: :func:`curve_keys` of the prediction) bends
    against the other way, at the most specific level measured both ways: the asked curve's
    factor over the other's, per concurrency (both are 1 at one request, where llama-server
    and its loop agree). None where no level has both."""
    other = {SERVED: ENGINE_LOOP, ENGINE_LOOP: SERVED}
    for key in keys:
        twin = (key[0], other[key[1]], *key[2:])
        if key in curves and twin in curves:
            asked, measured = curves[key], curves[twin]
            levels = sorted(set(asked.concurrencies) | set(measured.concurrencies))
            ratios = asked.factor(np.array(levels)) / measured.factor(np.array(levels))
            return BatchingCurve(
                key=("conversion", *key[1:]),
                concurrencies=tuple(levels),
                factors=tuple(float(r) for r in ratios),
                settings=min(asked.settings, measured.settings),
                basis="measured",
                source=f"{asked.source} over {measured.source}",
            )
    return None


def pinned_curve(
    points: Iterable[tuple[float, float, bool]],
    served: bool = True,
    conversion: BatchingCurve | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One setting's (concurrency, ratio, served) points as the curve that pins it: the points
    measured the way the prediction asks (a plan's replicas: served) where there are any,
    repeated concurrencies averaged in log space. A setting measured only the other way is
    read through ``conversion`` (:func:`served_over_loop`) where one is known: an 8B GGUF
    measured in llama-batched-bench alone would otherwise pin its served replicas at 2-3x what
    llama-server gives. Returns log concurrencies (increasing), ratios, and the concurrencies
    themselves."""
    found = list(points)
    if any(how == served for _, _, how in found):
        found = [p for p in found if p[2] == served]
    elif conversion is not None:
        found = [(c, r * float(conversion.factor(c)), how) for c, r, how in found]
    per_level: dict[float, list[float]] = defaultdict(list)
    for concurrency, ratio, _ in found:
        per_level[concurrency].append(math.log(ratio))
    levels = np.array(sorted(per_level), dtype=float)
    ratios = np.array([math.exp(float(np.mean(per_level[x]))) for x in levels])
    return np.log(levels), ratios, levels


def pinned_values(
    xs: np.ndarray, ys: np.ndarray, concurrency: np.ndarray, curve: BatchingCurve
) -> np.ndarray:
    """A pinned curve's ratios at ``concurrency``: interpolated between the measured levels,
    and beyond them the nearest level's ratio bent as ``curve`` bends from that level on. A
    setting measured at one request alone thus batches as its engine does, not ideally."""
    logs = np.log(np.asarray(concurrency, dtype=float))
    edge = np.exp(np.clip(logs, xs[0], xs[-1]))
    # Ratios are multiplicative, so between two levels they move geometrically: a setting whose
    # throughput stays flat while the roofline's grows 16x from 4 to 64 requests has a ratio 10x
    # apart there, and a straight line through the two would put 16 requests at half of that.
    between = np.exp(np.interp(logs, xs, np.log(ys)))
    return between * curve.factor(np.exp(logs)) / curve.factor(edge)
