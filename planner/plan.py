"""The Plan: the planner's decision, and the contract the agent applies later.

A plan file (YAML or JSON) holds the targets it answers, whether they can be met, the chosen
deployment with every predicted number's basis and uncertainty band, the alternatives, the
rejected options with the reason each lost, and -- when nothing fits -- which constraint binds
and the nearest plans that relax it. ``fleet`` is what to deploy: one entry for a single
instance type, several for a mixed fleet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from quantplan import __version__
from quantplan.errors import QuantplanError, shorten
from quantplan.planner.targets import StrictModel, Targets

SCHEMA_VERSION: Final = 2
"""Bumped on any incompatible change to the plan file. 2 added ``provenance``."""
READABLE_SCHEMA_VERSIONS = (1, 2)
"""Versions :func:`load_plan` still reads; older ones are brought up to date as they load."""

EstimateBasis = Literal["measured", "interpolated", "modeled", "published"]
EvidenceKind = Literal["baseline", "same-model", "same-family", "other-family", "prior"]
"""What a quality figure rests on: the model's own result, one borrowed from a model of the same
(or another) architecture family or a sibling scheme, or a bits-per-weight prior."""
Pricing = Literal["on_demand", "spot"]
RejectionStage = Literal[
    "constraints",
    "compatibility",
    "memory",
    "slo",
    "quality",
    "replicas",
    "budget",
    "cost",
]


class PlanModel(StrictModel):
    """Base of the plan's models. A NaN or infinite number in a plan file is refused: every
    number in a plan is a finite prediction, and NaN would slip through every ``ge``/``le``."""

    model_config = ConfigDict(allow_inf_nan=False)


class Estimate(PlanModel):
    """A predicted number with where it comes from and how far off it may be."""

    value: float = Field(description="Best estimate")
    low: float = Field(description="Lower end of the uncertainty band")
    high: float = Field(description="Upper end of the uncertainty band")
    basis: EstimateBasis = Field(
        description="measured (same model/scheme/engine/hardware at this concurrency), "
        "interpolated (between measured concurrencies), modeled (roofline or closest "
        "evidence), published (a cited third-party figure)"
    )
    note: str = Field(default="", description="What the estimate rests on, in words")
    evidence: EvidenceKind | None = Field(
        default=None, description="Quality figures only: what the figure rests on"
    )
    evidence_model: str | None = Field(
        default=None, description="Quality figures only: the model the figure was measured on"
    )
    evidence_scheme: str | None = Field(
        default=None, description="Quality figures only: the scheme the figure was measured with"
    )


class SpotFallback(PlanModel):
    """A spot line's interruption risk and what replaces an interrupted replica."""

    listed_usd_per_hour: float = Field(ge=0, description="The catalog's spot price per hour")
    fallback: str = Field(description="What replaces an interrupted spot replica")
    monthly_interruption_rate: Estimate = Field(
        description="Share of spot instances of this type interrupted in a month; the value "
        "is the band's high edge, which the plan prices"
    )
    fallback_share: Estimate = Field(
        description="Expected share of the month a replica runs on its on-demand stand-in "
        "(it serves until the plan is applied again)"
    )
    interruptions_per_month: float = Field(
        ge=0, description="Expected interruptions a month across the line's instances (high edge)"
    )


class InstanceRef(PlanModel):
    """One rentable machine type in one place."""

    cloud: str = Field(description="Cloud provider, e.g. aws")
    name: str = Field(description="Instance type, e.g. g6.xlarge")
    region: str = Field(description="Region, e.g. us-east-1")

    def __str__(self) -> str:
        return f"{self.cloud}/{self.name}/{self.region}"


class PredictedMetrics(PlanModel):
    """What one replica is predicted to do at the plan's peak operating point."""

    ttft_p95_ms: Estimate = Field(description="p95 time to first token at peak load")
    itl_p95_ms: Estimate = Field(description="p95 inter-token latency at peak load")
    output_tokens_per_s: Estimate = Field(
        description="Output tokens/s one replica sustains at its operating concurrency"
    )
    requests_per_s: Estimate = Field(description="Requests/s one replica carries inside SLOs")
    speed_evidence: str = Field(
        default="",
        description="The profiles the four speed estimates rest on, with their sources: the "
        "setting's own runs where the catalog has them, else the calibration class whose "
        "efficiency it takes, and the measured batching curve it bends by. Empty: no profile "
        "(default efficiencies, the roofline's own batching)",
    )
    concurrency: int = Field(ge=1, description="Sequences in flight per replica at peak")
    memory_gb: float = Field(ge=0, description="Weights + KV cache + runtime overhead, per replica")
    memory_capacity_gb: float = Field(ge=0, description="Usable memory of one replica")
    perplexity_increase_pct: Estimate | None = Field(
        default=None, description="Perplexity increase over the 16-bit baseline, in %"
    )
    kl_divergence: Estimate | None = Field(
        default=None, description="Mean KL divergence against the 16-bit baseline"
    )
    recovery_pct: Estimate | None = Field(
        default=None,
        description="Task-accuracy recovery (% of the baseline's score) on the targets' "
        "recovery benchmark; None when no benchmark was asked for or no figure exists",
    )


class Deployment(PlanModel):
    """One way to serve the model: scheme + engine on N replicas of one instance type."""

    model: str = Field(description="Model name")
    method: str = Field(description="Quantization family: baseline, gptq, awq or gguf")
    scheme: str = Field(description="Catalog scheme name, e.g. gptq-w4a16-g128")
    engine: str = Field(description="Serving engine: vllm or llama.cpp")
    instance: InstanceRef = Field(description="Instance type to rent")
    hardware: str = Field(description="GPU or CPU family of the instance")
    accelerator_count: int = Field(ge=0, description="GPUs per replica (0 = CPU)")
    gpu_layers: int | None = Field(
        default=None,
        ge=1,
        description="Partial GPU offload (llama.cpp -ngl): the model's first N layers run on the "
        "replica's GPUs, the rest on the host CPU, because the whole model and its KV cache do "
        "not fit GPU memory. None: every layer on the GPU, or not applicable (CPU, vLLM)",
    )
    total_layers: int | None = Field(
        default=None, ge=1, description="The model's layers, given with gpu_layers (else None)"
    )
    pricing: Pricing = Field(description="on_demand or spot capacity")
    replicas: int = Field(ge=1, description="Replicas (engine servers) to run")
    min_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Replicas the mean load needs (its share of it, in a mixed fleet): the floor "
        "a fleet that scales with its load may go down to; ``replicas`` (sized for the peak) is "
        "the ceiling, and ``metrics.concurrency`` the target load per replica. None: plans "
        "before 0.x, which run ``replicas`` throughout",
    )
    floor_usd_per_month: float | None = Field(
        default=None,
        ge=0,
        description="The instances ``min_replicas`` need, per month: the line at its floor all "
        "month (None: plans without a floor)",
    )
    expected_usd_per_month: float | None = Field(
        default=None,
        ge=0,
        description="Per month, scaling with the load over workload.daily_shape: each hour the "
        "replicas that hour's share of the load needs, between min_replicas and replicas "
        "(None: no daily shape given)",
    )
    instances: int = Field(ge=1, description="Instances to rent for them")
    replicas_per_instance: int = Field(
        default=1, ge=1, description="Replicas side by side on one instance (GPU subsets)"
    )
    usd_per_hour: float = Field(
        ge=0,
        description="Price of one instance per hour (spot: expected, its on-demand fallback "
        "counted; the listed price is in spot.listed_usd_per_hour)",
    )
    spot: SpotFallback | None = Field(
        default=None, description="Spot lines: interruption risk and fallback (None: on-demand)"
    )
    price_date: str | None = Field(
        default=None, description="Date the instance's price was true (None: unknown)"
    )
    price_source: str | None = Field(
        default=None, description="Where the instance's price comes from (None: plans before 0.x)"
    )
    usd_per_month: float = Field(ge=0, description="All instances, per month (730 h)")
    usd_per_million_tokens: float = Field(
        ge=0, description="Monthly cost over monthly counted tokens at the mean rate"
    )
    on_demand_usd_per_month: float = Field(
        ge=0, description="The same replicas at on-demand prices, per month"
    )
    spot_usd_per_month: float | None = Field(
        default=None,
        ge=0,
        description="The same replicas on spot, their on-demand fallback counted (None: no "
        "spot price)",
    )
    capacity_requests_per_s: float = Field(
        ge=0,
        description="Requests/s all replicas carry inside the SLOs, counted at the low edge of "
        "the band at the targets' confidence (what the fleet was sized with)",
    )
    metrics: PredictedMetrics = Field(description="Per-replica predictions with basis and band")

    @model_validator(mode="before")
    @classmethod
    def _fill_fields_added_in_version_1(cls, data: Any) -> Any:
        """Plan files written before ``instances`` and the on-demand cost existed still load:
        then every replica had an instance of its own."""
        if isinstance(data, dict):
            data = dict(data)
            per_instance = data.get("replicas_per_instance", 1) or 1
            if "instances" not in data and "replicas" in data:
                data["instances"] = -(-int(data["replicas"]) // int(per_instance))
            if "on_demand_usd_per_month" not in data and data.get("pricing") == "on_demand":
                data["on_demand_usd_per_month"] = data.get("usd_per_month")
        return data

    @property
    def label(self) -> str:
        where = f"{self.instance.name} x{self.instances}"
        if self.replicas_per_instance > 1:
            where += f" ({self.replicas} replicas of {self.accelerator_count} GPU each)"
        return f"{self.scheme} ({self.engine}) on {where}"


class Rejection(PlanModel):
    """Why a family (or one option of it) was not chosen."""

    family: str = Field(description="Quantization family that lost")
    stage: RejectionStage = Field(description="The first requirement its best option failed")
    reason: str = Field(description="The reason, in words, with the numbers that decided it")
    scheme: str | None = Field(default=None, description="Scheme of its closest option")
    engine: str | None = Field(default=None, description="Engine of its closest option")
    instance: InstanceRef | None = Field(default=None, description="Instance of its closest one")
    cost_ratio: float | None = Field(
        default=None, description="Its cheapest feasible cost over the choice's, when it had one"
    )


class BindingConstraint(PlanModel):
    """A target that decides the outcome: dropping it would give a cheaper (or any) plan."""

    constraint: str = Field(description="Dotted target path, e.g. slos.ttft_p95_ms")
    detail: str = Field(description="What it rules out, in words")
    usd_per_month_without: float | None = Field(
        default=None, description="Cheapest fleet $/month if this target were dropped"
    )


class Relaxation(PlanModel):
    """A nearby plan that becomes feasible when one target is relaxed."""

    constraint: str = Field(description="Dotted target path to relax")
    current: str = Field(description="The target's value now")
    needed: str = Field(description="The value the relaxed plan needs")
    deployment: Deployment = Field(description="The cheapest plan under the relaxed target")


class PlanProvenance(PlanModel):
    """What a plan was made with, so a plan read weeks later says how old its inputs were."""

    quantplan_version: str = Field(min_length=1, description="quantplan release that made it")
    catalog_revision: str | None = Field(
        default=None,
        description="Schema (Alembic) revision of the catalog database; None when the plan was "
        "made from a snapshot without a database",
    )
    catalog_fingerprint: str = Field(
        pattern=r"^[0-9a-f]{16}$",
        description="First 16 hex digits of the sha256 of the catalog snapshot's content: "
        "equal fingerprints, equal catalogs",
    )
    oldest_price_date: str | None = Field(
        default=None, description="Oldest price date of the fleet's instances (None: unknown)"
    )
    newest_price_date: str | None = Field(
        default=None, description="Newest price date of the fleet's instances (None: unknown)"
    )
    undated_prices: tuple[str, ...] = Field(
        default=(), description="Fleet instances (cloud/name/region) whose price has no date"
    )

    @property
    def price_dates(self) -> str:
        """The prices' dates in words."""
        if self.oldest_price_date is None:
            return "prices of unknown date (the catalog records none for these instances)"
        dated = (
            f"prices of {self.oldest_price_date}"
            if self.oldest_price_date == self.newest_price_date
            else f"prices from {self.oldest_price_date} to {self.newest_price_date}"
        )
        if self.undated_prices:
            dated += f" ({len(self.undated_prices)} instance(s) without a date)"
        return dated


class Plan(PlanModel):
    """The planner's answer for one set of targets."""

    schema_version: Literal[2] = Field(default=SCHEMA_VERSION, description="Plan file version")
    provenance: PlanProvenance | None = Field(
        default=None,
        description="quantplan version, catalog revision and price dates the plan was made "
        "with (None: a plan file from before plans recorded them)",
    )
    targets: Targets = Field(description="The targets this plan answers")
    model: str = Field(description="Model the plan is for")
    feasible: bool = Field(description="Whether every target can be met")
    summary: str = Field(description="One paragraph: the decision or why there is none")
    choice: Deployment | None = Field(
        default=None, description="Cheapest single-type deployment meeting every target"
    )
    fleet: tuple[Deployment, ...] = Field(
        default=(), description="What to deploy: [choice], or a cheaper mixed fleet"
    )
    fleet_usd_per_month: float | None = Field(default=None, description="$/month of the fleet")
    alternatives: tuple[Deployment, ...] = Field(
        default=(), description="Next-best feasible deployments (best of other families first)"
    )
    pareto_front: tuple[Deployment, ...] = Field(
        default=(), description="Feasible deployments not beaten on cost, quality and TTFT"
    )
    rejected: tuple[Rejection, ...] = Field(default=(), description="Why other options lost")
    binding_constraints: tuple[BindingConstraint, ...] = Field(
        default=(), description="Targets that decide the outcome"
    )
    relaxations: tuple[Relaxation, ...] = Field(
        default=(), description="Nearest plans when one target is relaxed (infeasible plans)"
    )
    assumptions: tuple[str, ...] = Field(
        default=(), description="Modelling assumptions the numbers rest on"
    )
    assumed: tuple[str, ...] = Field(
        default=(),
        description="Targets left at their defaults: the value used and the flag that sets it",
    )
    candidates_evaluated: int = Field(
        default=0, ge=0, description="(scheme, engine, instance, pricing) options looked at"
    )


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write a plan as JSON (``.json``) or YAML (anything else); returns the path."""
    import json

    from quantplan.inputs import dump_yaml

    file = Path(path)
    data = plan.model_dump(mode="json")
    if file.suffix.lower() == ".json":
        file.write_text(json.dumps(data, indent=2) + "\n")
    else:
        file.write_text(dump_yaml(data, sort_keys=False, allow_unicode=True))
    return file


def load_plan(path: str | Path) -> Plan:
    """Read a plan file written by :func:`save_plan`. Whatever the file holds, the answer is a
    Plan or one QuantplanError that says what is wrong: never a traceback."""
    from quantplan.inputs import load_yaml_file

    where = f"plan file {str(path)!r}"
    data = load_yaml_file(path, "plan file")  # YAML is a superset of JSON
    if not isinstance(data, dict):
        raise QuantplanError(
            f"{where} holds {_kind_of(data)}, not a plan",
            hint="a plan file is the mapping `quantplan plan ... -o FILE` writes",
        )
    data = _upgrade(data, where)
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        raise QuantplanError(
            f"{where} is invalid: {_first_problem(error)}",
            hint="re-create it with `quantplan plan ... -o FILE`; plan files are not meant "
            "to be edited by hand",
        ) from None
    except (RecursionError, OverflowError, MemoryError) as error:
        raise QuantplanError(f"{where} is invalid: {type(error).__name__}") from None


def _kind_of(data: object) -> str:
    if data is None:
        return "nothing"
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a bool"}
    return names.get(type(data), f"a {type(data).__name__}")


def _upgrade(data: dict[Any, Any], where: str) -> dict[Any, Any]:
    """Refuse plans from a newer quantplan; bring readable older ones up to this version."""
    version = data.get("schema_version")
    if "schema_version" not in data:
        raise QuantplanError(
            f"{where} has no schema_version: it is not a plan file",
            hint="write one with `quantplan plan ... -o FILE`",
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise QuantplanError(f"{where} has schema_version {version!r}, not a whole number")
    provenance = data.get("provenance")
    written_by = provenance.get("quantplan_version") if isinstance(provenance, dict) else None
    if version > SCHEMA_VERSION or _is_newer(written_by, __version__):
        by = f" by quantplan {written_by}" if isinstance(written_by, str) else ""
        raise QuantplanError(
            f"{where} was written{by} with plan schema {version}; this is quantplan "
            f"{__version__}, which reads plan schemas up to {SCHEMA_VERSION}",
            hint="upgrade quantplan, or re-create the plan with this one "
            "(`quantplan plan ... -o FILE`)",
        )
    if version not in READABLE_SCHEMA_VERSIONS:
        raise QuantplanError(
            f"{where} has schema version {version}; this quantplan reads versions "
            f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}",
            hint="re-create it with `quantplan plan ... -o FILE`",
        )
    # Version 1 differs only by having no provenance: the plan itself is read as it was.
    return {**data, "schema_version": SCHEMA_VERSION}


def _release(version: object) -> tuple[int, ...] | None:
    """The numeric release of a version string ("0.2.1rc1" -> (0, 2, 1)); None if it has none."""
    import re

    if not isinstance(version, str) or "unknown" in version:
        return None  # e.g. "0+unknown" from a source tree that was never installed
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    if match is None:
        return None
    parts = tuple(int(p) for p in match.group(1).split("."))
    while len(parts) > 1 and parts[-1] == 0:
        parts = parts[:-1]  # 0.1 == 0.1.0
    return parts


def _is_newer(version: object, than: str) -> bool:
    mine, theirs = _release(than), _release(version)
    return mine is not None and theirs is not None and theirs > mine


def _first_problem(error: ValidationError) -> str:
    """Pydantic's first complaint as one line: which field, what is wrong, the value (cut)."""
    problems = error.errors(include_url=False, include_context=False)
    first = problems[0]
    field = ".".join(str(part) for part in first["loc"]) or "(document)"
    text = f"field {shorten(field)!r}: {first['msg']}"
    if first["type"] != "missing" and "input" in first:
        shown = repr(first["input"])
        text += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem(s))"
    return text
