"""Jobs a node agent runs, and what it answers: strict JSON both ways.

A job's ``job_id`` is also the run id of whatever it reports, and it stays the same when the job
is rerun on another node after a failure -- that is what makes a rerun write no second row.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from quantplan.catalog.registry import EngineName
from quantplan.errors import QuantplanError


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(min_length=1, max_length=200, description="Run id; same on every retry")


class QuantizeJob(_Job):
    """Quantize a model once; the artifact lands in the shared, content-addressed store."""

    kind: Literal["quantize"] = "quantize"
    model: str = Field(default="default", description="'default' or a model directory")
    method: Literal["gptq", "awq", "gguf"]
    options: dict[str, Any] = Field(default_factory=dict, description="The method's config")
    store_url: str | None = Field(default=None, description="Artifact store (path or fsspec URL)")
    gpus: int = Field(
        default=0,
        ge=0,
        le=8,
        description="GPUs the job leases from Ray on its node (0: quantize on CPU cores); its "
        "quantizer then runs its toolchain's CUDA build",
    )


class ServeJob(_Job):
    """Start an engine server for a replica and keep it running (the agent owns it)."""

    kind: Literal["serve"] = "serve"
    replica_id: str
    engine: EngineName
    artifact_path: str = Field(description="Model directory or GGUF file every node can read")
    artifact_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{24}$",
        description="A quantized artifact: the agent pulls it from store_url (remote stores "
        "download into the node's mirror) and checks every file against the manifest's sha256 "
        "before its engine loads it; artifact_path is then only what the driver saw",
    )
    store_url: str | None = Field(default=None, description="Artifact store of artifact_id")
    port: int | None = Field(default=None, ge=1, le=65535)
    api_key: str | None = None
    threads: int | None = Field(default=None, ge=1)
    startup_timeout_s: float = Field(default=300.0, gt=0)
    parallel_slots: int | None = Field(
        default=None, ge=1, le=512, description="Requests batched together (llama-server's -np)"
    )
    max_model_len: int | None = Field(
        default=None, ge=64, description="Context tokens per sequence; None = the engine default"
    )
    gpus: int = Field(
        default=0, ge=0, le=16, description="GPUs the replica gets from Ray (0 = a CPU replica)"
    )
    accelerator_type: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,40}$",
        description="Ray accelerator type the GPUs must be (accelerator_type:<T>)",
    )
    gpu_memory_fraction: float | None = Field(
        default=None, gt=0, le=1, description="Share of each GPU's memory the engine may take"
    )
    gpu_layers: int | None = Field(
        default=None,
        ge=1,
        description="llama.cpp layers on the GPU, the rest on the host (-ngl); None = all",
    )


class StopJob(_Job):
    kind: Literal["stop"] = "stop"
    replica_id: str


class BenchmarkJob(_Job):
    """Benchmark an endpoint with the shared protocol and report the profile."""

    kind: Literal["benchmark"] = "benchmark"
    base_url: str
    served_model: str = Field(description="Model name the server expects in requests")
    api_key: str | None = None
    model: str = Field(description="Catalog model name for the profile row")
    scheme: str
    engine: EngineName
    hardware: str = Field(description="Catalog hardware name of the serving node")
    instance: str | None = Field(default=None, description="cloud/name/region of the node")
    usd_per_hour: float | None = Field(default=None, ge=0)
    concurrencies: tuple[int, ...] = (1, 2)
    input_tokens: int = Field(default=64, gt=0)
    output_tokens: int = Field(default=32, gt=0)
    num_requests: int | None = Field(default=None, ge=1)
    replica_id: str | None = None
    ignore_eos_body: dict[str, Any] = Field(default_factory=dict)
    gpus: int = Field(
        default=0,
        ge=0,
        le=16,
        description="GPUs the replica serves on: its profile is then filed under the catalog "
        "name of the node's GPU, hardware_count = gpus, with the GPU's provenance",
    )


class ProbeJob(_Job):
    """A job whose content does not matter (scheduling and failover tests): waits, answers."""

    kind: Literal["probe"] = "probe"
    seconds: float = Field(default=5.0, ge=0, le=600)


Job = Annotated[
    QuantizeJob | ServeJob | StopJob | BenchmarkJob | ProbeJob, Field(discriminator="kind")
]
JOB = TypeAdapter(Job)


class JobResult(BaseModel):
    """A node agent's answer. Failures carry the reason; payload holds the job's outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    kind: str
    node_id: str
    instance_type: str
    status: Literal["succeeded", "failed"]
    detail: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    seconds: float = Field(default=0.0, ge=0)


def quantize_options_for_scheme(method: str, scheme: str) -> dict[str, object]:
    """The quantize options that produce ``scheme`` (catalog scheme names)."""
    if method == "gguf":
        return {"type": scheme.removeprefix("gguf-").upper(), "measure_layer_error": False}
    match = re.fullmatch(r"(gptq|awq)-(w4a16|w8a16)-g(\d+)", scheme)
    if match is None:
        raise QuantplanError(f"do not know how to produce scheme {scheme!r} with {method}")
    return {"scheme": match.group(2).upper(), "group_size": int(match.group(3))}
