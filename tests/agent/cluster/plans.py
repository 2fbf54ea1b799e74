"""Plan files for the cluster tests, made by the real planner from the shipped catalog."""

from __future__ import annotations

from functools import lru_cache

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.plan import Plan


@lru_cache(maxsize=1)
def seed_snapshot() -> CatalogSnapshot:
    """The shipped catalog, as apply's validation reads it."""
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.snapshot import load_snapshot

    return load_snapshot(open_catalog("sqlite://"))


@lru_cache(maxsize=1)
def default_model_plan() -> Plan:
    """A CPU-only plan for the default model (llama.cpp on c7i.xlarge on the seed catalog)."""
    from quantplan.planner.decide import make_plan
    from quantplan.planner.targets import Targets

    targets = Targets.model_validate(
        {
            "model": "SmolLM2-135M-Instruct",
            "workload": {"input_tokens": 64, "output_tokens": 32, "requests_per_s": 2},
            "constraints": {"device": "cpu", "clouds": ["aws"], "allow_mixed_fleet": False},
        }
    )
    return make_plan(targets, seed_snapshot())


def llama_cpp_plan(replicas: int = 1, instance_type: str = "c7i.xlarge") -> Plan:
    """The default model's plan, its fleet pinned to llama.cpp serving GGUF F16 on
    ``replicas`` nodes of ``instance_type`` -- what the test clusters' workers declare -- so
    the cluster tests do not depend on which deployment the catalog makes cheapest."""
    from quantplan.planner.plan import InstanceRef

    plan = default_model_plan()
    instance = next(
        i
        for i in seed_snapshot().instances
        if (i.cloud, i.name, i.region) == ("aws", instance_type, "us-east-1")
    )
    deployment = plan.fleet[0].model_copy(
        update={
            "method": "gguf",
            "scheme": "gguf-f16",
            "engine": "llama.cpp",
            "instance": InstanceRef(cloud="aws", name=instance_type, region="us-east-1"),
            "hardware": instance.hardware,
            "usd_per_hour": instance.price_per_hour,
            "replicas": replicas,
            "instances": replicas,
        }
    )
    return plan.model_copy(update={"fleet": (deployment,)})


GPU_MODEL = "Llama-3.1-8B"
GPU_INSTANCE = "g6.24xlarge"  # 4x L4 in the seed catalog


@lru_cache(maxsize=1)
def _gpu_model_plan() -> Plan:
    from quantplan.planner.decide import make_plan
    from quantplan.planner.targets import Targets

    targets = Targets.model_validate(
        {
            "model": GPU_MODEL,
            "workload": {"input_tokens": 512, "output_tokens": 128, "requests_per_s": 2},
            "constraints": {"device": "gpu", "clouds": ["aws"], "allow_mixed_fleet": False},
        }
    )
    return make_plan(targets, seed_snapshot())


def gpu_plan(
    gpus_per_replica: int = 2,
    instance_type: str = GPU_INSTANCE,
    model: str = GPU_MODEL,
    engine: str = "vllm",
) -> Plan:
    """A GPU plan: ``engine`` serving the model in bf16 on one ``instance_type`` instance split
    into replicas of ``gpus_per_replica`` GPUs (two replicas of 2 L4 by default), the fleet pinned
    as :func:`llama_cpp_plan` pins its own. ``model`` other than the planned one keeps the plan's
    numbers but names another catalog model (for shape checks)."""
    from quantplan.planner.plan import InstanceRef

    plan = _gpu_model_plan()
    instance = next(
        i
        for i in seed_snapshot().instances
        if (i.cloud, i.name, i.region) == ("aws", instance_type, "us-east-1")
    )
    per_instance = instance.accelerator_count // gpus_per_replica
    method, scheme = ("baseline", "bf16") if engine == "vllm" else ("gguf", "gguf-f16")
    deployment = plan.fleet[0].model_copy(
        update={
            "model": model,
            "method": method,
            "scheme": scheme,
            "engine": engine,
            "instance": InstanceRef(cloud="aws", name=instance_type, region="us-east-1"),
            "hardware": instance.hardware,
            "accelerator_count": gpus_per_replica,
            "usd_per_hour": instance.price_per_hour,
            "replicas": per_instance,
            "instances": 1,
            "replicas_per_instance": per_instance,
        }
    )
    targets = plan.targets.model_copy(update={"model": model})
    return plan.model_copy(update={"fleet": (deployment,), "model": model, "targets": targets})
