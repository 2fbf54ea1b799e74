"""Sizing: model bytes, KV cache, usable memory and effective bandwidth/compute per instance.

Pure functions over catalog records. Every constant here is a modelling assumption and is
listed in :data:`ASSUMPTIONS` so plans can show what their numbers rest on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from quantplan.catalog.records import (
    EngineTraitRecord,
    HardwareRecord,
    InstanceRecord,
    MethodTraitRecord,
    SchemeRecord,
)
from quantplan.planner.targets import ModelShape

GIB_TO_GB = 1.073741824
KV_BYTES_PER_ELEMENT = 2.0
"""KV cache kept in 16-bit (vLLM and llama.cpp defaults)."""
GPU_MEMORY_UTILIZATION = 0.90
"""vLLM's default share of GPU memory it claims; llama.cpp is given the same."""
HOST_MEMORY_SHARE = 0.90
HOST_RESERVED_GB = 1.0
"""Memory a CPU host keeps for the OS and the server process itself."""


@dataclass(frozen=True)
class Interconnect:
    """The links a GPU's tensor-parallel all-reduces cross inside one machine."""

    name: str
    bandwidth_gbps: float  # per GPU and direction, spec (datasheets print both directions)
    one_shot: bool  # engines can use a latency-optimised all-reduce over it (NVLink peers)
    ring_latency_s: float  # fixed cost of one NCCL ring all-reduce (small messages)
    source: str


NVLINK_RING_LATENCY_S = 25e-6
"""NCCL's own cost model gives 25.2 us for a 64-byte all-reduce on 8 H100s over NVLink
(NVIDIA/nccl issue #1453, NCCL_DEBUG tuning lines)."""
PCIE_RING_LATENCY_S = 42e-6
"""An 8-byte all-reduce on 8 RTX 4090s over PCIe took 42.6 us (NVIDIA/nccl issue #1530)."""
RING_BUS_EFFICIENCY = 0.7
"""Share of the per-direction link bandwidth an NCCL ring all-reduce reaches on large messages:
nccl-tests reported 200-210 GB/s bus bandwidth on 8 A100 SXM over NVLink (300 GB/s per
direction; NVIDIA/nccl-tests issues #149 and #178)."""
ONE_SHOT_LATENCY_S = 9e-6
ONE_SHOT_BUS_EFFICIENCY = 0.11
"""vLLM's custom (one-shot) all-reduce over NVLink on H100s: 9-10 us for 512 B to 32 KB and
27-45 us for 1 MB over 2-8 GPUs, about 50 GB/s of ring traffic against 450 GB/s per direction
(sgl-project/sglang PR #2904, table 'vllm', without CUDA graphs). It wins below about a
megabyte, the size of a decode step's activations; the ring wins above (prefill)."""


def _nvlink(name: str, bandwidth: float, source: str) -> Interconnect:
    return Interconnect(name, bandwidth, True, NVLINK_RING_LATENCY_S, source)


def _pcie(name: str, bandwidth: float, source: str) -> Interconnect:
    return Interconnect(name, bandwidth, False, PCIE_RING_LATENCY_S, source)


PCIE_GEN3 = _pcie(
    "PCIe 3.0 x16", 16.0, "PCIe 3.0 x16: 8 GT/s x 16 lanes, about 16 GB/s per direction"
)
PCIE_GEN4 = _pcie(
    "PCIe 4.0 x16",
    32.0,
    "PCIe 4.0 x16: 16 GT/s x 16 lanes, about 32 GB/s per direction (the 64 GB/s NVIDIA "
    "datasheets print is both directions)",
)
NVLINK2 = _nvlink(
    "NVLink 2 (SXM2)", 150.0, "NVIDIA V100 datasheet: NVLink 300 GB/s (both directions)"
)
NVLINK3 = _nvlink(
    "NVLink 3 (NVSwitch)",
    300.0,
    "NVIDIA A100 datasheet: NVLink 600 GB/s (both directions); 8-GPU A100 machines "
    "(p4d, ND96asr_v4, a2-highgpu) are HGX SXM4 boards with NVSwitch",
)
NVLINK4 = _nvlink(
    "NVLink 4 (NVSwitch)",
    450.0,
    "NVIDIA H100 and H200 datasheets: NVLink 900 GB/s (both directions), HGX boards",
)
NVLINK_BRIDGE_H100 = _nvlink(
    "NVLink bridge (pairs)",
    300.0,
    "NVIDIA H100 NVL datasheet: NVLink bridge 600 GB/s (both directions) between a pair; "
    "the catalog's H100 NVL machines hold at most 2",
)
INTERCONNECTS: dict[str, Interconnect] = {
    "V100-16GB": NVLINK2,
    "A100-40GB": NVLINK3,
    "A100-80GB-SXM": NVLINK3,
    "H100-SXM": NVLINK4,
    "H200": NVLINK4,
    "H100-NVL": NVLINK_BRIDGE_H100,
    "T4": PCIE_GEN3,
    "P40": PCIE_GEN3,
    "RTX-2080": PCIE_GEN3,
}  # fmt: skip
DEFAULT_INTERCONNECT = PCIE_GEN4
"""GPUs not in :data:`INTERCONNECTS` (A10G, L4, L40S, A100 PCIe, RTX 30/40) talk over PCIe 4.0
(no NVLink on these boards as the clouds rent them)."""


def interconnect(hardware: HardwareRecord) -> Interconnect:
    """The links between ``hardware``'s GPUs in one machine (PCIe 4.0 unless listed)."""
    return INTERCONNECTS.get(hardware.name, DEFAULT_INTERCONNECT)


def allreduce_seconds(
    message_bytes: np.ndarray | float,
    shards: np.ndarray | int,
    bandwidth_gbps: np.ndarray | float,
    ring_latency_s: np.ndarray | float,
    one_shot: np.ndarray | bool,
) -> np.ndarray:
    """Seconds of one all-reduce of ``message_bytes`` over ``shards`` GPUs (0 for one GPU).

    Each GPU sends and receives ``2 (n - 1) / n`` of the message (ring or one-shot alike); the
    engine takes the faster of NCCL's ring (higher latency, near link speed) and, between
    NVLink peers, the latency-optimised one-shot kernel (vLLM's custom all-reduce)."""
    n = np.maximum(np.asarray(shards, dtype=float), 1.0)
    traffic = 2 * (n - 1) / n * np.asarray(message_bytes, dtype=float)
    link = np.maximum(np.asarray(bandwidth_gbps, dtype=float), 1e-6) * 1e9
    ring = ring_latency_s + traffic / (link * RING_BUS_EFFICIENCY)
    fast = ONE_SHOT_LATENCY_S + traffic / (link * ONE_SHOT_BUS_EFFICIENCY)
    best = np.where(one_shot, np.minimum(ring, fast), ring)
    return np.where(n > 1, best, 0.0)


ALLREDUCES_PER_LAYER = 2
"""Megatron-style tensor parallelism reduces each layer's activations twice: after the
attention output projection and after the MLP down projection."""
ACTIVATION_BYTES = 2.0
"""Activations all-reduced in 16-bit."""
UNTIED_EMBEDDING_COPIES = 2
"""Embeddings and lm_head: GPTQ/AWQ checkpoints keep both at 16 bits."""

ASSUMPTIONS: tuple[str, ...] = (
    "KV cache in 16-bit; context per sequence = mean input + output tokens",
    f"GPU replicas may use {GPU_MEMORY_UTILIZATION:.0%} of GPU memory, minus the engine's "
    "runtime overhead per GPU (its engine traits, below)",
    f"CPU replicas may use {HOST_MEMORY_SHARE:.0%} of host memory minus "
    f"{HOST_RESERVED_GB:.0f} GB; a VM gets a share of its socket's memory bandwidth and "
    "compute in proportion to its physical cores (vCPUs / the family's threads per core)",
    "a scheme's bits per weight cover the whole model (GGUF: whole-model mixes) unless its "
    "method traits keep embeddings and lm_head in 16-bit (GPTQ, AWQ)",
    "a multi-GPU instance holds one replica per GPU subset (1, 2, 4, ... GPUs each; every "
    "subset size is a candidate); a tensor-parallel engine (vLLM) splits a replica over its "
    "GPUs (each GPU reads its share of the weights, and every layer all-reduces its "
    "activations twice over the GPUs' links: NVLink where the boards have it, else PCIe), "
    "the others split layers (one GPU's speed)",
)


def model_shape_from_record(record: object) -> ModelShape:
    """A ModelShape from a catalog ModelRecord (same field names)."""
    fields = {name: getattr(record, name) for name in ModelShape.model_fields}
    return ModelShape(**fields)


def weight_gb(shape: ModelShape, scheme: SchemeRecord, method: MethodTraitRecord) -> float:
    """Bytes of weights (GB) of ``shape`` quantized with ``scheme``, whose family's traits are
    ``method`` (planner/traits.py)."""
    params = shape.parameters_b * 1e9
    if method.embeddings_in_16_bit:
        embedding = min(
            UNTIED_EMBEDDING_COPIES * shape.vocab_size * shape.hidden_size, 0.5 * params
        )
        quantized = params - embedding
        return (quantized * scheme.bits_per_weight / 8 + embedding * 2) / 1e9
    return params * scheme.bits_per_weight / 8 / 1e9


def active_fraction(shape: ModelShape) -> float:
    """Share of the weights read per token (below 1 for mixture-of-experts models)."""
    if shape.active_parameters_b is None:
        return 1.0
    return min(1.0, shape.active_parameters_b / shape.parameters_b)


def read_fraction(shape: ModelShape, tokens: np.ndarray | float) -> np.ndarray:
    """Share of the weights one forward pass over ``tokens`` tokens reads (a decode step's
    batch, or a prompt). A mixture-of-experts layer reads its shared weights and every expert
    at least one token is routed to; with routing spread evenly over E experts, k a token, an
    expert escapes all t tokens with probability (1 - k/E)^t. So a batch of 8 reads about 90 %
    of Mixtral-8x7B's experts (2 of 8 a token), where one token reads 25 %. A card without
    expert counts reads its active share at every batch size."""
    tokens = np.asarray(tokens, dtype=float)
    active = shape.active_parameters_b
    if shape.experts is None or shape.experts_per_token is None or active is None:
        return np.full(tokens.shape, active_fraction(shape))
    experts, chosen = shape.experts, shape.experts_per_token
    per_expert = (shape.parameters_b - active) / (experts - chosen)
    shared = shape.parameters_b - experts * per_expert
    touched = experts * (1 - (1 - chosen / experts) ** np.maximum(tokens, 1.0))
    return np.minimum(1.0, (shared + per_expert * touched) / shape.parameters_b)


def kv_gb_per_token(shape: ModelShape) -> float:
    """KV cache per token of context, in GB."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * KV_BYTES_PER_ELEMENT / 1e9


@dataclass(frozen=True)
class ReplicaHardware:
    """What one replica of an engine gets on one instance: memory, bandwidth, compute."""

    kind: str
    usable_memory_gb: float
    bandwidth_gbps: float
    tflops: float
    tensor_parallel: int = 1  # GPUs every layer is sharded over (all-reduces when above 1)
    link: Interconnect = DEFAULT_INTERCONNECT  # what those all-reduces cross


class MachineSlot(Protocol):
    """What sizing reads from an instance (an InstanceRecord, or a profile's machine)."""

    @property
    def vcpus(self) -> int: ...
    @property
    def memory_gib(self) -> float: ...
    @property
    def accelerator_count(self) -> int: ...


@dataclass(frozen=True)
class MachineShare:
    """What one replica gets of a machine: a whole instance, a GPU subset of a multi-GPU
    instance (``replicas_per_instance`` replicas side by side), or a profile's machine."""

    vcpus: int
    memory_gib: float
    accelerator_count: int
    replicas_per_instance: int = 1


TENSOR_PARALLEL_SIZES = (1, 2, 4, 8, 16)


def machine_shares(instance: InstanceRecord, hardware: HardwareRecord) -> list[MachineShare]:
    """Ways to place replicas on ``instance``: one per GPU subset size dividing its GPUs.

    An 8-GPU machine can hold one replica on 8 GPUs, two on 4, four on 2 or eight on 1; a CPU
    machine holds one replica on all of it.
    """
    count = instance.accelerator_count
    if hardware.kind != "gpu" or count <= 1:
        return [MachineShare(instance.vcpus, instance.memory_gib, count)]
    shares = []
    for size in TENSOR_PARALLEL_SIZES:
        if size <= count and count % size == 0:
            per = count // size
            shares.append(
                MachineShare(max(1, instance.vcpus // per), instance.memory_gib / per, size, per)
            )
    return shares


def physical_cores(instance: MachineSlot, hardware: HardwareRecord) -> float:
    """Physical cores behind a VM's vCPUs (one per vCPU where the family runs without SMT)."""
    return max(1.0, instance.vcpus / hardware.threads_per_core)


def replica_hardware(
    instance: MachineSlot, hardware: HardwareRecord, traits: EngineTraitRecord
) -> ReplicaHardware:
    """Memory, spec bandwidth and compute one replica gets on ``instance``, of the engine whose
    traits on ``hardware``'s device kind are ``traits`` (planner/traits.py)."""
    overhead = traits.runtime_overhead_gb
    tflops_per_device = hardware.bf16_tflops or 0.0
    if hardware.kind == "gpu" and instance.accelerator_count > 0:
        count = instance.accelerator_count
        memory_per_gpu = hardware.memory_gb or 0.0
        usable = count * (memory_per_gpu * GPU_MEMORY_UTILIZATION - overhead)
        # vLLM shards each layer over the GPUs (each reads its share; the all-reduces are
        # timed in planner/estimate.py); llama.cpp's layer split runs them in turn.
        split = traits.tensor_parallel and count > 1
        scale = count if split else 1
        return ReplicaHardware(
            kind="gpu",
            usable_memory_gb=max(0.0, usable),
            bandwidth_gbps=hardware.memory_bandwidth_gbps * scale,
            tflops=tflops_per_device * scale,
            tensor_parallel=scale,
            link=interconnect(hardware),
        )
    host_gb = instance.memory_gib * GIB_TO_GB
    usable = host_gb * HOST_MEMORY_SHARE - HOST_RESERVED_GB - overhead
    socket_share = physical_cores(instance, hardware) / (hardware.cores_per_socket or 1)
    return ReplicaHardware(
        kind="cpu",
        usable_memory_gb=max(0.0, usable),
        bandwidth_gbps=hardware.memory_bandwidth_gbps * socket_share,
        tflops=max(tflops_per_device, 0.05) * socket_share,
    )


def max_sequences(usable_memory_gb: float, weights_gb: float, kv_gb_per_sequence: float) -> int:
    """Sequences whose KV cache fits next to the weights (0 = the model does not fit)."""
    free = usable_memory_gb - weights_gb
    if free <= 0 or kv_gb_per_sequence <= 0:
        return 0
    return int(free // kv_gb_per_sequence)
