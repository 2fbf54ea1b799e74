"""How much a scheme degrades a model: from its own results, else the closest evidence.

Evidence, best first: results for this model and scheme (measured before published; the worst
of several eval sets, since perplexity protocols differ); a sibling scheme (same family and
bits) on this model; the same scheme, then a sibling, on the nearest model of the same
architecture family; the same on a model of another family; a bits-per-weight prior. Anything
but the first is borrowed or modeled: it says so (:attr:`Estimate.evidence`, the source model
and scheme), gets a wider band, and a quality cap is checked against the pessimistic end of
that band (:func:`checked_value`). Which borrowing a plan may rely on at all is the targets'
``quality.evidence`` policy (:func:`policy_allows`).

Each metric is looked up on its own kind of figure only (perplexity delta, KL divergence,
task-accuracy recovery on one named benchmark): a figure of another kind is never converted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

from quantplan.catalog.records import ModelRecord, QualityRecord, SchemeRecord
from quantplan.planner.plan import Deployment, Estimate, EvidenceKind
from quantplan.planner.targets import ModelShape, QualityEvidencePolicy

Metric = Literal["ppl", "kl", "recovery"]

# Priors by bits per weight when no evidence exists at all; deliberately pessimistic, with wide
# bands. Roughly the llama.cpp / AWQ-paper orders of magnitude for 7-13B Llama models. There is
# no prior for task recovery: a benchmark score is never invented.
_PRIOR_PPL_PCT = ((15.0, 0.0), (8.0, 0.1), (6.0, 0.5), (5.0, 1.5), (4.0, 4.0), (3.0, 12.0))
_PRIOR_KL = ((15.0, 0.0), (8.0, 0.002), (6.0, 0.006), (5.0, 0.012), (4.0, 0.04), (3.0, 0.12))
_PRIOR_FLOOR = {"ppl": 35.0, "kl": 0.5}

# Band widths (relative) by evidence kind. Borrowed bands are wide on purpose: the catalog's own
# figures show Llama-3-8B losing twice what Llama-2-7B loses at the same format (Q4_K_M +2.82 %
# vs +1.42 %), so a same-family figure may be off by 2x either way.
_DIRECT_WIDTH = {"measured": 0.15, "published": 0.25}
_BORROWED_SPREAD = {"same-family": 2.0, "other-family": 3.0, "prior": 3.0}
# Recovery (a % of the baseline's score) is bounded by 100; its band is in points lost.
_RECOVERY_LOSS_SPREAD = {"same-family": 2.0, "other-family": 3.0}
# A borrowed recovery of 100 % would give a band of zero width, so a cap would trust another
# model's run to be exactly lossless. Published recoveries exceed 100 % by up to 0.22 points
# (Llama-3-8B W8A16 on OpenLLM v1: 68.69 vs 68.54), which is benchmark noise: a borrowed loss
# is taken as at least that much (rounded up) before the band is spread.
_RECOVERY_LOSS_FLOOR = 0.25
# The same for perplexity: a borrowed delta of zero or below would give a band of zero width.
# Published deltas go down to -0.42 % (Llama-2-13B INT8 W8A8, SmoothQuant, Table 7), evaluation
# noise as well; a borrowed delta's pessimistic end is spread from at least 0.5 %.
_PPL_DELTA_FLOOR = 0.5

_POLICY_ALLOWS: dict[QualityEvidencePolicy, frozenset[str]] = {
    "same-model": frozenset({"baseline", "same-model"}),
    "same-family": frozenset({"baseline", "same-model", "same-family"}),
    "any": frozenset({"baseline", "same-model", "same-family", "other-family", "prior"}),
}


def _prior(metric: Metric, bits_per_weight: float) -> float:
    table = _PRIOR_PPL_PCT if metric == "ppl" else _PRIOR_KL
    for threshold, value in table:
        if bits_per_weight >= threshold:
            return value
    return _PRIOR_FLOOR[metric]


def _value(row: QualityRecord, metric: Metric, benchmark: str | None) -> float | None:
    if metric == "ppl":
        return row.perplexity_delta_pct
    if metric == "kl":
        return row.kl_divergence
    if benchmark is None or row.eval_set.casefold() != benchmark.casefold():
        return None
    return row.recovery_pct


@dataclass(frozen=True)
class _Evidence:
    value: float
    basis: str
    note: str


def policy_allows(estimate: Estimate | None, policy: QualityEvidencePolicy) -> bool:
    """Whether ``policy`` lets a quality cap rely on ``estimate`` (None: no figure at all)."""
    if estimate is None:
        return False
    # A targets copy with the field cleared (a relaxed target) means the default policy.
    return (estimate.evidence or "same-model") in _POLICY_ALLOWS[policy or "same-family"]


def checked_value(estimate: Estimate, higher_is_better: bool = False) -> float:
    """The number a cap is checked against: the figure itself for the same model and scheme,
    else the pessimistic end of the band (borrowed or modeled figures get no benefit of doubt)."""
    if estimate.evidence in (None, "same-model", "baseline"):
        return estimate.value
    return estimate.low if higher_is_better else estimate.high


def evidence_words(estimate: Estimate | None) -> str:
    """Where a quality figure comes from, short: shown next to the number everywhere."""
    if estimate is None:
        return "no figure"
    kind = estimate.evidence
    if kind in (None, "same-model"):
        return estimate.basis
    if kind == "baseline":
        return "baseline"
    if kind == "prior":
        return "prior, no evidence"
    return f"borrowed from {estimate.evidence_scheme} on {estimate.evidence_model}"


def describe_quality(estimate: Estimate | None, unit: str = "%", digits: int = 2) -> str:
    """``+2.38% (borrowed from awq-w4a16-g128 on Llama-2-7B; up to +4.76%)`` style text."""
    if estimate is None:
        return "? (no figure)"
    sign = "+" if unit == "%" and estimate.value >= 0 else ""
    number = f"{sign}{estimate.value:.{digits}f}{unit}"
    words = evidence_words(estimate)
    if estimate.evidence in (None, "same-model", "baseline"):
        return f"{number} ({words})"
    return f"{number} ({words}; up to {sign}{estimate.high:.{digits}f}{unit})"


def fleet_quality(fleet: Sequence[Deployment]) -> str:
    """A fleet's perplexity increase: the worst deployment and the traffic-weighted mean (by
    each deployment's share of capacity), each with where its figure comes from."""
    rated = [(d, d.metrics.perplexity_increase_pct) for d in fleet]
    known = [(d, e) for d, e in rated if e is not None]
    if not known:
        return "quality unknown"
    worst_d, worst = max(known, key=lambda pair: checked_value(pair[1]))
    if len({d.scheme for d in fleet}) == 1:
        return f"perplexity {describe_quality(worst)}"
    capacity = sum(d.capacity_requests_per_s for d, _ in known) or 1.0
    weighted = sum(e.value * d.capacity_requests_per_s for d, e in known) / capacity
    unknown = len(rated) - len(known)
    text = (
        f"perplexity worst {describe_quality(worst)} ({worst_d.scheme}), traffic-weighted "
        f"+{weighted:.2f}%"
    )
    return text + (f", {unknown} deployment(s) without a figure" if unknown else "")


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

    def direct(
        self, model: str, scheme: str, metric: Metric, benchmark: str | None = None
    ) -> _Evidence | None:
        """This model's own figure for this scheme: measured before published, worst first."""
        rows = self._by_pair.get((model, scheme), [])
        for basis in ("measured", "published"):
            values = [
                (value, row.eval_set, row.source)
                for row in rows
                if row.basis == basis and (value := _value(row, metric, benchmark)) is not None
            ]
            if values:
                pick = min if metric == "recovery" else max
                worst, eval_set, source = pick(values)
                note = f"{len(values)} {basis} result(s), worst shown ({eval_set}): {source}"
                value = min(worst, 100.0) if metric == "recovery" else max(worst, 0.0)
                return _Evidence(value, basis, note)
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
            if s.family == scheme.family
            and s.bits == scheme.bits
            and s.variant == scheme.variant
            and s.name != scheme.name
        ]

    def _attempts(
        self, shape: ModelShape, scheme: SchemeRecord
    ) -> Iterable[tuple[str, str, EvidenceKind]]:
        """(model, scheme, evidence kind) to try after the model's own figure, best first."""
        siblings = self._siblings(scheme)
        for sibling in siblings:
            yield shape.name, sibling, "same-family"
        nearest = self._nearest_models(shape)
        for model in nearest:
            kind: EvidenceKind = (
                "same-family" if self._models[model].family == shape.family else "other-family"
            )
            yield model, scheme.name, kind
            for sibling in siblings:
                yield model, sibling, kind

    @overload
    def evidence(
        self,
        shape: ModelShape,
        scheme: SchemeRecord,
        metric: Literal["ppl", "kl"],
        benchmark: str | None = None,
    ) -> Estimate: ...

    @overload
    def evidence(
        self,
        shape: ModelShape,
        scheme: SchemeRecord,
        metric: Metric,
        benchmark: str | None = None,
    ) -> Estimate | None: ...

    def evidence(
        self,
        shape: ModelShape,
        scheme: SchemeRecord,
        metric: Metric,
        benchmark: str | None = None,
    ) -> Estimate | None:
        """The quality estimate for ``metric`` with its evidence, band and note; None only for
        a recovery figure nothing in the catalog gives (no benchmark score is invented)."""
        if scheme.family == "baseline":
            reference = 100.0 if metric == "recovery" else 0.0
            return Estimate(
                value=reference, low=reference, high=reference, basis="modeled",
                note="the 16-bit reference itself", evidence="baseline",
            )  # fmt: skip
        direct = self.direct(shape.name, scheme.name, metric, benchmark)
        if direct is not None:
            width = _DIRECT_WIDTH[direct.basis]
            if metric == "recovery":
                loss = 100.0 - direct.value
                low, high = 100.0 - loss * (1 + width), min(100.0, 100.0 - loss * (1 - width))
            else:
                low, high = direct.value * (1 - width), direct.value * (1 + width)
            return Estimate(
                value=direct.value, low=low, high=high,
                basis=direct.basis,
                note=direct.note, evidence="same-model",
                evidence_model=shape.name, evidence_scheme=scheme.name,
            )  # fmt: skip
        for model_name, scheme_name, kind in self._attempts(shape, scheme):
            found = self.direct(model_name, scheme_name, metric, benchmark)
            if found is None:
                continue
            if metric == "recovery":
                loss = max(100.0 - found.value, _RECOVERY_LOSS_FLOOR)
                spread = _RECOVERY_LOSS_SPREAD[kind]
                low, high = 100.0 - loss * spread, min(100.0, 100.0 - loss / spread)
            else:
                spread = _BORROWED_SPREAD[kind]
                floor = _PPL_DELTA_FLOOR if metric == "ppl" else 0.0
                low, high = found.value / spread, max(found.value, floor) * spread
            return Estimate(
                value=found.value, low=low, high=high, basis="modeled",
                note=f"borrowed ({kind}): {scheme_name} on {model_name} ({found.basis}); "
                f"{found.note}",
                evidence=kind, evidence_model=model_name, evidence_scheme=scheme_name,
            )  # fmt: skip
        if metric == "recovery":
            return None
        prior = _prior(metric, scheme.bits_per_weight)
        return Estimate(
            value=prior, low=prior / 3, high=prior * 3, basis="modeled",
            note=f"no results for this scheme family and bits on any catalog model; prior for "
            f"{scheme.bits_per_weight:g} bits per weight",
            evidence="prior",
        )  # fmt: skip
