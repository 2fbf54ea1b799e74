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

Where a setting was measured both through the server (HTTP, ``details: {served: true}``) and
through the engine's own loop (llama-batched-bench, no HTTP), the served points pin its curve:
the planner sizes replicas as they are served (:func:`pinned_curve`).

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
from quantplan.catalog.vocabulary import Basis, DeviceKind

CurveKey = tuple[str, ...]


@dataclass(frozen=True)
class BatchingCurve:
    """An engine's batching factor against concurrency on one device kind, with its basis."""

    key: CurveKey  # ("scheme", engine, kind, scheme) / ("precision", ...) / ("engine", ...)
    concurrencies: tuple[float, ...]  # increasing, starting at 1
    factors: tuple[float, ...]  # measured over roofline speed, relative to concurrency 1
    settings: int  # measured curves averaged
    basis: Basis
    source: str

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


def curve_keys(engine: str, kind: DeviceKind, scheme: str, bits: float) -> tuple[CurveKey, ...]:
    """The curves a setting contributes to and a candidate draws on, most specific first."""
    return (
        ("scheme", engine, kind, scheme),
        ("precision", engine, kind, precision_class(bits)),
        ("engine", engine, kind),
    )


def setting_of(profile: ProfileRecord) -> tuple[object, ...]:
    """What one measured curve shares: everything but the concurrency."""
    return (
        profile.model, profile.scheme, profile.engine, profile.hardware,
        profile.hardware_count, profile.input_tokens, profile.output_tokens,
        profile.run_id or profile.source,
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
    for found in by_setting.values():
        per_level: dict[float, list[float]] = defaultdict(list)
        for point in found:
            per_level[float(point.profile.concurrency)].append(math.log(point.ratio))
        if 1.0 not in per_level or len(per_level) < 2:
            continue
        base = float(np.mean(per_level[1.0]))
        for key in found[0].keys:
            settings[key] += 1
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
            source=f"{settings[key]} measured curve(s) of {' '.join(key[1:])}",
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
    """Whether ``profile`` was measured through the serving engine's HTTP server."""
    return bool(profile.details.get("served"))


def pinned_curve(
    points: Iterable[tuple[float, float, bool]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One setting's (concurrency, ratio, served) points as the curve that pins it: the served
    points where there are any, repeated concurrencies averaged in log space. Returns log
    concurrencies (increasing), ratios, and the concurrencies themselves."""
    found = list(points)
    if any(served for _, _, served in found):
        found = [p for p in found if p[2]]
    per_level: dict[float, list[float]] = defaultdict(list)
    for concurrency, ratio, _ in found:
        per_level[concurrency].append(math.log(ratio))
    levels = np.array(sorted(per_level), dtype=float)
    ratios = np.array([math.exp(float(np.mean(per_level[x]))) for x in levels])
    return np.log(levels), ratios, levels
