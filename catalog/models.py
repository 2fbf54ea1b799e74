"""The catalog schema: hardware, prices, models, quantization schemes and measurements.

Reference rows (hardware, instance types, model cards, schemes, engine support, engine and
method traits) have a natural key and are versioned data. Measurement rows (profiles, quality
results) are appended with their basis and provenance and are never overwritten; a run id makes
each report idempotent.

Table classes do not validate on construction. Every row but a run is written from a record of
``catalog/records.py``, which holds the bounds (finite numbers within physical limits, bounded
printable strings: ``catalog/vocabulary.py``); runs come from ``reports.RunInfo``.

Changing this module means writing an Alembic migration in ``catalog/migrations/versions``.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, Relationship, SQLModel


def utc_now() -> datetime:
    return datetime.now(UTC)


class Hardware(SQLModel, table=True):
    """An accelerator (GPU) or a CPU family, with the specs that bound inference speed."""

    __tablename__ = "hardware"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, description="e.g. H100-SXM, A10G, SapphireRapids")
    kind: str = Field(description="gpu or cpu")
    vendor: str
    memory_gb: float | None = Field(
        default=None, description="Device memory per accelerator in GB (None for CPUs)"
    )
    memory_bandwidth_gbps: float = Field(
        description="Peak memory bandwidth in GB/s: per device for GPUs, per socket for CPUs"
    )
    bf16_tflops: float | None = Field(default=None, description="Dense BF16/FP16 TFLOPS")
    int8_tops: float | None = Field(default=None, description="Dense INT8 TOPS")
    compute_capability: str | None = Field(default=None, description="CUDA capability, e.g. 8.6")
    memory_type: str | None = Field(
        default=None, description="Memory technology: hbm, gddr, unified or ddr"
    )
    isa_flags: str = Field(
        default="", description="CPU ISA flags, comma separated: avx2,avx512,amx"
    )
    cores_per_socket: int | None = Field(default=None, description="Physical cores per CPU socket")
    threads_per_core: int = Field(
        default=2,
        sa_column_kwargs={"server_default": "2"},
        description="vCPUs (hardware threads) per physical core; 1 where SMT is off",
    )
    source: str = Field(description="Where the specs come from")

    instance_types: list["InstanceType"] = Relationship(
        back_populates="hardware",
        sa_relationship_kwargs={"foreign_keys": "InstanceType.hardware_id"},
    )


class InstanceType(SQLModel, table=True):
    """A rentable machine in one cloud region, with its on-demand and spot price.

    Prices keep their history: a refresh appends a row and stamps the row it replaces with
    ``superseded_at``, so at most one row per (cloud, name, region) is current and old plans
    stay explainable. Profiles keep pointing at the row they were measured on.
    """

    __tablename__ = "instance_type"

    id: int | None = Field(default=None, primary_key=True)
    cloud: str = Field(index=True)
    name: str = Field(index=True)
    region: str
    vcpus: int
    memory_gib: float
    hardware_id: int = Field(
        foreign_key="hardware.id",
        description="The accelerator for GPU instances, the CPU family for CPU-only ones",
    )
    accelerator_count: int = Field(default=0, description="0 for CPU-only instances")
    price_per_hour: float = Field(description="On-demand USD per hour")
    spot_price_per_hour: float | None = Field(default=None, description="Spot USD per hour")
    price_date: str | None = Field(default=None, description="Date of the price, if known")
    price_source: str
    spot_statistic: str | None = Field(
        default=None, description="How the region's spot price came from its zones' prices"
    )
    spot_flag: str | None = Field(
        default=None, description="Why the spot price is doubtful (planner skips it by default)"
    )
    price_flag: str | None = Field(
        default=None, description="Why the whole row is doubtful (planner skips it by default)"
    )
    superseded_at: datetime | None = Field(
        default=None, index=True, description="When a newer price replaced this row (None: current)"
    )
    seed_version: int | None = Field(
        default=None, description="Seed data version that wrote the row (None: the user's own)"
    )

    hardware: Hardware = Relationship(
        back_populates="instance_types",
        sa_relationship_kwargs={"foreign_keys": "InstanceType.hardware_id"},
    )


class ModelCard(SQLModel, table=True):
    """The shape of a model: what the planner needs to size weights and KV cache."""

    __tablename__ = "model_card"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    family: str
    parameters_b: float = Field(description="Parameters in billions")
    active_parameters_b: float | None = Field(
        default=None, description="Parameters read per token in billions (MoE); None = all"
    )
    experts: int | None = Field(default=None, description="Experts per MoE layer; None = dense")
    experts_per_token: int | None = Field(
        default=None, description="Experts each token is routed to (MoE)"
    )
    layers: int
    hidden_size: int
    intermediate_size: int | None = Field(
        default=None, description="Width of the MLP (of one expert, MoE); None = not known"
    )
    heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    source: str

    profiles: list["Profile"] = Relationship(back_populates="model")
    quality_results: list["QualityResult"] = Relationship(back_populates="model")


class QuantScheme(SQLModel, table=True):
    """A quantization scheme: the family, its bits and group size, and the engines that run it."""

    __tablename__ = "quant_scheme"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, description="e.g. gptq-w4a16-g128, gguf-q4_k_m")
    family: str = Field(description="baseline, gptq, awq, gguf, fp8 or int8")
    bits: int
    group_size: int | None = None
    variant: str | None = Field(default=None, description="e.g. Q4_K_M, W4A16, BF16")
    bits_per_weight: float = Field(description="Nominal effective bits per weight")
    engines: str = Field(description="Engines that serve it, comma separated")
    source: str

    profiles: list["Profile"] = Relationship(back_populates="scheme")
    quality_results: list["QualityResult"] = Relationship(back_populates="scheme")


class EngineSupport(SQLModel, table=True):
    """One cell of the compatibility matrix: can ``engine`` run ``family`` on this hardware?

    A row says the engine runs the family on ``device_kind`` hardware that meets the minimum
    compute capability (GPU) or has every listed ISA flag (CPU). No row means unsupported.
    """

    __tablename__ = "engine_support"
    __table_args__ = (UniqueConstraint("engine", "family", "device_kind", "bits"),)

    id: int | None = Field(default=None, primary_key=True)
    engine: str
    family: str
    device_kind: str
    bits: int = Field(description="Weight bits this row covers; 0 = any")
    min_compute_capability: float | None = None
    required_isa: str = Field(default="", description="Comma separated CPU flags required")
    kernel: str = Field(description="The kernel or backend that does the work")
    note: str = ""
    source: str


class EngineTrait(SQLModel, table=True):
    """What the planner assumes of one engine on one device kind: efficiencies, memory it keeps,
    concurrency, how it batches and splits a replica over GPUs. No row means the planner's
    generic default for the device kind, marked ``modeled``."""

    __tablename__ = "engine_trait"
    __table_args__ = (UniqueConstraint("engine", "device_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    engine: str
    device_kind: str = Field(description="gpu or cpu")
    bandwidth_efficiency: float = Field(description="Share of spec memory bandwidth reached")
    compute_efficiency: float = Field(description="Share of spec FLOPS reached")
    runtime_overhead_gb: float = Field(description="Memory the engine keeps, per GPU or host")
    max_concurrency: int = Field(description="Most sequences one replica runs at once")
    tensor_parallel: bool = Field(description="Splits every layer over a replica's GPUs")
    batching: str = Field(description="continuous, slots or none")
    kv_read_efficiency: float | None = Field(
        default=None, description="Share of spec bandwidth at which attention reads the KV cache"
    )
    kv_read_efficiency_without_flash_attention: float | None = Field(
        default=None, description="The same for runs without flash attention"
    )
    basis: str = Field(description="measured, published or modeled")
    source: str


class MethodTrait(SQLModel, table=True):
    """What the planner assumes of a quantization method's checkpoints and kernels. No row
    means the default: bits per weight cover the whole model, BF16 math."""

    __tablename__ = "method_trait"
    __table_args__ = (UniqueConstraint("method"),)

    id: int | None = Field(default=None, primary_key=True)
    method: str
    embeddings_in_16_bit: bool = Field(description="Embeddings and lm_head stay 16-bit")
    w8a8: bool = Field(description="8-bit activations times 8-bit weights on tensor cores")
    slow_kernel_below_capability: float | None = Field(
        default=None, description="A legacy kernel runs below this compute capability"
    )
    basis: str = Field(description="measured, published or modeled")
    source: str


class SpotInterruption(SQLModel, table=True):
    """How often a cloud takes spot capacity back: the share of spot instances interrupted in
    a month, as the band the cloud publishes. An empty ``instance_type`` covers every instance
    of the cloud and device kind without a row of its own."""

    __tablename__ = "spot_interruption"
    __table_args__ = (UniqueConstraint("cloud", "device_kind", "instance_type"),)

    id: int | None = Field(default=None, primary_key=True)
    cloud: str
    device_kind: str = Field(description="gpu or cpu")
    instance_type: str = Field(default="", description="One instance type; empty = any other")
    monthly_rate_low: float = Field(description="Low edge: share interrupted in a month")
    monthly_rate_high: float = Field(description="High edge: share interrupted in a month")
    as_of: str | None = Field(default=None, description="Date the band was true")
    basis: str = Field(description="measured, published or modeled")
    source: str


class Run(SQLModel, table=True):
    """One unit of agent work (quantize, serve, benchmark, evaluate), failed ones included."""

    __tablename__ = "run"

    id: str = Field(primary_key=True, description="Run id, unique across the fleet")
    kind: str = Field(description="quantize, serve, benchmark, evaluate or apply")
    status: str = Field(default="running")
    started_at: datetime = Field(default_factory=utc_now)
    finished_at: datetime | None = None
    error_kind: str | None = Field(default=None, description="Short error class when failed")
    error_message: str | None = None
    hardware: str | None = Field(default=None, description="Hardware the run used, in words")
    tool_versions: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Profile(SQLModel, table=True):
    """Performance of model x scheme x engine x hardware under one workload."""

    __tablename__ = "profile"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model_card.id", index=True)
    scheme_id: int = Field(foreign_key="quant_scheme.id", index=True)
    engine: str
    hardware_id: int = Field(foreign_key="hardware.id", index=True)
    hardware_count: int = Field(default=1, description="Accelerators (GPU) or vCPUs (CPU) used")
    instance_type_id: int | None = Field(default=None, foreign_key="instance_type.id")
    input_tokens: int
    output_tokens: int
    concurrency: int
    request_rate: float | None = Field(default=None, description="Open-loop rate; None = closed")
    output_tokens_per_s: float
    total_tokens_per_s: float | None = None
    requests_per_s: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    e2e_p50_ms: float | None = None
    peak_memory_gb: float | None = None
    error_rate: float = 0.0
    cost_per_million_tokens: float | None = Field(
        default=None, description="Blended USD per million tokens at this operating point"
    )
    basis: str = Field(description="measured, published or modeled")
    source: str = Field(description="Citation for published rows, a description otherwise")
    run_id: str | None = Field(
        default=None, index=True, description="The run that measured it (see the run table)"
    )
    engine_version: str | None = None
    notes: str = ""
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON),
        description="Further metrics of this row (per-layer errors, bandwidth use, ...)",
    )
    recorded_at: datetime = Field(default_factory=utc_now)

    model: ModelCard = Relationship(back_populates="profiles")
    scheme: QuantScheme = Relationship(back_populates="profiles")
    hardware: Hardware = Relationship()
    instance_type: InstanceType | None = Relationship()


class QualityResult(SQLModel, table=True):
    """How much a scheme degrades a model against its 16-bit baseline, on one eval set."""

    __tablename__ = "quality_result"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model_card.id", index=True)
    scheme_id: int = Field(foreign_key="quant_scheme.id", index=True)
    eval_set: str = Field(description="e.g. wikitext-2 ctx512, pydoc-topics held-out")
    perplexity: float | None = None
    baseline_perplexity: float | None = None
    perplexity_delta_pct: float | None = Field(
        default=None, description="(ppl - baseline) / baseline x 100"
    )
    kl_divergence: float | None = Field(default=None, description="Mean KL vs the baseline")
    top1_agreement: float | None = Field(default=None, description="Fraction in [0, 1]")
    task_score: float | None = Field(
        default=None, description="Score (0-100) on the benchmark named by eval_set"
    )
    baseline_task_score: float | None = Field(
        default=None, description="The 16-bit baseline's score on the same benchmark"
    )
    recovery_pct: float | None = Field(
        default=None, description="task_score / baseline_task_score x 100"
    )
    bits_per_weight: float | None = Field(default=None, description="Measured on the artifact")
    compression_ratio: float | None = Field(default=None, description="Baseline bytes / bytes")
    engine: str | None = None
    basis: str
    source: str
    run_id: str | None = Field(
        default=None, index=True, description="The run that measured it (see the run table)"
    )
    notes: str = ""
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON),
        description="Further metrics of this row (per-layer errors, bandwidth use, ...)",
    )
    recorded_at: datetime = Field(default_factory=utc_now)

    model: ModelCard = Relationship(back_populates="quality_results")
    scheme: QuantScheme = Relationship(back_populates="quality_results")


class SeedState(SQLModel, table=True):
    """Which versions of the shipped seed data a catalog has received (see catalog/seeding.py)."""

    __tablename__ = "seed_state"

    version: int = Field(primary_key=True, description="Seed data version (SEED_VERSION)")
    applied_at: datetime = Field(default_factory=utc_now)
    quantplan_version: str = Field(description="quantplan release that applied it")


class Retraction(SQLModel, table=True):
    """One measurement row taken back: which row, who, when and why. Never deleted.

    What a retraction means for readers and writers: :mod:`quantplan.catalog.retractions`.
    """

    __tablename__ = "retraction"
    __table_args__ = (UniqueConstraint("kind", "row_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(description="profiles or quality")
    row_id: int = Field(description="Database id of the retracted profile or quality row")
    reason: str = Field(description="Why it was taken back")
    retracted_by: str = Field(description="Who took it back (login name unless given)")
    retracted_at: datetime = Field(default_factory=utc_now)
