"""The catalog's exchange format: one strict pydantic record per row kind.

Records name related rows by their natural keys (a model's name, a scheme's name, a hardware
name), never by database ids, so a file exported from one database imports into another. Seed
data, ``catalog import``/``export`` and agent reports all use these same records.
"""

from __future__ import annotations

import reprlib
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quantplan.catalog.vocabulary import (
    AcceleratorCount,
    BandwidthGBps,
    Basis,
    Batching,
    BitsPerWeight,
    CompressionRatio,
    ComputeCapability,
    Concurrency,
    Details,
    DeviceCount,
    DeviceKind,
    Efficiency,
    Engine,
    ExpertCount,
    ExpertsPerToken,
    Fraction,
    GroupSize,
    IsaFlags,
    KlDivergence,
    MeasuredLatencyMs,
    MeasuredRequestsPerS,
    MemoryGB,
    MemoryType,
    ModelDimension,
    Name,
    OverheadGB,
    ParametersB,
    Perplexity,
    PerplexityDeltaPct,
    RecoveryPct,
    RequestsPerS,
    SchemeFamily,
    SourceText,
    SupportBits,
    TaskScore,
    TeraOps,
    Text,
    ThreadsPerCore,
    TokenCount,
    TokensPerS,
    UsdPerHour,
    UsdPerMillionTokens,
    WeightBits,
)


def first_problem(error: ValidationError) -> str:
    """The first problem of a validation error in one line: field, message and the value.

    Values and field names are cut short, so a hostile 16 MB string cannot flood the line.
    """
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(document)"
    text = f"field {short_repr(field)}: {first['msg']}"
    if first["type"] != "missing" and "input" in first:
        text += f" (got {short_repr(first['input'])})"
    more = error.error_count() - 1
    if more:
        text += f" (and {more} more problem{'s' if more > 1 else ''})"
    return text


def short_repr(value: object, limit: int = 60) -> str:
    """A repr of ``value`` of at most ``limit`` characters.

    reprlib looks at only the first few items and levels, so even a value with shared
    sub-objects (an expanded YAML alias bomb) is described at once; plain repr() walks it all.
    """
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxdict = _SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = 4
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 60


class Record(BaseModel):
    """Base of every record: unknown fields are refused, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class HardwareRecord(Record):
    name: Name = Field(description="Unique hardware name, e.g. H100-SXM")
    kind: DeviceKind = Field(description="gpu or cpu")
    vendor: Name
    memory_gb: MemoryGB | None = Field(default=None, description="Device memory (GPUs)")
    memory_bandwidth_gbps: BandwidthGBps = Field(description="GB/s per device or per CPU socket")
    bf16_tflops: TeraOps | None = None
    int8_tops: TeraOps | None = None
    compute_capability: str | None = Field(default=None, pattern=r"^\d{1,2}\.\d{1,2}$")
    memory_type: MemoryType | None = Field(
        default=None,
        description="hbm, gddr, unified or ddr: engines reach different shares of spec "
        "bandwidth on each (llama.cpp about 45 % on an A100's HBM, 80-90 % on GDDR6X)",
    )
    isa_flags: IsaFlags = Field(default="", description="Comma separated, e.g. avx2,avx512,amx")
    cores_per_socket: DeviceCount | None = None
    threads_per_core: ThreadsPerCore = Field(
        default=2, description="vCPUs per physical core (1 where SMT is off, e.g. c7a)"
    )
    source: SourceText

    @model_validator(mode="after")
    def _gpu_has_memory(self) -> HardwareRecord:
        if self.kind == "gpu" and self.memory_gb is None:
            raise ValueError("a gpu needs memory_gb")
        return self


class InstanceRecord(Record):
    cloud: Name
    name: Name
    region: Name
    vcpus: DeviceCount
    memory_gib: MemoryGB
    hardware: Name = Field(description="Hardware name: the GPU, or the CPU family")
    accelerator_count: AcceleratorCount = 0
    price_per_hour: UsdPerHour = Field(description="On-demand USD per hour")
    spot_price_per_hour: UsdPerHour | None = None
    price_date: Name | None = Field(
        default=None, description="Date the price was true (YYYY-MM-DD); None = unknown"
    )
    price_source: SourceText
    spot_statistic: Text | None = Field(
        default=None,
        description="How the region's spot price came from its zones, e.g. 'median of 6 zones'",
    )
    spot_flag: Text | None = Field(
        default=None, description="Why the spot price is doubtful; the planner skips it unless told"
    )
    price_flag: Text | None = Field(
        default=None, description="Why the whole row is doubtful; the planner skips it unless told"
    )


def expert_problem(
    parameters_b: float,
    active_parameters_b: float | None,
    experts: int | None,
    experts_per_token: int | None,
) -> str | None:
    """What is wrong with a model's mixture-of-experts fields, or None: experts and
    experts_per_token come together, with fewer experts per token than experts and the active
    parameters below the total (the planner splits them into shared and per-expert weights)."""
    if experts is None and experts_per_token is None:
        return None
    if experts is None or experts_per_token is None:
        return "give both experts and experts_per_token, or neither"
    if experts_per_token >= experts:
        return "experts_per_token must be below experts"
    if active_parameters_b is None or active_parameters_b >= parameters_b:
        return "a mixture-of-experts model needs active_parameters_b below parameters_b"
    return None


class ModelWidths(Protocol):
    """The widths of a model's layers that a grouped scheme must tile: a ModelRecord, or the
    planner's ModelShape of a model the catalog does not know."""

    @property
    def name(self) -> str: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def intermediate_size(self) -> int | None: ...


def group_tiling_problem(model: ModelWidths, scheme: SchemeRecord, shards: int = 1) -> str | None:
    """Why ``scheme``'s weight groups cannot tile ``model``'s layers split over ``shards`` GPUs,
    or None.

    A grouped weight-only scheme (GPTQ, AWQ at 64 or 128 weights a group) quantizes each layer's
    input dimension in groups, so the group size must divide every input width: the hidden size
    (query, key, value, gate and up projections), the attention width (heads x head dimension:
    the output projection) and the MLP width (the down projection). vLLM's tensor parallelism
    splits the inputs of the last two over the GPUs, so there they must divide per GPU:
    SmolLM2-135M's hidden size of 576 takes no 128-weight groups, Qwen2.5-14B's MLP of 13,824
    takes them on 4 GPUs, not on 8. A model without a known MLP width is checked on the other
    two.
    """
    group_size = scheme.group_size
    if group_size is None:
        return None
    widths = [
        ("hidden size", model.hidden_size, 1),
        ("attention width", model.heads * model.head_dim, shards),
    ]
    if model.intermediate_size is not None:
        widths.append(("MLP width", model.intermediate_size, shards))
    for what, width, parts in widths:
        if width % parts or (width // parts) % group_size:
            per_gpu = f" over {parts} GPUs is {width / parts:,g} per GPU," if parts > 1 else ""
            padded = (
                " (a quantized release that pads its MLP serves, as Qwen's own AWQ of "
                "Qwen2.5-72B does at 29,696: plan it as a model shape with that width)"
                if what == "MLP width"
                else ""
            )
            return (
                f"{scheme.name} quantizes each layer's input in groups of {group_size}: "
                f"{model.name}'s {what} of {width:,}{per_gpu} not a multiple of {group_size}"
                f"{padded}"
            )
    return None


class ModelRecord(Record):
    name: Name
    family: Name
    parameters_b: ParametersB = Field(description="Parameters in billions")
    active_parameters_b: ParametersB | None = None
    experts: ExpertCount | None = Field(
        default=None, description="Experts per MoE layer (None: a dense model)"
    )
    experts_per_token: ExpertsPerToken | None = Field(
        default=None, description="Experts each token is routed to (MoE)"
    )
    layers: ModelDimension
    hidden_size: ModelDimension
    intermediate_size: ModelDimension | None = Field(
        default=None, description="Width of the MLP (of one expert, MoE); None: not known"
    )
    heads: ModelDimension
    kv_heads: ModelDimension
    head_dim: ModelDimension
    vocab_size: ModelDimension
    max_context: TokenCount
    source: SourceText

    @model_validator(mode="after")
    def _experts_complete(self) -> ModelRecord:
        problem = expert_problem(
            self.parameters_b, self.active_parameters_b, self.experts, self.experts_per_token
        )
        if problem:
            raise ValueError(problem)
        return self


class SchemeRecord(Record):
    name: Name
    family: SchemeFamily
    bits: WeightBits
    group_size: GroupSize | None = None
    variant: Name | None = None
    bits_per_weight: BitsPerWeight
    engines: Name = Field(description="Comma separated engines")
    source: SourceText


class EngineSupportRecord(Record):
    engine: Engine
    family: SchemeFamily
    device_kind: DeviceKind
    bits: SupportBits = Field(default=0, description="0 = any bit width")
    min_compute_capability: ComputeCapability | None = None
    required_isa: IsaFlags = ""
    kernel: Name = Field(description="The kernel or backend that does the work")
    note: Text = ""
    source: SourceText


class EngineTraitRecord(Record):
    """What the planner assumes of one engine on one device kind, with its basis and source.

    An engine without a row for a device kind gets the planner's generic default for that
    kind, marked ``modeled`` with a source saying no row exists (planner/traits.py)."""

    engine: Engine
    device_kind: DeviceKind
    bandwidth_efficiency: Efficiency = Field(
        description="Share of the spec memory bandwidth a decode step reaches"
    )
    compute_efficiency: Efficiency = Field(
        description="Share of the spec FLOPS reached (prefill, large batches)"
    )
    runtime_overhead_gb: OverheadGB = Field(
        description="Memory the engine keeps for itself, per GPU (gpu) or per host (cpu)"
    )
    max_concurrency: Concurrency = Field(description="Most sequences one replica runs at once")
    tensor_parallel: bool = Field(
        description="Splits every layer over a replica's GPUs (false: splits the layers)"
    )
    batching: Batching = Field(description="continuous, slots or none")
    kv_read_efficiency: Efficiency | None = Field(
        default=None,
        description="The KV cache's read efficiency with the engine's default attention kernel, "
        "on the footing of bandwidth_efficiency (a prior that calibration scales with the "
        "device's measured weight rate): bandwidth_efficiency x the measured KV read rate over "
        "the 16-bit weights' rate on one device (none: the KV cache read at the weights' rate)",
    )
    kv_read_efficiency_without_flash_attention: Efficiency | None = Field(
        default=None,
        description="The same for runs without flash attention (turned off, or from releases "
        "before it was the default; none: as with it)",
    )
    basis: Basis
    source: SourceText


class MethodTraitRecord(Record):
    """What the planner assumes of a quantization method's checkpoints and kernels.

    A method without a row gets the default: the scheme's bits per weight cover the whole
    model and the math is BF16 (planner/traits.py)."""

    method: SchemeFamily
    embeddings_in_16_bit: bool = Field(
        description="Embeddings and lm_head stay 16-bit beside the quantized layers"
    )
    w8a8: bool = Field(description="Multiplies 8-bit activations by 8-bit weights on tensor cores")
    slow_kernel_below_capability: ComputeCapability | None = Field(
        default=None,
        description="GPUs below this compute capability run a legacy kernel at a fraction of "
        "the compute efficiency (None: no such rule)",
    )
    basis: Basis
    source: SourceText


class SpotInterruptionRecord(Record):
    """How often spot capacity is taken back: the share of spot instances interrupted in a
    month, as a band (clouds publish bands, not rates), with the date it was true.

    ``instance_type`` names one instance type; empty, the row covers every instance of its
    cloud and device kind that has no row of its own. The planner weighs a spot price with it
    (planner/spot.py); a cloud without any row gets a visible ``modeled`` default."""

    cloud: Name
    device_kind: DeviceKind
    instance_type: Text = Field(default="", description="One instance type; empty = any other")
    monthly_rate_low: Fraction = Field(description="Low edge: share interrupted in a month")
    monthly_rate_high: Fraction = Field(description="High edge: share interrupted in a month")
    as_of: Name | None = Field(default=None, description="Date the band was true (YYYY-MM-DD)")
    basis: Basis
    source: SourceText

    @model_validator(mode="after")
    def _ordered_band(self) -> SpotInterruptionRecord:
        if self.monthly_rate_low > self.monthly_rate_high:
            raise ValueError(
                f"monthly_rate_low {self.monthly_rate_low} is above monthly_rate_high "
                f"{self.monthly_rate_high}"
            )
        return self


class ProfileRecord(Record):
    model: Name
    scheme: Name
    engine: Engine
    hardware: Name
    hardware_count: DeviceCount = 1
    instance: Name | None = Field(default=None, description="cloud/name/region, if on one")
    input_tokens: TokenCount
    output_tokens: TokenCount
    concurrency: Concurrency
    request_rate: RequestsPerS | None = None
    output_tokens_per_s: TokensPerS
    total_tokens_per_s: TokensPerS | None = None
    requests_per_s: MeasuredRequestsPerS | None = None
    ttft_p50_ms: MeasuredLatencyMs | None = None
    ttft_p95_ms: MeasuredLatencyMs | None = None
    itl_p50_ms: MeasuredLatencyMs | None = None
    itl_p95_ms: MeasuredLatencyMs | None = None
    e2e_p50_ms: MeasuredLatencyMs | None = None
    peak_memory_gb: MemoryGB | None = None
    error_rate: Fraction = 0.0
    cost_per_million_tokens: UsdPerMillionTokens | None = None
    basis: Basis
    source: SourceText
    run_id: Name | None = None
    engine_version: Name | None = None
    notes: Text = ""
    details: Details = Field(default_factory=dict)
    recorded_at: datetime | None = None


class QualityRecord(Record):
    model: Name
    scheme: Name
    eval_set: Name
    perplexity: Perplexity | None = None
    baseline_perplexity: Perplexity | None = None
    perplexity_delta_pct: PerplexityDeltaPct | None = None
    kl_divergence: KlDivergence | None = None
    top1_agreement: Fraction | None = None
    task_score: TaskScore | None = Field(
        default=None, description="Score on the benchmark named by eval_set (0-100)"
    )
    baseline_task_score: TaskScore | None = Field(
        default=None, description="The 16-bit baseline's score on the same benchmark"
    )
    recovery_pct: RecoveryPct | None = Field(
        default=None, description="task_score / baseline_task_score x 100 (derived if absent)"
    )
    bits_per_weight: BitsPerWeight | None = None
    compression_ratio: CompressionRatio | None = None
    engine: Engine | None = None
    basis: Basis
    source: SourceText
    run_id: Name | None = None
    notes: Text = ""
    details: Details = Field(default_factory=dict)
    recorded_at: datetime | None = None

    @model_validator(mode="after")
    def _derive_delta(self) -> QualityRecord:
        has_any = any(
            v is not None
            for v in (self.perplexity, self.kl_divergence, self.top1_agreement, self.task_score)
        )
        if not has_any and self.perplexity_delta_pct is None and self.recovery_pct is None:
            raise ValueError(
                "a quality record needs at least one of perplexity, perplexity_delta_pct, "
                "kl_divergence, top1_agreement, task_score or recovery_pct"
            )
        if (
            self.recovery_pct is None
            and self.task_score is not None
            and self.baseline_task_score  # a zero baseline score gives no ratio
        ):
            recovery = self.task_score / self.baseline_task_score * 100
            object.__setattr__(self, "recovery_pct", round(recovery, 6))
        if (
            self.perplexity_delta_pct is None
            and self.perplexity is not None
            and self.baseline_perplexity is not None
        ):
            delta = (self.perplexity - self.baseline_perplexity) / self.baseline_perplexity * 100
            object.__setattr__(self, "perplexity_delta_pct", round(delta, 6))
        return self


RecordKind = Literal[
    "hardware",
    "instances",
    "models",
    "schemes",
    "support",
    "engine_traits",
    "method_traits",
    "spot_interruptions",
    "profiles",
    "quality",
]

RECORD_TYPES: dict[str, type[Record]] = {
    "hardware": HardwareRecord,
    "instances": InstanceRecord,
    "models": ModelRecord,
    "schemes": SchemeRecord,
    "support": EngineSupportRecord,
    "engine_traits": EngineTraitRecord,
    "method_traits": MethodTraitRecord,
    "spot_interruptions": SpotInterruptionRecord,
    "profiles": ProfileRecord,
    "quality": QualityRecord,
}

# Import order: every kind only refers to kinds before it.
KIND_ORDER: tuple[str, ...] = tuple(RECORD_TYPES)
