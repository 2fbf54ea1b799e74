"""Targets: what the user wants from a deployment, as a strict pydantic document.

Targets are the planner's only input besides the catalog snapshot. They are plain data (a YAML or
JSON file, or built by the CLI/TUI from flags), so a plan can always be reproduced from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from quantplan.catalog.records import expert_problem, first_problem
from quantplan.catalog.registry import MethodName
from quantplan.catalog.vocabulary import (
    ExpertCount,
    ExpertsPerToken,
    FleetTokensPerS,
    FleetTypeCount,
    Fraction,
    HourlyLoad,
    KlDivergence,
    LatencyMs,
    ModelDimension,
    Name,
    ParametersB,
    PeakToMean,
    PerplexityDeltaPct,
    RecoveryPct,
    ReplicaCount,
    RequestsPerS,
    TokenCount,
    TokensPerDay,
    UsdPerMillionTokens,
    UsdPerMonth,
)
from quantplan.errors import QuantplanError

SchemeFamilyName = MethodName  # the registered quantization methods (catalog/registry.py)
DeviceChoice = Literal["any", "gpu", "cpu"]
TokenAccounting = Literal["input_and_output", "output_only"]

# A filter lists a few clouds, regions or instance types; the shipped catalog has 142 instance
# rows, so 1,000 entries cover any honest list.
MAX_LIST_ITEMS = 1000
Names = Annotated[tuple[Name, ...], Field(max_length=MAX_LIST_ITEMS)]

HOURS_PER_MONTH = 730.0
"""Hours in an average month (8,760 h / 12), the convention cloud price pages use."""


class StrictModel(BaseModel):
    """Base of every targets/plan model: unknown fields are errors, values are re-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class ModelShape(StrictModel):
    """The shape of a model the catalog does not know: enough to size weights and KV cache."""

    name: Name = Field(description="A name for the model, used in the plan")
    family: Name = Field(default="unknown", description="Architecture family, e.g. llama")
    parameters_b: ParametersB = Field(description="Parameters in billions")
    active_parameters_b: ParametersB | None = Field(
        default=None, description="Parameters read per token in billions (MoE); None = all"
    )
    experts: ExpertCount | None = Field(
        default=None,
        description="Experts per MoE layer, with experts_per_token: a batch reads the experts "
        "its tokens are routed to, not only the active ones (None: as if every token read the "
        "same active parameters)",
    )
    experts_per_token: ExpertsPerToken | None = Field(
        default=None, description="Experts each token is routed to (MoE)"
    )
    layers: ModelDimension = Field(description="Transformer layers")
    hidden_size: ModelDimension = Field(description="Hidden (model) dimension")
    intermediate_size: ModelDimension | None = Field(
        default=None,
        description="Width of the MLP (of one expert, MoE): with it, grouped 4-bit schemes are "
        "checked against every layer's input width (None: against the hidden and attention "
        "widths only)",
    )
    heads: ModelDimension = Field(description="Attention heads")
    kv_heads: ModelDimension = Field(description="Key/value heads (fewer than heads with GQA)")
    head_dim: ModelDimension = Field(description="Dimension of one attention head")
    vocab_size: ModelDimension = Field(description="Vocabulary size (sizes embeddings and lm_head)")
    max_context: TokenCount = Field(description="Longest context the model supports, in tokens")

    @model_validator(mode="after")
    def _experts_complete(self) -> ModelShape:
        problem = expert_problem(
            self.parameters_b, self.active_parameters_b, self.experts, self.experts_per_token
        )
        if problem:
            raise ValueError(problem)
        return self


class Workload(StrictModel):
    """The traffic to serve: request shape and volume."""

    input_tokens: TokenCount = Field(default=512, description="Mean prompt tokens per request")
    output_tokens: TokenCount = Field(default=256, description="Mean generated tokens per request")
    requests_per_s: RequestsPerS | None = Field(
        default=None, description="Mean request rate; give this or tokens_per_day"
    )
    tokens_per_day: TokensPerDay | None = Field(
        default=None,
        description="Mean daily token volume, counted as token_accounting says; "
        "give this or requests_per_s",
    )
    peak_to_mean: PeakToMean = Field(
        default=2.0,
        description="Peak request rate over mean rate; capacity is sized for peak",
    )
    token_accounting: TokenAccounting = Field(
        default="input_and_output",
        description="Which tokens count for tokens/day and $/million tokens",
    )
    daily_shape: list[HourlyLoad] | None = Field(
        default=None,
        min_length=24,
        max_length=24,
        description="The day's load hour by hour (24 numbers, any scale: their mean is the mean "
        "rate). With it, a plan prices its fleet scaling with the load over such a day; its "
        "busiest hour may not exceed peak_to_mean times the mean. None: the plan gives the "
        "range from the mean load all day to the peak all day",
    )

    @model_validator(mode="after")
    def _one_volume(self) -> Workload:
        if (self.requests_per_s is None) == (self.tokens_per_day is None):
            raise ValueError("give exactly one of requests_per_s or tokens_per_day")
        return self

    @field_validator("daily_shape")
    @classmethod
    def _shape_within_the_peak(
        cls, shape: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        if shape is None:
            return None
        mean = sum(shape) / len(shape)
        if mean <= 0:
            raise ValueError("the day needs some load: all 24 hours are 0")
        busiest = max(shape) / mean
        peak_to_mean = info.data.get("peak_to_mean")
        if peak_to_mean is not None and busiest > peak_to_mean * (1 + 1e-9):
            raise ValueError(
                f"the busiest hour is {busiest:.3g}x the day's mean, above peak_to_mean "
                f"{peak_to_mean:g}: the fleet would be sized below that hour; raise "
                f"peak_to_mean to at least {busiest:.3g}"
            )
        return shape

    @property
    def hourly_load(self) -> tuple[float, ...] | None:
        """Each hour's load over the mean (daily_shape scaled to mean 1), or None."""
        if self.daily_shape is None:
            return None
        mean = sum(self.daily_shape) / len(self.daily_shape)
        return tuple(value / mean for value in self.daily_shape)

    @property
    def counted_tokens_per_request(self) -> int:
        """Tokens per request that count for volume and $/million tokens."""
        if self.token_accounting == "output_only":
            return self.output_tokens
        return self.input_tokens + self.output_tokens

    @property
    def mean_requests_per_s(self) -> float:
        """Mean request rate, whichever way the volume was given."""
        if self.requests_per_s is not None:
            return self.requests_per_s
        assert self.tokens_per_day is not None
        return self.tokens_per_day / 86_400.0 / self.counted_tokens_per_request

    @property
    def peak_requests_per_s(self) -> float:
        """The request rate the fleet must carry inside the SLOs."""
        return self.mean_requests_per_s * self.peak_to_mean

    @property
    def counted_tokens_per_month(self) -> float:
        """Tokens per month at the mean rate, counted as token_accounting says."""
        per_s = self.mean_requests_per_s * self.counted_tokens_per_request
        return per_s * 3600.0 * HOURS_PER_MONTH


class Slos(StrictModel):
    """Service-level objectives every replica must meet at peak load, at the pessimistic edge
    of the band at ``confidence``. A latency left None gets the interactive default (p95 TTFT
    2 s, ITL 200 ms) unless ``mode`` is batch; in batch mode None = no objective."""

    ttft_p95_ms: LatencyMs | None = Field(default=None, description="p95 time to first token")
    itl_p95_ms: LatencyMs | None = Field(default=None, description="p95 inter-token latency")
    min_output_tokens_per_s: FleetTokensPerS | None = Field(
        default=None,
        description="Fleet output throughput to provision at least, on top of the peak rate",
    )
    confidence: float = Field(
        default=0.9,
        ge=0.5,
        le=0.99,
        description="Share of held-out predictions an SLO must hold for: each SLO is checked at "
        "the pessimistic edge of the band at this confidence (TTFT and ITL high, throughput "
        "low), and replicas are counted at their low-edge capacity",
    )
    mode: Literal["interactive", "batch"] = Field(
        default="interactive",
        description="interactive: p95 TTFT <= 2000 ms and p95 ITL <= 200 ms apply unless given; "
        "batch (offline work): no latency limit unless given",
    )


QualityEvidencePolicy = Literal["same-model", "same-family", "any"]


class QualityTarget(StrictModel):
    """How much degradation against the 16-bit baseline is acceptable. None = no limit."""

    max_perplexity_increase_pct: PerplexityDeltaPct | None = Field(
        default=None, ge=0, description="Largest perplexity increase over the baseline, in %"
    )
    max_kl_divergence: KlDivergence | None = Field(
        default=None, description="Largest mean KL divergence against the baseline"
    )
    min_recovery_pct: RecoveryPct | None = Field(
        default=None,
        description="Smallest task-accuracy recovery (% of the baseline's score) on "
        "recovery_benchmark",
    )
    recovery_benchmark: Name | None = Field(
        default=None,
        description="Benchmark (a quality row's eval_set, e.g. 'openllm-v1') min_recovery_pct "
        "is checked on",
    )
    evidence: QualityEvidencePolicy = Field(
        default="same-family",
        description="Which quality figures a cap may rely on: same-model (the model's own "
        "results only), same-family (also figures borrowed from a model of the same "
        "architecture family or a sibling scheme), any (also other families and priors). "
        "Borrowed figures are checked at the pessimistic end of their band",
    )

    @model_validator(mode="after")
    def _benchmark_with_recovery(self) -> QualityTarget:
        if self.min_recovery_pct is not None and self.recovery_benchmark is None:
            raise ValueError("min_recovery_pct needs recovery_benchmark (the benchmark to check)")
        return self


class Budget(StrictModel):
    """Spending caps for the whole fleet. None = no cap."""

    max_usd_per_month: UsdPerMonth | None = Field(default=None, description="Fleet $/month cap")
    max_usd_per_million_tokens: UsdPerMillionTokens | None = Field(
        default=None, gt=0, description="Cap on $ per million counted tokens at the mean rate"
    )


class Constraints(StrictModel):
    """Where and how the fleet may run."""

    clouds: Names = Field(default=(), description="Allowed clouds; empty = any")
    regions: Names = Field(default=(), description="Allowed regions; empty = any")
    spot_allowed: bool = Field(default=False, description="May replicas run on spot capacity")
    allow_flagged_prices: bool = Field(
        default=False,
        description="Plan with prices the catalog flags as doubtful (suspicious spot discounts, "
        "rows their source questions); by default they are skipped and the plan says so",
    )
    max_spot_fraction: Fraction = Field(
        default=1.0,
        description="Largest share of peak capacity on spot replicas (mixed fleets only)",
    )
    device: DeviceChoice = Field(default="any", description="gpu-only, cpu-only, or any")
    instance_allow: Names = Field(
        default=(), description="Only these instance type names; empty = any"
    )
    instance_deny: Names = Field(default=(), description="Never these instance types")
    accelerator_allow: Names = Field(
        default=(), description="Only these hardware names (GPU or CPU family); empty = any"
    )
    accelerator_deny: Names = Field(default=(), description="Never this hardware")
    families: tuple[SchemeFamilyName, ...] = Field(
        default=(), max_length=MAX_LIST_ITEMS, description="Only these families; empty = any"
    )
    engines: Names = Field(default=(), description="Only these engines; empty = any")
    max_replicas: ReplicaCount = Field(default=64, description="Most replicas in the fleet")
    allow_mixed_fleet: bool = Field(
        default=False,
        description="May the fleet mix instance types/schemes (solved as a MILP)",
    )
    max_fleet_types: FleetTypeCount = Field(
        default=3, description="Most distinct deployments in a mixed fleet"
    )
    required_engines: Names = Field(
        default=(),
        description="Engines a mixed fleet must each run at least one replica on -- to measure "
        "both on live traffic, or so that one engine's fault cannot take the whole service down",
    )

    @model_validator(mode="after")
    def _required_engines_fit(self) -> Constraints:
        if not self.required_engines:
            return self
        if not self.allow_mixed_fleet:
            raise ValueError("required_engines needs allow_mixed_fleet: true")
        if len(set(self.required_engines)) > self.max_fleet_types:
            raise ValueError(
                f"{len(set(self.required_engines))} required engines do not fit in "
                f"max_fleet_types={self.max_fleet_types}"
            )
        excluded = [e for e in self.required_engines if self.engines and e not in self.engines]
        if excluded:
            raise ValueError(f"required engines {excluded} are not among engines {self.engines}")
        return self


def _model_choice(value: object) -> str:
    return "name" if isinstance(value, str) else "shape"


# Tagged by the value's type, so an error in a model shape is reported on its field
# (model.shape.parameters_b) and not drowned in "model: not a valid string".
ModelChoice = Annotated[
    Annotated[Name, Tag("name")] | Annotated[ModelShape, Tag("shape")],
    Discriminator(_model_choice),
]


class Targets(StrictModel):
    """Everything the planner is asked to satisfy, for one model."""

    model: ModelChoice = Field(
        description="A catalog model name, or the shape of a model the catalog does not know"
    )
    workload: Workload = Field(description="Traffic to serve")
    slos: Slos = Field(default_factory=Slos, description="Latency and throughput objectives")
    quality: QualityTarget = Field(
        default_factory=QualityTarget, description="Acceptable quality loss"
    )
    budget: Budget = Field(default_factory=Budget, description="Spending caps")
    constraints: Constraints = Field(
        default_factory=Constraints, description="Where and how to run"
    )

    @property
    def model_name(self) -> str:
        return self.model if isinstance(self.model, str) else self.model.name


def load_targets(path: str | Path) -> Targets:
    """Read targets from a YAML or JSON file (or a plan file), refusing bad input in one line.

    The file goes through the shared bounded reader: size-capped, UTF-8 text only, and no YAML
    anchors or aliases, so a 500-byte alias bomb is refused at once instead of expanding.
    """
    from quantplan.inputs import load_yaml_file

    what = f"targets file {str(path)!r}"
    data = load_yaml_file(path, "targets file")
    if isinstance(data, dict) and "targets" in data and "schema_version" in data:
        data = data["targets"]  # a plan file: plan again from its targets
    try:
        return Targets.model_validate(data)
    except ValidationError as error:
        raise QuantplanError(
            f"{what} is invalid: {first_problem(error)}",
            hint="see `quantplan plan --help` for the fields; unknown fields are refused, "
            "numbers must be finite and within physical bounds",
        ) from None
