"""How much a scheme degrades a model: from its own results, else the closest evidence.

Evidence, best first: results for this model and scheme (measured before published; the worst
of several eval sets, since perplexity protocols differ); the same scheme on the nearest model
(same architecture family, closest size); a sibling scheme (same family and bits) on this or the
nearest model; a bits-per-weight prior. Anything but the first is ``modeled`` with a wider band
and a note naming the evidence used.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from quantplan.catalog.records import ModelRecord, QualityRecord, SchemeRecord
from quantplan.planner.plan import Estimate
from quantplan.planner.targets import ModelShape

Metric = str  # "ppl" or "kl"

# Priors by bits per weight when no evidence exists at all; deliberately pessimistic, with wide
# bands. Roughly the llama.cpp / AWQ-paper orders of magnitude for 7-13B Llama models.
_PRIOR_PPL_PCT = ((15.0, 0.0), (8.0, 0.1), (6.0, 0.5), (5.0, 1.5), (4.0, 4.0), (3.0, 12.0))
_PRIOR_KL = ((15.0, 0.0), (8.0, 0.002), (6.0, 0.006), (5.0, 0.012), (4.0, 0.04), (3.0, 0.12))
_PRIOR_FLOOR = {"ppl": 35.0, "kl": 0.5}


def _prior(metric: Metric, bits_per_weight: float) -> float:
    table = _PRIOR_PPL_PCT if metric == "ppl" else _PRIOR_KL
    for threshold, value in table:
        if bits_per_weight >= threshold:
            return value
    return _PRIOR_FLOOR[metric]


def _value(row: QualityRecord, metric: Metric) -> float | None:
    return row.perplexity_delta_pct if metric == "ppl" else row.kl_divergence


@dataclass(frozen=True)
class _Evidence:
    value: float
    basis: str
    note: str


class QualityIndex:
    """Quality rows indexed by (model, scheme); built once per plan, never mutated."""

    def __init__(
        self,
        rows: Iterable[QualityRecord],
        models: Iterable[ModelRecord],
        schemes: Iterable[SchemeRecord],
    ) -> None:
        by_pair: dict[tuple[str, str], list[QualityRecord]] = defaultdict(list)
        for row in rows:
            by_pair[(row.model, row.scheme)].append(row)
        self._by_pair = dict(by_pair)
        self._models = {m.name: m for m in models}
        self._schemes = {s.name: s for s in schemes}
        self._nearest_cache: dict[tuple[str, str, float], list[str]] = {}

    def _direct(self, model: str, scheme: str, metric: Metric) -> _Evidence | None:
        rows = self._by_pair.get((model, scheme), [])
        for basis in ("measured", "published"):
            values = [
                (value, row.source)
                for row in rows
                if row.basis == basis and (value := _value(row, metric)) is not None
            ]
            if values:
                worst, source = max(values)
                note = f"{len(values)} {basis} result(s), worst shown: {source}"
                return _Evidence(max(worst, 0.0), basis, note)
        return None

    def _nearest_models(self, shape: ModelShape) -> list[str]:
        """Other catalog models, closest first: same family, then nearest size."""

        def distance(record: ModelRecord) -> tuple[int, float]:
            size = abs(math.log(record.parameters_b / shape.parameters_b))
            return (0 if record.family == shape.family else 1, size)

        key = (shape.name, shape.family, shape.parameters_b)
        if key not in self._nearest_cache:
            others = [m for m in self._models.values() if m.name != shape.name]
            self._nearest_cache[key] = [m.name for m in sorted(others, key=distance)]
        return self._nearest_cache[key]

    def _siblings(self, scheme: SchemeRecord) -> list[str]:
        return [
            s.name
            for s in self._schemes.values()
            if s.family == scheme.family and s.bits == scheme.bits and s.name != scheme.name
        ]

    def evidence(self, shape: ModelShape, scheme: SchemeRecord, metric: Metric) -> Estimate:
        """The quality estimate for ``metric`` with its basis, band and evidence note."""
        if scheme.family == "baseline":
            return Estimate(
                value=0.0, low=0.0, high=0.0, basis="modeled", note="the 16-bit reference itself"
            )
        direct = self._direct(shape.name, scheme.name, metric)
        if direct is not None:
            width = 0.15 if direct.basis == "measured" else 0.25
            return Estimate(
                value=direct.value,
                low=direct.value * (1 - width),
                high=direct.value * (1 + width),
                basis=direct.basis,  # type: ignore[arg-type]
                note=direct.note,
            )
        nearest = self._nearest_models(shape)
        attempts: list[tuple[str, str, float]] = [(m, scheme.name, 2.0) for m in nearest]
        siblings = self._siblings(scheme)
        attempts += [(shape.name, s, 2.0) for s in siblings]
        attempts += [(m, s, 3.0) for m in nearest for s in siblings]
        for model_name, scheme_name, spread in attempts:
            found = self._direct(model_name, scheme_name, metric)
            if found is not None:
                return Estimate(
                    value=found.value,
                    low=found.value / spread,
                    high=found.value * spread,
                    basis="modeled",
                    note=f"closest evidence: {scheme_name} on {model_name} ({found.basis})",
                )
        prior = _prior(metric, scheme.bits_per_weight)
        return Estimate(
            value=prior,
            low=prior / 3,
            high=prior * 3,
            basis="modeled",
            note=f"no results for this scheme family and bits; prior for "
            f"{scheme.bits_per_weight:g} bits per weight",
        )
