"""Partial pooling of calibration classes: each class's mean shrunk toward its parent's.

Profiles calibrate the roofline by class, most specific first (the scheme's kernel on the
device, the scheme family on the device, then the device's architecture and its generation,
then the device kind: ``estimate.calibration_keys``). Taking the most specific class with
any evidence at face value lets one published point decide a whole class: a single RTX 3080
run once set the llama.cpp efficiency of every compute capability 8 GPU, A100s included,
which run llama.cpp at two thirds of that speed. Here a class's mean log ratio is shrunk
toward its parent's estimate by the evidence it has, as in a two-level normal model
estimated from the evidence itself (empirical Bayes)::

    estimate(class) = (n x mean(class) + k x estimate(parent)) / (n + k),  k = sigma2 / tau2

``sigma2`` is the spread of ratios within one device (the same device measured again, other
models and schemes), ``tau2`` how far classes of one level lie from their parents beyond what
that spread explains. Many points, or classes that truly differ, keep a class's own mean; one
point among similar classes moves little. Where the evidence cannot estimate the spreads (no
device measured twice, no class beside its parent's other evidence) nothing is shrunk; a class
whose points are all its parent's has its parent's estimate.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import numpy as np

CalibrationKey = tuple[str, ...]


class ClassRatios(dict[CalibrationKey, list[float]]):
    """Modeled-over-measured ratios per calibration class, and each class's parent (the next
    less specific class of the same profiles; roots have none)."""

    def __init__(self) -> None:
        super().__init__()
        self.parent: dict[CalibrationKey, CalibrationKey] = {}
        self.sources: dict[CalibrationKey, list[str]] = {}
        """Per class, the source of each ratio filed under it (in filing order): what a
        plan's estimate cites."""

    def add(self, chain: tuple[CalibrationKey, ...], ratio: float, source: str = "") -> None:
        """File ``ratio`` (of a profile from ``source``) under every class of ``chain`` (most
        specific first)."""
        for child, parent in pairwise(chain):
            self.parent[child] = parent
        for key in chain:
            self.setdefault(key, []).append(ratio)
            self.sources.setdefault(key, []).append(source)


def _root(key: CalibrationKey, parent: dict[CalibrationKey, CalibrationKey]) -> CalibrationKey:
    while key in parent:
        key = parent[key]
    return key


def pooled_log_means(ratios: dict[CalibrationKey, list[float]]) -> dict[CalibrationKey, float]:
    """Every class's log mean ratio shrunk toward its parent's estimate (see the module doc);
    a plain dict (no parents known) gives the classes' own log means."""
    parent = getattr(ratios, "parent", {})
    logs = {key: np.log(np.asarray(found, dtype=float)) for key, found in ratios.items() if found}
    mean = {key: float(values.mean()) for key, values in logs.items()}
    count = {key: len(values) for key, values in logs.items()}
    parents = set(parent.values())
    # Within-class spread: the finest classes (no class below them) with repeated points.
    within: dict[CalibrationKey, list[tuple[int, float]]] = defaultdict(list)
    for key, values in logs.items():
        if key not in parents and len(values) > 1:
            within[_root(key, parent)].append((len(values) - 1, float(values.var(ddof=1))))
    sigma2 = {
        root: sum(d * v for d, v in parts) / sum(d for d, _ in parts)
        for root, parts in within.items()
    }
    # Between-class spread per (root, level): children whose parent has other evidence too.
    gaps: dict[tuple[CalibrationKey, str], list[tuple[float, int]]] = defaultdict(list)
    for key in logs:
        above = parent.get(key)
        if above in logs and count[above] > count[key]:
            gaps[(_root(key, parent), key[0])].append(((mean[key] - mean[above]) ** 2, count[key]))
    tau2: dict[tuple[CalibrationKey, str], float] = {}
    for (root, level), parts in gaps.items():
        if root in sigma2:
            spread = float(np.mean([g for g, _ in parts]))
            noise = sigma2[root] * float(np.mean([1.0 / n for _, n in parts]))
            tau2[(root, level)] = max(spread - noise, 0.0)
    estimate: dict[CalibrationKey, float] = {}

    def pooled(key: CalibrationKey) -> float:
        if key in estimate:
            return estimate[key]
        above = parent.get(key)
        value = mean[key]
        if above in logs and count[above] == count[key]:
            value = pooled(above)  # the parent's evidence is this class's: nothing more known
        elif above in logs:
            root = _root(key, parent)
            between = tau2.get((root, key[0]))
            if between is not None:
                prior = pooled(above)
                if between <= 0.0:
                    value = prior
                else:
                    k = sigma2[root] / between
                    value = (count[key] * value + k * prior) / (count[key] + k)
        estimate[key] = value
        return value

    for key in logs:
        pooled(key)
    return estimate
