"""Where a quantize job runs: on a GPU node when the method has a CUDA build and the cluster
has a GPU, else on a CPU node of the replicas' instance types. Pure: no Ray.

GPTQ and AWQ (llm-compressor) calibrate layer by layer; on a GPU that work is 6-9x faster than
on CPU cores (measured on an H200 for issue #16). The artifact goes to the shared store once,
so it does not matter which node made it: every replica pulls it from there, checked against
its manifest's sha256. GGUF conversion has no CUDA toolchain and stays on the CPU path.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster.naming import NodeOffer
from quantplan.agent.cluster.validation import QUANTIZE_TOOLCHAINS

QUANTIZE_GPUS = 1
"""GPUs one quantize job leases: llm-compressor's sequential pipeline onloads one layer at a
time onto one device, so a second GPU would sit idle."""


class QuantizePlacement(BaseModel):
    """Which nodes may run one quantize job, and with how many GPUs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_types: frozenset[str] = Field(description="Instance types the job may run on")
    gpus: int = Field(ge=0, description="GPUs the job leases on its node (0: a CPU job)")
    reason: str = Field(description="Why here, in words (shown in apply's progress)")


def gpu_quantizable(method: str) -> bool:
    """Whether ``method``'s toolchain has a CUDA build (the host-toolchain rule)."""
    from quantplan.agent.toolchains.specs import GPU_COUNTERPARTS

    return QUANTIZE_TOOLCHAINS.get(method) in GPU_COUNTERPARTS


def place_quantize(
    method: str, replica_instance_types: Iterable[str], offers: Iterable[NodeOffer]
) -> QuantizePlacement:
    """Where a ``method`` job for replicas of ``replica_instance_types`` runs, given the alive
    nodes' ``offers``. A GPU node of the replicas' own types is preferred (their nodes read the
    store anyway); any GPU node of the cluster beats every CPU node."""
    replicas = frozenset(replica_instance_types)
    with_gpus = [o for o in offers if o.gpus >= QUANTIZE_GPUS]
    if gpu_quantizable(method) and with_gpus:
        own = [o for o in with_gpus if o.instance_type in replicas]
        chosen = own or with_gpus
        types = frozenset(o.instance_type for o in chosen)
        kinds = sorted(
            {f"{o.accelerator_type or 'GPU'}{' (fake)' if o.fake_gpus else ''}" for o in chosen}
        )
        return QuantizePlacement(
            instance_types=types,
            gpus=QUANTIZE_GPUS,
            reason=f"{method} on {QUANTIZE_GPUS} {'/'.join(kinds)} GPU of "
            f"{', '.join(sorted(types))}",
        )
    why = "no GPU node in the cluster" if gpu_quantizable(method) else "no CUDA build"
    return QuantizePlacement(
        instance_types=replicas,
        gpus=0,
        reason=f"{method} on CPU ({why}) on {', '.join(sorted(replicas))}",
    )
