"""Cost per token of what runs (per replica, node and plan) and measured vs predicted.

Pure functions over benchmark results and the plan: no Ray, no I/O, so the arithmetic is tested
on its own. Cost per million tokens = price per hour / (tokens per second x 3,600) x 10^6, at the
throughput measured at the benchmarked concurrency.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, ConfigDict, Field

from quantplan.planner.plan import Deployment


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


def compare(deployment: Deployment, replicas: list[ReplicaMeasurement]) -> list[MetricComparison]:
    """Throughput, TTFT p95 and $/M output tokens of one deployment, predicted vs measured.

    The prediction is per replica at the plan's operating concurrency; the measurement is the
    mean over the deployment's replicas at the concurrency that was benchmarked (both shown).
    """
    if not replicas:
        return []
    metrics = deployment.metrics
    n = len(replicas)
    measured_tps = sum(r.output_tokens_per_s for r in replicas) / n
    rows = [
        (
            "output_tokens_per_s",
            metrics.output_tokens_per_s.value,
            measured_tps,
            metrics.output_tokens_per_s.basis,
        ),
    ]
    ttfts = [r.ttft_p95_ms for r in replicas if r.ttft_p95_ms is not None]
    if ttfts:
        rows.append(
            (
                "ttft_p95_ms",
                metrics.ttft_p95_ms.value,
                sum(ttfts) / len(ttfts),
                metrics.ttft_p95_ms.basis,
            )
        )
    predicted_cost = usd_per_million(deployment.usd_per_hour, metrics.output_tokens_per_s.value)
    measured_cost = usd_per_million(deployment.usd_per_hour, measured_tps)
    if predicted_cost is not None and measured_cost is not None:
        rows.append(
            (
                "usd_per_million_output_tokens",
                predicted_cost,
                measured_cost,
                metrics.output_tokens_per_s.basis,
            )
        )
    return [
        MetricComparison(
            deployment=deployment.label,
            metric=metric,
            predicted=round(predicted, 4),
            measured=round(measured, 4),
            error_pct=round(_error_pct(predicted, measured), 2),
            basis=basis,
            measured_concurrency=replicas[0].concurrency,
            predicted_concurrency=metrics.concurrency,
        )
        for metric, predicted, measured, basis in rows
    ]
