"""What an applied plan runs, on disk, and the difference between that and a (new) plan.

A plan becomes a list of :class:`ReplicaSpec` -- one per replica, named so the same plan always
gives the same names. Applying compares those with the replicas recorded as running and only
starts what is missing and stops what is no longer wanted: applying the same plan twice changes
nothing, and a changed plan shows its diff before anything moves.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.toolchains.gpu import accelerator_type_for_hardware
from quantplan.errors import QuantplanError
from quantplan.paths import data_dir
from quantplan.planner.plan import Deployment, Plan


class ReplicaSpec(BaseModel):
    """One replica a plan asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replica_id: str
    model: str
    method: str
    scheme: str
    engine: str
    instance_type: str
    instance: str = Field(description="cloud/name/region")
    usd_per_hour: float = Field(ge=0)
    deployment_index: int = Field(ge=0)
    concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Sequences in flight per replica at the plan's peak (its operating point); "
        "llama-server gets this many parallel slots",
    )
    context_tokens: int | None = Field(
        default=None, ge=1, description="Prompt plus output tokens of one request in the plan"
    )
    accelerators: int = Field(default=0, ge=0, description="GPUs per replica (0 = CPU)")
    accelerator_type: str | None = Field(
        default=None, description="Ray accelerator type of those GPUs, e.g. H100"
    )
    replicas_per_instance: int = Field(
        default=1, ge=1, description="Replicas side by side on one node (GPU subsets)"
    )
    gpu_layers: int | None = Field(
        default=None,
        ge=1,
        description="llama.cpp layers on the GPU when the plan splits the model with the host "
        "(-ngl); None = all of them",
    )


class ReplicaRecord(BaseModel):
    """A replica that was started, and where it answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: ReplicaSpec
    node_id: str
    base_url: str
    served_model: str
    pid: int
    artifact_path: str
    ignore_eos_body: dict[str, object] = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ReplicaFailure(BaseModel):
    """A replica ``apply`` tried to start and could not: its node was lost, or its engine
    failed. Kept so that ``status`` shows it and ``destroy`` stops whatever it left behind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: ReplicaSpec
    node_id: str | None = Field(description="The node it was on when it failed, if any")
    reason: str = Field(description="One line: what happened")
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class DeploymentState(BaseModel):
    """Everything ``quantplan apply`` started (or tried to) for one deployment name."""

    model_config = ConfigDict(extra="forbid")

    name: str
    plan_hash: str
    plan_path: str | None = None
    replicas: dict[str, ReplicaRecord] = Field(default_factory=dict)
    failed: dict[str, ReplicaFailure] = Field(
        default_factory=dict, description="Replicas that did not start, by id"
    )
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class PlanDiff(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    add: tuple[ReplicaSpec, ...] = ()
    remove: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()

    @property
    def unchanged(self) -> bool:
        return not self.add and not self.remove

    def describe(self) -> list[str]:
        lines = [
            f"+ {s.replica_id} ({s.scheme} on {s.engine}, {s.instance_type})" for s in self.add
        ]
        lines += [f"- {replica_id}" for replica_id in self.remove]
        lines += [f"= {replica_id}" for replica_id in self.keep]
        return lines


def states_dir() -> Path:
    return data_dir() / "deployments"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


_HASHED_WHEN_SET = ("gpu_layers", "total_layers")
"""Deployment fields added later: left out of the hash while unset, so a plan written before
them hashes as it did (an unchanged deployment stays unchanged)."""


def plan_hash(plan: Plan) -> str:
    fleet = [
        {
            key: value
            for key, value in deployment.model_dump(mode="json").items()
            if value is not None or key not in _HASHED_WHEN_SET
        }
        for deployment in plan.fleet
    ]
    return hashlib.sha256(json.dumps(fleet, sort_keys=True).encode()).hexdigest()[:16]


def replica_specs(plan: Plan, name: str) -> list[ReplicaSpec]:
    """The replicas ``plan`` asks for, with stable ids (same plan, same ids)."""
    workload = plan.targets.workload
    context_tokens = workload.input_tokens + workload.output_tokens
    specs: list[ReplicaSpec] = []
    for index, deployment in enumerate(plan.fleet):
        for number in range(1, deployment.replicas + 1):
            specs.append(_spec(name, index, deployment, number, context_tokens))
    return specs


def _spec(
    name: str, index: int, deployment: Deployment, number: int, context_tokens: int
) -> ReplicaSpec:
    replica_id = _slug(
        f"{name}-{deployment.scheme}-{deployment.engine}-{deployment.instance.name}-{number}"
    )
    return ReplicaSpec(
        replica_id=replica_id,
        model=deployment.model,
        method=deployment.method,
        scheme=deployment.scheme,
        engine=deployment.engine,
        instance_type=deployment.instance.name,
        instance=str(deployment.instance),
        # usd_per_hour prices a whole instance; a replica pays its share of it.
        usd_per_hour=deployment.usd_per_hour / deployment.replicas_per_instance,
        deployment_index=index,
        concurrency=deployment.metrics.concurrency,
        context_tokens=context_tokens,
        accelerators=deployment.accelerator_count,
        accelerator_type=(
            accelerator_type_for_hardware(deployment.hardware)
            if deployment.accelerator_count
            else None
        ),
        replicas_per_instance=deployment.replicas_per_instance,
        gpu_layers=deployment.gpu_layers,
    )


def diff(wanted: list[ReplicaSpec], state: DeploymentState | None, alive: set[str]) -> PlanDiff:
    """What to start and stop. A recorded replica that no longer answers counts as missing."""
    running = {rid for rid in (state.replicas if state else {}) if rid in alive}
    wanted_ids = {spec.replica_id for spec in wanted}
    return PlanDiff(
        add=tuple(spec for spec in wanted if spec.replica_id not in running),
        remove=tuple(
            sorted(rid for rid in (state.replicas if state else {}) if rid not in wanted_ids)
        ),
        keep=tuple(sorted(wanted_ids & running)),
    )


def load_state(name: str) -> DeploymentState | None:
    path = states_dir() / f"{_slug(name)}.json"
    if not path.is_file():
        return None
    return _read_state(path)


def _read_state(path: Path) -> DeploymentState:
    """A state file, or one clear error: it is ours, but a disk full or an edit can break it."""
    from pydantic import ValidationError

    try:
        return DeploymentState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as error:
        what = error.strerror if isinstance(error, OSError) else f"{error.error_count()} problem(s)"
        raise QuantplanError(
            f"deployment state {str(path)!r} cannot be read ({what})",
            hint="stop its replicas with `quantplan cluster down`, then delete the file",
        ) from None


def save_state(state: DeploymentState) -> Path:
    directory = states_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_slug(state.name)}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(state.model_dump_json(indent=2))
    temporary.replace(path)
    return path


def delete_state(name: str) -> None:
    (states_dir() / f"{_slug(name)}.json").unlink(missing_ok=True)


def all_states() -> list[DeploymentState]:
    directory = states_dir()
    if not directory.is_dir():
        return []
    return [_read_state(path) for path in sorted(directory.glob("*.json"))]


# A replica's engine is sized for the plan's request shape with room to spare: requests
# longer than the plan assumed still fit up to twice its prompt + output, and never less than
# 512 tokens, so a short planned shape does not turn ordinary prompts into errors.
MIN_CONTEXT_TOKENS = 512


def serve_shape(spec: ReplicaSpec) -> dict[str, int | float | str]:
    """The engine options a replica starts with, from the plan's operating point: parallel
    slots (llama-server's -np, vLLM's --max-num-seqs) at the planned concurrency, the context
    per sequence, and for a GPU replica its GPUs and the share of their memory the planner
    sized it with (its KV cache fits there), and the layers it puts there when the plan splits
    the model between GPU and host."""
    from quantplan.planner.hardware import GPU_MEMORY_UTILIZATION

    shape: dict[str, int | float | str] = {}
    if spec.accelerators:
        shape["gpus"] = spec.accelerators
        shape["gpu_memory_fraction"] = GPU_MEMORY_UTILIZATION
        if spec.accelerator_type:
            shape["accelerator_type"] = spec.accelerator_type
        if spec.gpu_layers is not None:
            shape["gpu_layers"] = spec.gpu_layers
    if spec.concurrency is not None:
        shape["parallel_slots"] = spec.concurrency
    if spec.context_tokens is not None:
        wanted = max(MIN_CONTEXT_TOKENS, 2 * spec.context_tokens)
        shape["max_model_len"] = -(-wanted // 256) * 256  # whole 256-token blocks
    return shape
