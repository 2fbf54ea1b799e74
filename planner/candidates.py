"""The candidate space: every (scheme, engine) x instance type the planner looks at.

Built once per plan from the snapshot and the targets, as read-only arrays indexed
``[option, instance]`` -- the planner's cost and time maps are computed over these, then solved.
Nothing here mutates the snapshot or the targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from quantplan.catalog.records import (
    HardwareRecord,
    InstanceRecord,
    SchemeRecord,
    group_tiling_problem,
)
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.errors import QuantplanError
from quantplan.planner.compatibility import SupportMatrix
from quantplan.planner.hardware import MachineShare, machine_shares, model_shape_from_record
from quantplan.planner.plan import Estimate
from quantplan.planner.quality import QualityIndex
from quantplan.planner.spot import SpotTerms, expected_spot_price, spot_interruption
from quantplan.planner.targets import ModelShape, Targets
from quantplan.planner.traits import engine_traits


@dataclass(frozen=True)
class Option:
    """One (scheme, engine) pair: a way to quantize and serve."""

    scheme: SchemeRecord
    engine: str

    @property
    def family(self) -> str:
        return self.scheme.family


@dataclass(frozen=True)
class CandidateSpace:
    """Options x instance columns with their static facts; arrays are read-only.

    A column is an instance type with one way of placing replicas on it: a multi-GPU instance
    appears once per GPU subset size (8 x 1 GPU, 4 x 2, 2 x 4, 1 x 8).
    """

    shape: ModelShape
    options: tuple[Option, ...]
    instances: tuple[InstanceRecord, ...]  # (I,) one per column; an instance may repeat
    machines: tuple[MachineShare, ...]  # (I,) what one replica gets of that instance
    hardware: tuple[HardwareRecord, ...]
    replicas_per_instance: np.ndarray  # (I,)
    option_masks: Mapping[str, np.ndarray]  # target path -> (S,) passes families/engines
    instance_masks: Mapping[str, np.ndarray]  # target path -> (I,) passes clouds, device, ...
    compatible: np.ndarray  # (S, I)
    compat_reason: np.ndarray  # (S, I) index into reasons
    reasons: tuple[str, ...]
    price_on_demand: np.ndarray  # (I,) $/h
    price_spot: np.ndarray  # (I,) expected $/h of a spot slot, its on-demand fallback counted;
    # NaN where no spot price (planner/spot.py)
    ppl: tuple[Estimate, ...]  # (S,) perplexity increase %
    kl: tuple[Estimate, ...]  # (S,) KL divergence
    recovery: tuple[Estimate | None, ...] = ()  # (S,) task recovery % on the asked benchmark
    price_notes: tuple[str, ...] = ()  # doubtful prices left out, in words
    price_spot_listed: np.ndarray | None = None  # (I,) the catalog's spot $/h (None: as price_spot)
    spot_terms: tuple[SpotTerms, ...] = ()  # (I,) interruption band and fallback share

    def with_spot_prices(self, listed: np.ndarray) -> CandidateSpace:
        """This space with spot listed at ``listed`` $/h, the fallback priced in again."""
        shares = np.array([t.share_high for t in self.spot_terms], dtype=float)
        expected = expected_spot_price(listed, self.price_on_demand, shares)
        return replace(self, price_spot=_readonly(expected), price_spot_listed=_readonly(listed))


MAX_NAMED_EXCLUSIONS = 5
EXCLUDED_PRICES_PHRASE = "doubtful price(s) left out"
"""Marks the plan assumption that names the flagged prices left out (the CLI, the report and
the dashboard find it by this phrase)."""


def usable_prices(
    instances: tuple[InstanceRecord, ...], targets: Targets
) -> tuple[tuple[InstanceRecord, ...], tuple[str, ...]]:
    """The instances the planner may price, and a note on the doubtful prices left out.

    A row flagged as a whole (``price_flag``) is dropped; a flagged spot price alone
    (``spot_flag``) is dropped and the row keeps its on-demand price. Only rows the targets'
    cloud and region filters let through are named, so the note speaks about this plan."""
    if targets.constraints.allow_flagged_prices:
        return instances, ()
    c = targets.constraints
    kept: list[InstanceRecord] = []
    left_out: list[str] = []
    for row in instances:
        relevant = (not c.clouds or row.cloud in c.clouds) and (
            not c.regions or row.region in c.regions
        )
        key = f"{row.cloud}/{row.name}/{row.region}"
        if row.price_flag:
            if relevant:
                left_out.append(f"{key} ({row.price_flag})")
            continue
        if row.spot_flag and row.spot_price_per_hour is not None:
            if relevant and c.spot_allowed:
                left_out.append(f"{key} spot price ({row.spot_flag})")
            row = row.model_copy(update={"spot_price_per_hour": None})
        kept.append(row)
    if not left_out:
        return tuple(kept), ()
    named = "; ".join(left_out[:MAX_NAMED_EXCLUSIONS])
    more = len(left_out) - MAX_NAMED_EXCLUSIONS
    note = (
        f"{len(left_out)} {EXCLUDED_PRICES_PHRASE} (--allow-flagged-prices to use them): "
        f"{named}" + (f"; and {more} more" if more > 0 else "")
    )
    return tuple(kept), (note,)


def resolve_model(targets: Targets, snapshot: CatalogSnapshot) -> ModelShape:
    """The model's shape: from the catalog by name (near-miss hint if unknown), or inline."""
    if isinstance(targets.model, ModelShape):
        return targets.model
    return model_shape_from_record(snapshot.get_model(targets.model))


def _instance_masks(
    instances: tuple[InstanceRecord, ...], hardware: tuple[HardwareRecord, ...], targets: Targets
) -> dict[str, np.ndarray]:
    """One pass/fail mask per instance filter of the targets, keyed by its dotted path."""
    c = targets.constraints
    pairs = list(zip(instances, hardware, strict=True))
    tests = {
        "constraints.device": lambda i, h: c.device == "any" or h.kind == c.device,
        "constraints.clouds": lambda i, h: not c.clouds or i.cloud in c.clouds,
        "constraints.regions": lambda i, h: not c.regions or i.region in c.regions,
        "constraints.instance_allow": lambda i, h: (
            not c.instance_allow or i.name in c.instance_allow
        ),
        "constraints.instance_deny": lambda i, h: i.name not in c.instance_deny,
        "constraints.accelerator_allow": lambda i, h: (
            not c.accelerator_allow or h.name in c.accelerator_allow
        ),
        "constraints.accelerator_deny": lambda i, h: h.name not in c.accelerator_deny,
    }
    return {
        name: _readonly(np.array([test(i, h) for i, h in pairs], dtype=bool))
        for name, test in tests.items()
    }


def _option_masks(options: tuple[Option, ...], targets: Targets) -> dict[str, np.ndarray]:
    c = targets.constraints
    families = [not c.families or o.family in c.families for o in options]
    engines = [not c.engines or o.engine in c.engines for o in options]
    return {
        "constraints.families": _readonly(np.array(families, dtype=bool)),
        "constraints.engines": _readonly(np.array(engines, dtype=bool)),
    }


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def tensor_parallel_problem(shape: ModelShape, gpus: int) -> str | None:
    """Why vLLM cannot shard ``shape`` over ``gpus`` GPUs by tensor parallelism, or None.

    vLLM splits attention heads across the GPUs of a replica: the heads must divide evenly,
    and the KV heads too, or be replicated (the GPU count a multiple of the KV heads).
    llama.cpp splits by layers and has no such rule.
    """
    if gpus <= 1:
        return None
    heads_ok = shape.heads % gpus == 0
    kv_ok = shape.kv_heads % gpus == 0 if shape.kv_heads >= gpus else gpus % shape.kv_heads == 0
    if heads_ok and kv_ok:
        return None
    return (
        f"vLLM tensor parallel over {gpus} GPUs needs {shape.name}'s {shape.heads} attention "
        f"heads and {shape.kv_heads} KV heads to split evenly across them"
    )


def _block(
    compatible: np.ndarray,
    compat_reason: np.ndarray,
    reasons: list[str],
    rows: np.ndarray,
    column: int,
    problem: str,
) -> None:
    """Mark the still-compatible ``rows`` of ``column`` incompatible, for ``problem``."""
    if problem not in reasons:
        reasons.append(problem)
    blocked = rows & compatible[:, column]
    compatible[blocked, column] = False
    compat_reason[blocked, column] = reasons.index(problem)


def _layer_shape_rules(
    shape: ModelShape,
    options: tuple[Option, ...],
    machines: tuple[MachineShare, ...],
    compatible: np.ndarray,
    compat_reason: np.ndarray,
    reasons: list[str],
    snapshot: CatalogSnapshot,
) -> tuple[np.ndarray, np.ndarray]:
    """``compatible`` without the replicas of tensor-parallel engines (vLLM) whose GPU count
    does not divide the heads, and without grouped schemes whose groups do not tile the
    layers (on every engine, per GPU where the engine splits the layers)."""
    split = np.array(
        [engine_traits(snapshot, o.engine, "gpu").tensor_parallel for o in options], bool
    )
    # Each grouped option as a one-row mask, for _block.
    grouped = {
        s: np.arange(len(options)) == s
        for s, o in enumerate(options)
        if o.scheme.group_size is not None
    }
    if not split.any() and not grouped:
        return compatible, compat_reason
    compatible, compat_reason = compatible.copy(), compat_reason.copy()
    problems: dict[tuple[str, int], str | None] = {}
    for i, machine in enumerate(machines):
        problem = tensor_parallel_problem(shape, machine.accelerator_count)
        if problem is not None and split.any():
            _block(compatible, compat_reason, reasons, split, i, problem)
        for s, only in grouped.items():
            scheme = options[s].scheme
            shards = max(machine.accelerator_count, 1) if split[s] else 1
            key = (scheme.name, shards)
            if key not in problems:
                problems[key] = group_tiling_problem(shape, scheme, shards)
            found = problems[key]
            if found is not None:
                _block(compatible, compat_reason, reasons, only, i, found)
    return compatible, compat_reason


def build_candidate_space(targets: Targets, snapshot: CatalogSnapshot) -> CandidateSpace:
    """Every option x instance with filters, compatibility, prices and quality evidence."""
    shape = resolve_model(targets, snapshot)
    context = targets.workload.input_tokens + targets.workload.output_tokens
    if context > shape.max_context:
        raise QuantplanError(
            f"requests of {targets.workload.input_tokens} + {targets.workload.output_tokens} "
            f"tokens exceed {shape.name}'s context of {shape.max_context} tokens",
            hint="lower --input-tokens/--output-tokens",
        )
    options = tuple(
        Option(scheme, engine.strip())
        for scheme in snapshot.schemes
        for engine in scheme.engines.split(",")
        if engine.strip()
    )
    hw_by_name = snapshot.hardware_by_name
    priced, price_notes = usable_prices(snapshot.instances, targets)
    # One column per way of placing replicas on an instance (see machine_shares).
    slots = [
        (instance, share)
        for instance in priced
        if instance.hardware in hw_by_name
        for share in machine_shares(instance, hw_by_name[instance.hardware])
    ]
    instances = tuple(instance for instance, _ in slots)
    machines = tuple(share for _, share in slots)
    hardware = tuple(hw_by_name[i.hardware] for i in instances)

    # Compatibility depends only on (option, hardware): decide it per distinct hardware.
    matrix = SupportMatrix(snapshot.support)
    hw_names = sorted({h.name for h in hardware})
    hw_index = {name: k for k, name in enumerate(hw_names)}
    reasons: list[str] = []
    reason_index: dict[str, int] = {}
    ok_by_hw = np.zeros((len(options), len(hw_names)), dtype=bool)
    why_by_hw = np.zeros((len(options), len(hw_names)), dtype=np.int32)
    for s, option in enumerate(options):
        for name, k in hw_index.items():
            verdict = matrix.check(option.engine, option.scheme, hw_by_name[name])
            ok_by_hw[s, k] = verdict.ok
            if verdict.reason not in reason_index:
                reason_index[verdict.reason] = len(reasons)
                reasons.append(verdict.reason)
            why_by_hw[s, k] = reason_index[verdict.reason]
    columns = np.array([hw_index[h.name] for h in hardware], dtype=np.int64)
    compatible = ok_by_hw[:, columns] if len(columns) else np.zeros((len(options), 0), bool)
    compat_reason = why_by_hw[:, columns] if len(columns) else np.zeros((len(options), 0), int)
    compatible, compat_reason = _layer_shape_rules(
        shape, options, machines, compatible, compat_reason, reasons, snapshot
    )

    index = QualityIndex(snapshot.quality, snapshot.models, snapshot.schemes)
    schemes = {o.scheme.name: o.scheme for o in options}
    ppl_by_scheme = {name: index.evidence(shape, s, "ppl") for name, s in schemes.items()}
    kl_by_scheme = {name: index.evidence(shape, s, "kl") for name, s in schemes.items()}
    benchmark = targets.quality.recovery_benchmark
    recovery_by_scheme = {
        name: index.evidence(shape, s, "recovery", benchmark) if benchmark else None
        for name, s in schemes.items()
    }

    spot = [np.nan if i.spot_price_per_hour is None else i.spot_price_per_hour for i in instances]
    terms = tuple(
        SpotTerms.of(spot_interruption(snapshot, i, h.kind))
        for i, h in zip(instances, hardware, strict=True)
    )
    space = CandidateSpace(
        shape=shape,
        options=options,
        instances=instances,
        machines=machines,
        hardware=hardware,
        replicas_per_instance=_readonly(
            np.array([m.replicas_per_instance for m in machines], dtype=np.int64)
        ),
        option_masks=MappingProxyType(_option_masks(options, targets)),
        instance_masks=MappingProxyType(_instance_masks(instances, hardware, targets)),
        compatible=_readonly(np.ascontiguousarray(compatible)),
        compat_reason=_readonly(np.ascontiguousarray(compat_reason)),
        reasons=tuple(reasons),
        price_on_demand=_readonly(np.array([i.price_per_hour for i in instances], dtype=float)),
        price_spot=_readonly(np.array(spot, dtype=float)),
        ppl=tuple(ppl_by_scheme[o.scheme.name] for o in options),
        kl=tuple(kl_by_scheme[o.scheme.name] for o in options),
        recovery=tuple(recovery_by_scheme[o.scheme.name] for o in options),
        price_notes=price_notes,
        spot_terms=terms,
    )
    return space.with_spot_prices(np.array(spot, dtype=float))
