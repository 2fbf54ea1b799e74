"""The catalog's exchange format: one strict pydantic record per row kind.

Records name related rows by their natural keys (a model's name, a scheme's name, a hardware
name), never by database ids, so a file exported from one database imports into another. Seed
data, ``catalog import``/``export`` and agent reports all use these same records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from quantplan.catalog.vocabulary import Basis, DeviceKind, Engine, SchemeFamily


class Record(BaseModel):
    """Base of every record: unknown fields are refused, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class HardwareRecord(Record):
    name: str = Field(min_length=1, description="Unique hardware name, e.g. H100-SXM")
    kind: DeviceKind = Field(description="gpu or cpu")
    vendor: str = Field(min_length=1)
    memory_gb: float | None = Field(default=None, gt=0, description="Device memory (GPUs)")
    memory_bandwidth_gbps: float = Field(gt=0, description="GB/s per device or per CPU socket")
    bf16_tflops: float | None = Field(default=None, gt=0)
    int8_tops: float | None = Field(default=None, gt=0)
    compute_capability: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    isa_flags: str = Field(default="", description="Comma separated, e.g. avx2,avx512,amx")
    cores_per_socket: int | None = Field(default=None, gt=0)
    threads_per_core: int = Field(
        default=2, ge=1, le=8, description="vCPUs per physical core (1 where SMT is off, e.g. c7a)"
    )
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _gpu_has_memory(self) -> HardwareRecord:
        if self.kind == "gpu" and self.memory_gb is None:
            raise ValueError("a gpu needs memory_gb")
        return self


class InstanceRecord(Record):
    cloud: str = Field(min_length=1)
    name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    vcpus: int = Field(gt=0)
    memory_gib: float = Field(gt=0)
    hardware: str = Field(min_length=1, description="Hardware name: the GPU, or the CPU family")
    accelerator_count: int = Field(default=0, ge=0)
    price_per_hour: float = Field(gt=0, description="On-demand USD per hour")
    spot_price_per_hour: float | None = Field(default=None, gt=0)
    price_date: str | None = None
    price_source: str = Field(min_length=1)


class ModelRecord(Record):
    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    parameters_b: float = Field(gt=0, description="Parameters in billions")
    active_parameters_b: float | None = Field(default=None, gt=0)
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0)
    source: str = Field(min_length=1)


class SchemeRecord(Record):
    name: str = Field(min_length=1)
    family: SchemeFamily
    bits: int = Field(ge=1, le=32)
    group_size: int | None = Field(default=None, gt=0)
    variant: str | None = None
    bits_per_weight: float = Field(gt=0, le=32)
    engines: str = Field(min_length=1, description="Comma separated engines")
    source: str = Field(min_length=1)


class EngineSupportRecord(Record):
    engine: Engine
    family: SchemeFamily
    device_kind: DeviceKind
    bits: int = Field(default=0, ge=0, description="0 = any bit width")
    min_compute_capability: float | None = Field(default=None, gt=0)
    required_isa: str = ""
    kernel: str = Field(min_length=1)
    note: str = ""
    source: str = Field(min_length=1)


class ProfileRecord(Record):
    model: str
    scheme: str
    engine: Engine
    hardware: str
    hardware_count: int = Field(default=1, gt=0)
    instance: str | None = Field(default=None, description="cloud/name/region, if on one")
    input_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)
    concurrency: int = Field(gt=0)
    request_rate: float | None = Field(default=None, gt=0)
    output_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float | None = Field(default=None, ge=0)
    requests_per_s: float | None = Field(default=None, ge=0)
    ttft_p50_ms: float | None = Field(default=None, ge=0)
    ttft_p95_ms: float | None = Field(default=None, ge=0)
    itl_p50_ms: float | None = Field(default=None, ge=0)
    itl_p95_ms: float | None = Field(default=None, ge=0)
    e2e_p50_ms: float | None = Field(default=None, ge=0)
    peak_memory_gb: float | None = Field(default=None, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    cost_per_million_tokens: float | None = Field(default=None, ge=0)
    basis: Basis
    source: str = Field(min_length=1)
    run_id: str | None = None
    engine_version: str | None = None
    notes: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    recorded_at: datetime | None = None


class QualityRecord(Record):
    model: str
    scheme: str
    eval_set: str = Field(min_length=1)
    perplexity: float | None = Field(default=None, gt=0)
    baseline_perplexity: float | None = Field(default=None, gt=0)
    perplexity_delta_pct: float | None = None
    kl_divergence: float | None = Field(default=None, ge=0)
    top1_agreement: float | None = Field(default=None, ge=0, le=1)
    bits_per_weight: float | None = Field(default=None, gt=0)
    compression_ratio: float | None = Field(default=None, gt=0)
    engine: Engine | None = None
    basis: Basis
    source: str = Field(min_length=1)
    run_id: str | None = None
    notes: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    recorded_at: datetime | None = None

    @model_validator(mode="after")
    def _derive_delta(self) -> QualityRecord:
        has_any = any(
            v is not None for v in (self.perplexity, self.kl_divergence, self.top1_agreement)
        )
        if not has_any and self.perplexity_delta_pct is None:
            raise ValueError(
                "a quality record needs at least one of perplexity, perplexity_delta_pct, "
                "kl_divergence or top1_agreement"
            )
        if (
            self.perplexity_delta_pct is None
            and self.perplexity is not None
            and self.baseline_perplexity is not None
        ):
            delta = (self.perplexity - self.baseline_perplexity) / self.baseline_perplexity * 100
            object.__setattr__(self, "perplexity_delta_pct", round(delta, 6))
        return self


RecordKind = Literal["hardware", "instances", "models", "schemes", "support", "profiles", "quality"]

RECORD_TYPES: dict[str, type[Record]] = {
    "hardware": HardwareRecord,
    "instances": InstanceRecord,
    "models": ModelRecord,
    "schemes": SchemeRecord,
    "support": EngineSupportRecord,
    "profiles": ProfileRecord,
    "quality": QualityRecord,
}

# Import order: every kind only refers to kinds before it.
KIND_ORDER: tuple[str, ...] = tuple(RECORD_TYPES)
