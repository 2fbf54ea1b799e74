"""Cost per token of what runs (per replica, node and plan) and measured vs predicted.

Pure functions over benchmark results, the plan and a catalog snapshot: no Ray, no I/O, so the
arithmetic is tested on its own. Cost per million tokens = price per hour / (tokens per second x
3,600) x 10^6, at the throughput measured at the benchmarked concurrency.

A benchmark often runs at another point than the plan's: a GPU replica planned for 64 requests
is benchmarked at `apply`'s cap of 4, with the cap's shorter prompts. Comparing the plan's figure
for 64 with a measurement at 4 would call a correct model wrong (and propose re-plans on it), so
each measurement is compared with the model's estimate for exactly what was measured, from the
catalog without this apply's own runs: the same estimate bench/prediction_accuracy.py validates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from quantplan.planner.plan import Deployment

if TYPE_CHECKING:
    from quantplan.catalog.snapshot import CatalogSnapshot


def usd_per_million(usd_per_hour: float, tokens_per_s: float) -> float | None:
    """Dollars per million tokens at a steady rate; None when nothing was produced."""
    if tokens_per_s <= 0:
        return None
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6


class ReplicaMeasurement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    replica_id: str
    node_id: str
    instance_type: str
    scheme: str
    engine: str
    usd_per_hour: float = Field(ge=0)
    concurrency: int = Field(ge=1)
    output_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float = Field(ge=0)
    ttft_p95_ms: float | None = None
    itl_p95_ms: float | None = None
    run_id: str

    @property
    def usd_per_million_output_tokens(self) -> float | None:
        return usd_per_million(self.usd_per_hour, self.output_tokens_per_s)

    @property
    def usd_per_million_tokens(self) -> float | None:
        return usd_per_million(self.usd_per_hour, self.total_tokens_per_s)


class CostLine(BaseModel):
    """Cost of a group of replicas (a node or the whole plan)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    replicas: int = Field(ge=0)
    usd_per_hour: float = Field(ge=0)
    output_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float = Field(ge=0)
    usd_per_million_output_tokens: float | None = None
    usd_per_million_tokens: float | None = None


def cost_line(key: str, replicas: list[ReplicaMeasurement]) -> CostLine:
    hourly = sum(r.usd_per_hour for r in replicas)
    output = sum(r.output_tokens_per_s for r in replicas)
    total = sum(r.total_tokens_per_s for r in replicas)
    return CostLine(
        key=key,
        replicas=len(replicas),
        usd_per_hour=hourly,
        output_tokens_per_s=output,
        total_tokens_per_s=total,
        usd_per_million_output_tokens=usd_per_million(hourly, output),
        usd_per_million_tokens=usd_per_million(hourly, total),
    )


def cost_by_node(replicas: list[ReplicaMeasurement]) -> list[CostLine]:
    groups: dict[str, list[ReplicaMeasurement]] = defaultdict(list)
    for replica in replicas:
        groups[replica.node_id].append(replica)
    return [cost_line(node, group) for node, group in sorted(groups.items())]


class PointEstimate(BaseModel):
    """The model's estimate for one benchmarked setting (its concurrency and token shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(ge=1)
    output_tokens_per_s: float = Field(gt=0)
    ttft_p95_ms: float | None = Field(default=None, ge=0)
    basis: str


def estimate_measured_point(
    run_id: str, concurrency: int, snapshot: CatalogSnapshot, exclude_runs: Collection[str]
) -> PointEstimate | None:
    """The estimate for the profile run ``run_id`` recorded at ``concurrency``, calibrated from
    every profile but those of ``exclude_runs`` (this apply's); None when that profile is not in
    ``snapshot`` or the model cannot describe its setting.

    TTFT p95 under load is the validation's (:func:`ttft_p95_under_load_ms`); at one request, the
    first-token service and one decode step."""
    from quantplan.planner.estimate import predict_profile, ttft_p95_under_load_ms

    profile = next(
        (p for p in snapshot.profiles if p.run_id == run_id and p.concurrency == concurrency),
        None,
    )
    if profile is None:
        return None
    evidence = tuple(p for p in snapshot.profiles if p.run_id not in exclude_runs)
    prediction = predict_profile(profile, snapshot, evidence)
    if prediction is None:
        return None
    loaded = profile.concurrency > 1
    return PointEstimate(
        concurrency=profile.concurrency,
        output_tokens_per_s=prediction.output_tokens_per_s,
        ttft_p95_ms=ttft_p95_under_load_ms(profile, prediction) if loaded else prediction.ttft_ms,
        basis=prediction.basis,
    )


class MetricComparison(BaseModel):
    """One predicted number next to what was measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str
    metric: str
    predicted: float
    measured: float
    error_pct: float = Field(description="(measured - predicted) / predicted x 100")
    basis: str = Field(description="Basis of the prediction: measured, modeled, ...")
    measured_concurrency: int
    predicted_concurrency: int

    @property
    def off_by(self) -> float:
        return abs(self.error_pct)


def _error_pct(predicted: float, measured: float) -> float:
    if predicted == 0:
        return 0.0 if measured == 0 else float("inf")
    return (measured - predicted) / predicted * 100.0


def compare(
    deployment: Deployment,
    replicas: list[ReplicaMeasurement],
    estimates: Mapping[str, PointEstimate] | None = None,
) -> list[MetricComparison]:
    """Throughput, TTFT p95 and $/M output tokens of one deployment, predicted vs measured.

    The measurement is the mean over the deployment's replicas at the concurrency that was
    benchmarked. The prediction is the estimate for that very point (``estimates``, by run id)
    where every replica has one; else the plan's own figure at its operating concurrency (both
    concurrencies are shown).
    """
    if not replicas:
        return []
    metrics = deployment.metrics
    n = len(replicas)
    measured_tps = sum(r.output_tokens_per_s for r in replicas) / n
    at_point = [(estimates or {}).get(r.run_id) for r in replicas]
    if all(at_point):
        points = [e for e in at_point if e is not None]
        predicted_tps = sum(e.output_tokens_per_s for e in points) / n
        ttft_points = [e.ttft_p95_ms for e in points if e.ttft_p95_ms is not None]
        predicted_ttft = sum(ttft_points) / len(ttft_points) if ttft_points else None
        tps_basis = ttft_basis = points[0].basis
        predicted_concurrency = points[0].concurrency
    else:
        predicted_tps = metrics.output_tokens_per_s.value
        predicted_ttft = metrics.ttft_p95_ms.value
        tps_basis, ttft_basis = metrics.output_tokens_per_s.basis, metrics.ttft_p95_ms.basis
        predicted_concurrency = metrics.concurrency
    rows = [("output_tokens_per_s", predicted_tps, measured_tps, tps_basis)]
    ttfts = [r.ttft_p95_ms for r in replicas if r.ttft_p95_ms is not None]
    if ttfts and predicted_ttft is not None:
        rows.append(("ttft_p95_ms", predicted_ttft, sum(ttfts) / len(ttfts), ttft_basis))
    predicted_cost = usd_per_million(deployment.usd_per_hour, predicted_tps)
    measured_cost = usd_per_million(deployment.usd_per_hour, measured_tps)
    if predicted_cost is not None and measured_cost is not None:
        rows.append(("usd_per_million_output_tokens", predicted_cost, measured_cost, tps_basis))
    return [
        MetricComparison(
            deployment=deployment.label,
            metric=metric,
            predicted=round(predicted, 4),
            measured=round(measured, 4),
            error_pct=round(_error_pct(predicted, measured), 2),
            basis=basis,
            measured_concurrency=replicas[0].concurrency,
            predicted_concurrency=predicted_concurrency,
        )
        for metric, predicted, measured, basis in rows
    ]
