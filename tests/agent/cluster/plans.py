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
    from quantplan.planner.planning import make_plan
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
