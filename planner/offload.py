"""Partial GPU offload (llama.cpp ``-ngl N``): the first N layers on the GPU, the rest on the host.

When a GGUF model with the KV cache of one sequence does not fit a GPU replica's memory but does
fit GPU plus host memory, llama.cpp still serves it with ``-ngl N``. The planner takes the most
layers the GPU holds (with their KV cache: llama.cpp keeps an offloaded layer's KV on the GPU).

``-ngl N`` offloads N repeating blocks; the output layer (the vocabulary projection) follows
only when N exceeds the block count, so in every split it stays on the host with the blocks left
there (an 8B F16 model's served speed halved with all 32 blocks but not the output layer on an
H200: bench/results/gpu_serve_cli.md). The host part of a split is therefore its blocks plus the
output layer, its share of the weights read ``host bytes / weights``.

A token passes every layer in turn, so one decode step is the sum of two parts:

* the GPU's share (one minus the host's) of the replica's GPU step (the calibrated time map's,
  fixed per-step overhead included once);
* the host's share of a host roofline: ``max(weights + KV read / host bandwidth,
  2 x active params x batch / host FLOPS)``, both per vCPU of the replica's machine share.

Prefill of a prompt runs the host layers' matrix products on the GPU too (llama.cpp does so for
batches of 32 tokens and more), copying those layers' weights over the host link once per
512-token micro-batch: the GPU's share of the GPU prefill plus the copies.

The host figures are fitted to the partial-offload runs of bench/results/llamacpp_server_gpu.json
(8B Q4_K_M on one H200 with 16 host threads, -ngl 8/16/24 of 32, 1/4/16 sequences) by
bench/llamacpp_partial_offload.py, which also reports each -ngl setting predicted with its own
rows left out, and the prior figures' error before the runs were seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quantplan.catalog.records import EngineTraitRecord, SchemeRecord
from quantplan.planner.hardware import GIB_TO_GB, HOST_MEMORY_SHARE, HOST_RESERVED_GB, MachineShare
from quantplan.planner.targets import ModelShape

OFFLOAD_ENGINE = "llama.cpp"
"""The engine that splits a model by layers between GPU and host (vLLM's CPU offload differs)."""
UBATCH_TOKENS = 512
"""llama.cpp's default micro-batch: the CPU layers' weights cross the host link once per one."""


@dataclass(frozen=True)
class HostFigures:
    """Effective speed of a GPU instance's host for the layers left on it, per vCPU."""

    bandwidth_gbps_per_vcpu: float  # GB/s a decode step reads host weights at
    tflops_per_vcpu: float  # dense FLOPS of the host's matrix products
    copy_gbps: float  # host -> GPU weight copies during prefill
    source: str


PRIOR_HOST = HostFigures(
    bandwidth_gbps_per_vcpu=307.2 / 96 * 0.6,
    tflops_per_vcpu=7.4 / 96 * 0.5,
    copy_gbps=32.0 * 0.8,
    source="Sapphire Rapids socket (catalog Xeon-SapphireRapids: 307.2 GB/s, 7.4 TFLOPS, 96 "
    "vCPUs) per vCPU at llama.cpp's CPU efficiencies (0.6 bandwidth, 0.5 compute); PCIe 4.0 "
    "x16 at 0.8",
)
"""Figures before any partial-offload run was seen (what the benchmark's 'prior' rows use)."""

HOST = HostFigures(
    bandwidth_gbps_per_vcpu=4.416,
    tflops_per_vcpu=0.1053,
    copy_gbps=6.73,
    source="fitted to 9 partial-offload runs (8B Q4_K_M, one H200, 16 host threads, -ngl "
    "8/16/24 of 32, 1/4/16 sequences; bench/results/llamacpp_partial_offload.md), the output "
    "layer on the host",
)


def output_layer_gb(shape: ModelShape, scheme: SchemeRecord) -> float:
    """The output layer's weights (vocabulary x hidden size) at the scheme's bits per weight:
    what stays on the host in any split (llama.cpp's k-quant mixes often keep it at 6 bits or
    more, so a 4-bit scheme's figure can be low)."""
    return shape.vocab_size * shape.hidden_size * scheme.bits_per_weight / 8 / 1e9


def host_usable_gb(machine: MachineShare, overhead_gb: float) -> float:
    """Host memory one replica may fill with the CPU layers and their KV cache, less the
    engine's own ``overhead_gb`` on the host."""
    usable = machine.memory_gib * GIB_TO_GB * HOST_MEMORY_SHARE - HOST_RESERVED_GB - overhead_gb
    return max(0.0, usable)


def layers_on_gpu(
    layers: int,
    weights_gb: float,
    kv_gb_per_sequence: float,
    gpu_usable_gb: float,
    host_gb: float,
    max_concurrency: int,
    *,
    output_gb: float = 0.0,
) -> tuple[int, int]:
    """``(gpu_layers, sequences)``: the most layers (fewer than all) whose weights and KV cache
    of one sequence fit the GPU, and the sequences whose KV fits on both sides; ``(0, 0)`` where
    not even one layer fits the GPU or the other layers do not fit the host. ``output_gb`` of
    the weights (the output layer) stay on the host in any split."""
    if layers < 2 or kv_gb_per_sequence <= 0:
        return 0, 0
    layer_gb, layer_kv_gb = (weights_gb - output_gb) / layers, kv_gb_per_sequence / layers
    on_gpu = min(layers - 1, math.floor(gpu_usable_gb / (layer_gb + layer_kv_gb)))
    if on_gpu < 1:
        return 0, 0
    on_host = layers - on_gpu
    gpu_sequences = math.floor((gpu_usable_gb - on_gpu * layer_gb) / (on_gpu * layer_kv_gb))
    host_free = host_gb - on_host * layer_gb - output_gb
    host_sequences = math.floor(host_free / (on_host * layer_kv_gb)) if host_free > 0 else 0
    sequences = min(gpu_sequences, host_sequences, max_concurrency)
    return (on_gpu, sequences) if sequences >= 1 else (0, 0)


def split_step_times(
    gpu_share: float,
    gpu_decode_s: np.ndarray,
    gpu_prefill_s: float,
    *,
    weights_read_gb: float,
    kv_read_gb_per_sequence: float,
    active_params: float,
    input_tokens: int,
    batch: np.ndarray,
    vcpus: float,
    host: HostFigures = HOST,
    output_read_gb: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Decode step (per ``batch``) and prefill seconds of a replica with ``gpu_share`` of its
    blocks on the GPU and the rest, with the output layer (``output_read_gb`` of the weights
    read), on the host, from the all-on-GPU step times of the same replica."""
    host_blocks = 1.0 - gpu_share
    host_gb = host_blocks * (weights_read_gb - output_read_gb) + output_read_gb
    host_share = host_gb / weights_read_gb if weights_read_gb > 0 else host_blocks
    bandwidth = max(vcpus * host.bandwidth_gbps_per_vcpu, 1e-6)
    flops = max(vcpus * host.tflops_per_vcpu, 1e-9) * 1e12
    # The host reads its weights and its blocks' KV cache, and computes its share of the
    # products (the output layer's included).
    memory_s = (host_gb + host_blocks * batch * kv_read_gb_per_sequence) / bandwidth
    compute_s = 2 * active_params * host_share * batch / flops
    decode = (1.0 - host_share) * gpu_decode_s + np.maximum(memory_s, compute_s)
    copies = max(1, math.ceil(input_tokens / UBATCH_TOKENS))
    prefill = (1.0 - host_share) * gpu_prefill_s + host_gb * copies / host.copy_gbps
    return decode, prefill


@dataclass(frozen=True)
class OffloadedMap:
    """The time map's arrays with partially offloaded replicas in place of rejected ones."""

    decode_step_s: np.ndarray  # (S, I, K)
    prefill_s: np.ndarray  # (S, I)
    max_sequences: np.ndarray  # (S, I)
    gpu_layers: np.ndarray  # (S, I) layers on the GPU; 0 = all of them, or no split


def offload_rejected(
    *,
    engines: tuple[str, ...],
    offload_gpu: EngineTraitRecord,
    offload_cpu: EngineTraitRecord,
    machines: tuple[MachineShare, ...],
    is_gpu: np.ndarray,
    layers: int,
    weights_gb: np.ndarray,
    weights_read_gb: np.ndarray,
    output_gb: np.ndarray,
    kv_gb_per_sequence: float,
    kv_read_gb_per_sequence: float,
    active_params: float,
    input_tokens: int,
    usable_memory_gb: np.ndarray,
    decode_step_s: np.ndarray,
    prefill_s: np.ndarray,
    max_sequences: np.ndarray,
    batch: np.ndarray,
) -> OffloadedMap:
    """Every llama.cpp option x GPU column the GPU memory rejects (no sequence fits) but GPU
    plus host memory hold, split by layers; the other cells unchanged. ``engines`` and
    ``weights_*`` are per option, ``machines`` and ``is_gpu`` per column; ``decode_step_s`` and
    ``prefill_s`` are the all-on-GPU times; ``output_gb`` per option is the output layer's
    weights, which stay on the host; ``offload_gpu`` and ``offload_cpu`` are the splitting
    engine's traits (concurrency cap on the GPU, runtime overhead on the host)."""
    decode, prefill = decode_step_s.copy(), prefill_s.copy()
    sequences = max_sequences.copy()
    gpu_layers = np.zeros(sequences.shape, dtype=np.int64)
    cap = offload_gpu.max_concurrency
    host = [host_usable_gb(m, offload_cpu.runtime_overhead_gb) for m in machines]
    for s, engine in enumerate(engines):
        if engine != OFFLOAD_ENGINE:
            continue
        for i in np.flatnonzero(is_gpu & (max_sequences[s] < 1)):
            on_gpu, fits = layers_on_gpu(
                layers,
                float(weights_gb[s]),
                kv_gb_per_sequence,
                float(usable_memory_gb[s, i]),
                host[i],
                cap,
                output_gb=float(output_gb[s]),
            )
            if not on_gpu:
                continue
            decode[s, i], prefill[s, i] = split_step_times(
                on_gpu / layers,
                decode_step_s[s, i],
                float(prefill_s[s, i]),
                weights_read_gb=float(weights_read_gb[s]),
                kv_read_gb_per_sequence=kv_read_gb_per_sequence,
                active_params=active_params,
                input_tokens=input_tokens,
                batch=batch,
                vcpus=float(machines[i].vcpus),
                output_read_gb=float(output_gb[s]),
            )
            sequences[s, i], gpu_layers[s, i] = fits, on_gpu
    return OffloadedMap(decode, prefill, sequences, gpu_layers)


ASSUMPTIONS: tuple[str, ...] = (
    "partial GPU offload (llama.cpp -ngl): the most layers whose weights and KV cache fit the "
    "GPU go there, the rest and the output layer run on the host; decode step = GPU share x GPU "
    "step + host share x host roofline; prefill copies the host's weights to the GPU per "
    "512-token micro-batch; "
    f"host figures per vCPU: {HOST.bandwidth_gbps_per_vcpu:g} GB/s, "
    f"{HOST.tflops_per_vcpu * 1000:g} GFLOPS, copies at {HOST.copy_gbps:g} GB/s ({HOST.source})",
)
