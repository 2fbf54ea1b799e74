"""How fast each candidate replica is: measured -> interpolated -> calibrated roofline.

The time map is computed for every option x instance x concurrency at once (numpy arrays):

* decode step at concurrency ``b``: ``max(bytes read / bandwidth, 2 x active params x b / FLOPS)``
  plus a fixed per-step overhead -- memory-bound at small ``b``, compute-bound past the knee; a
  mixture-of-experts step reads the experts its batch is routed to (``read_fraction``);
* prefill of one request: ``2 x active params x input tokens / FLOPS`` (at least one weight read),
  which TTFT evidence refits apart from decode (``FirstTokenFit``);
* a tensor-parallel replica adds its all-reduces to both: two per layer of the pass's
  activations over the GPUs' links (planner/hardware.py ``allreduce_seconds``).

Bandwidth and compute are spec figures times an efficiency factor per (engine, device kind),
e.g. 0.8 of GPU bandwidth (NVIDIA AIConfigurator's empirical factor). Measured profiles refine
this: profiles of the same model, scheme, engine and hardware pin the curve at their
concurrencies (``measured``; ``interpolated`` between them); profiles of the same engine, family
and device kind on other models/hardware calibrate the efficiency (``modeled``, narrower band);
an engine's measured curves over concurrency bend the roofline's batching to the engine's own
(planner/batching.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from quantplan.catalog.records import (
    EngineTraitRecord,
    HardwareRecord,
    MethodTraitRecord,
    ProfileRecord,
    SchemeRecord,
)
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.batching import (
    BatchingCurve,
    CurveKey,
    CurvePoint,
    batching_curve,
    curve_keys,
    curve_settings,
    is_served,
    lookup_keys,
    measured_curves,
    pinned_curve,
    pinned_values,
    served_over_loop,
    setting_of,
    source_setting_of,
)
from quantplan.planner.candidates import CandidateSpace
from quantplan.planner.hardware import (
    ACTIVATION_BYTES,
    ALLREDUCES_PER_LAYER,
    MachineShare,
    ReplicaHardware,
    active_fraction,
    allreduce_seconds,
    interconnect,
    kv_gb_per_token,
    max_sequences,
    model_shape_from_record,
    read_fraction,
    replica_hardware,
    weight_gb,
)
from quantplan.planner.offload import OFFLOAD_ENGINE, offload_rejected, output_layer_gb
from quantplan.planner.pooling import CalibrationKey, ClassRatios, pooled_log_means
from quantplan.planner.queueing import burst_services_to_p95, p95_ttft_s
from quantplan.planner.targets import ModelShape, Workload
from quantplan.planner.traits import engine_traits, method_traits

CONCURRENCY_GRID = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256], dtype=float)
# Efficiencies, overheads and concurrency caps per engine, and method rules (16-bit embeddings,
# W8A8, legacy kernels): the catalog's engine_traits and method_traits rows (planner/traits.py).
LEGACY_KERNEL_COMPUTE_EFFICIENCY = 0.3
"""A method's legacy kernel on an older GPU (AWQ's GEMM below compute capability 8.0) is far
slower than Marlin under load (vLLM docs: fit for low concurrency only)."""
STEP_OVERHEAD_S = {"gpu": (0.002, 2e-5), "cpu": (0.001, 5e-5)}
"""Fixed cost per decode step and per layer (scheduling, kernel launches, sampling), where
:func:`step_overhead` has nothing closer to the engine."""
LLAMACPP_GPU_STEP_OVERHEAD_S = 6e-4
"""The fixed part of a llama.cpp decode step on a GPU in today's builds: a line through the 1B
and 8B steps of one GGUF type on one H100 SXM meets zero bytes at 0.56-0.64 ms (F16, Q8_0,
Q4_K_M; bench/results/llamacpp_types_gpu.md, a 2026 build). The builds of 2024 paid more: PR
#6766's tg128 rows (CUDA graphs on) meet zero bytes at 1.4 ms through LLaMA-7B and 13B Q4_0
on one RTX 3090 Ti, and at 1.8-2.4 ms through F16 and Q4_0 of one model (RTX 3090 Ti,
LLaMA-7B; RTX 4090, Llama-3-8B, two runs). Runs of that time keep the general
:data:`STEP_OVERHEAD_S` (2 ms + 0.02 ms a layer), which their calibration rests on."""
LLAMACPP_GRAPH_REUSE_SINCE = "2025-08"
"""From when a llama.cpp run pays :data:`LLAMACPP_GPU_STEP_OVERHEAD_S`. The documented change
to the host's part of a step between those builds is graph reuse (PR #14482 of July 2025,
behind ``LLAMA_SET_ROWS=1`` until the end of that month): the previous token's compute graph
is reused instead of built and allocated anew, which alone took 2-7 % of a batch-1 step of
Llama 7B and 13B Q4 on six GPUs in 2024 (PR #8366). The catalog has no llama.cpp GPU run
dated between May 2024 and December 2026, so the date is not fitted."""


def w8a8_compute_gain(method: MethodTraitRecord, hardware: HardwareRecord) -> float:
    """How much faster a W8A8 method computes than BF16 on ``hardware``: the row's dense INT8
    TOPS over its BF16 TFLOPS (on Ada and Hopper dense FP8 equals dense INT8, NVIDIA
    datasheets). 1 for other methods, on CPUs, or where either figure is unknown."""
    if not method.w8a8 or hardware.kind != "gpu":
        return 1.0
    if not hardware.int8_tops or not hardware.bf16_tflops:
        return 1.0
    return hardware.int8_tops / hardware.bf16_tflops


BASIS_NAMES = ("modeled", "modeled", "interpolated", "measured", "published")
UNCALIBRATED, CALIBRATED, INTERPOLATED, MEASURED, PUBLISHED = range(5)
BAND_WIDTH = (0.40, 0.25, 0.10, 0.05, 0.15)
"""Half-width of the uncertainty band (fraction of the value) for each basis code."""
BASIS_NOTES = (
    "roofline with default efficiency factors (no profiles of this engine/family/device kind)",
    "roofline with efficiency calibrated from profiles of the same engine, family, device kind",
    "interpolated between measured concurrencies of this model/scheme/engine/hardware",
    "measured on this model/scheme/engine/hardware at this concurrency",
    "published figure for this model/scheme/engine/hardware",
)
CURVE_MIN_ROOFLINE_SHARE = 0.5
"""A measured point joins its engine's batching curve (planner/batching.py) where the modeled
step's roofline terms are at least this share of its fixed per-step overhead: on an H200 an
8B model's points (0.65-2.3) do, a 1B model's (0.1-0.4) and a 135M model's (under 0.05) do
not."""
MIN_CALIBRATING_RATIO = 0.25
"""A profile this many times slower than the default-efficiency roofline (under 0.15-0.2 of
spec bandwidth or FLOPS) measured something the roofline does not describe -- a broken set-up or
an engine defect -- not an efficiency other settings share: it pins its own setting but
calibrates no class. Engine runs in the seed catalog sit at 0.5 and above (4-bit llama.cpp
kernels at 64 sequences, Q2_K on a P40); vLLM issue #1888's 8-GPU row, half the 1-GPU speed on
eight A100s and filed as a suspected bug, sits at 0.1. A level of a measured curve still shapes
its curve, which is relative to the curve's own single-stream point: llama-server over HTTP
gives 40-44 % of its engine loop at 16-64 requests (bench/results/llamacpp_cold_start.md), about
0.2 of the roofline, and a curve cut off before those levels would hold its last factor on."""
SUPERSEDED_ENGINE = "superseded_engine"
"""A profile whose ``details`` carry this key (the reason, in words) was measured on an engine
release whose behaviour the deployed release no longer has: it stays in the catalog and in the
validation, but neither pins, calibrates nor shapes a batching curve for plans. The seed marks
vLLM runs before 0.6.0 so: vLLM's v0.6.0 release notes (blog.vllm.ai, 2024-09-05) measured the
HTTP server at 33 % and scheduling at 29 % of the time for Llama 3 8B on one H100, removed most
of it (2.7x the throughput of 0.5.3 there, 1.8x for 70B on four H100s), and the seed's vLLM 0.5.4
runs on H100 SXM reach 0.3-0.5 of what the same catalog predicts at 54-146 sequences."""

COLD_START = "cold_start"
"""A profile whose ``details`` carry this key (the reason, in words) measured a level that paid
a one-time start-up cost beside its steady work: llama-batched-bench's first level of a file,
run without a warm-up, prefills its prompts 16-187 ms slower than the same level run again
in the same process (bench/results/llamacpp_cold_start.md, one H100 SXM), which takes 9-68 %
off its output rate at one sequence. A running server pays that once. The row stays in the
validation, set apart, but neither pins, calibrates nor shapes a batching curve for plans."""


FLASH_ATTENTION = "flash_attention"
"""A profile whose ``details`` carry this key (true or false) says whether its run used flash
attention; without it, :func:`ran_flash_attention` infers it from the engine's default then."""
LLAMACPP_FLASH_ATTENTION_SINCE = "2025-09"
"""llama.cpp turned flash attention on by default (``-fa auto``, PR #15434, merged at the end of
August 2025; PR #15771 of 2025-09-03 documents the new defaults): llama.cpp runs dated before
that read the KV cache without it unless they passed ``-fa``. llama-cpp-python's ``Llama``
still defaults to ``flash_attn=False``."""


def ran_flash_attention(profile: ProfileRecord) -> bool:
    """Whether ``profile``'s run read its KV cache with flash attention: as its details say,
    else by its engine's default at the time (llama.cpp before September 2025 and
    llama-cpp-python's own server: off). Other engines run their default kernel, which the
    engine traits' ``kv_read_efficiency`` describes."""
    stated = profile.details.get(FLASH_ATTENTION)
    if isinstance(stated, bool):
        return stated
    if profile.engine != "llama.cpp":
        return True
    if (profile.engine_version or "").startswith("llama-cpp-python"):
        return False
    date = str(profile.details.get("date") or "")
    return not date or date >= LLAMACPP_FLASH_ATTENTION_SINCE


LLAMACPP_SPLIT_WITHOUT_CUDA_GRAPHS = ("2024-05", "2025-06")
"""The dates between which llama.cpp ran a model split over several GPUs without CUDA graphs:
they came in May 2024 (PR #6766, merged 2024-05-08), but the pipeline-parallel split changed
its graph at every token, which turned them off, until PR #13814 (2025-05-27: "allow CUDA
graphs when using pipeline parallelism"). One GPU kept them throughout."""
CUDA_GRAPH_SAVING_S_PER_LAYER = 1.9e-5
"""What CUDA graphs save a llama.cpp decode step per layer: the median of eight tg128 rows of
PR #6766 (RTX 3090 Ti: 7B F16 57.05 -> 59.80 tok/s, 7B / 13B / 30B Q4_0 138.58 -> 163.95,
85.43 -> 95.73, 39.32 -> 42.72; RTX 4090, two runs: 7B F16 54.92 -> 55.96 and 56.68 -> 57.85,
Q4_0 137.50 -> 146.02 and 149.28 -> 159.67), 0.011-0.035 ms per layer: each of a layer's
kernels launched one at a time from the CPU instead of replayed."""


LLAMACPP_ATTENTION_WITHOUT_FLASH_S_PER_LAYER = 1.7e-5
"""What llama.cpp's attention costs a GPU decode step per layer without flash attention beyond
the KV cache it reads (a separate matrix product, softmax and product again instead of one fused
kernel): the median of ten tg128 pairs, flash attention off and on, on one H100 SXM (every
common GGUF type of the 8B shape and three of the 1B, 0.013-0.018 ms a layer;
bench/results/llamacpp_types_gpu.md). Runs without it (llama.cpp before September 2025 unless
they passed ``-fa``) pay it; plans deploy today's default, which has it."""


def step_overhead(engine: str, kind: str, date: str = "") -> tuple[float, float]:
    """Fixed cost per decode step and per layer of ``engine`` on a ``kind`` device, as its
    release of ``date`` ran it ("": the release plans deploy, today's)."""
    if engine == "llama.cpp" and kind == "gpu" and (not date or date >= LLAMACPP_GRAPH_REUSE_SINCE):
        return LLAMACPP_GPU_STEP_OVERHEAD_S, 0.0
    return STEP_OVERHEAD_S[kind]


def split_without_cuda_graphs(profile: ProfileRecord) -> bool:
    """Whether ``profile``'s run was llama.cpp's layer split over several GPUs in the months
    it ran without CUDA graphs (:data:`LLAMACPP_SPLIT_WITHOUT_CUDA_GRAPHS`). Plans deploy a
    release of today, which keeps them."""
    if profile.engine != "llama.cpp" or profile.hardware_count < 2:
        return False
    since, until = LLAMACPP_SPLIT_WITHOUT_CUDA_GRAPHS
    date = str(profile.details.get("date") or "")
    return since <= date < until


def kv_read_efficiency(traits: EngineTraitRecord, flash_attention: bool = True) -> float | None:
    """Share of spec bandwidth at which ``traits``' engine reads the KV cache, with or without
    flash attention; None where the traits leave it at the weights' rate."""
    if not flash_attention and traits.kv_read_efficiency_without_flash_attention is not None:
        return traits.kv_read_efficiency_without_flash_attention
    return traits.kv_read_efficiency


def _kv_bandwidth_efficiency(traits: EngineTraitRecord, flash_attention: bool = True) -> float:
    """The efficiency the roofline reads the KV cache at: its own, or the weights'."""
    rate = kv_read_efficiency(traits, flash_attention)
    return traits.bandwidth_efficiency if rate is None else rate


def plans_from(profile: ProfileRecord) -> bool:
    """Whether ``profile`` is evidence for plans: measured or published, on an engine release
    that still behaves as deployed (see :data:`SUPERSEDED_ENGINE`), in a steady state (see
    :data:`COLD_START`)."""
    set_apart = profile.details.get(SUPERSEDED_ENGINE) or profile.details.get(COLD_START)
    return profile.basis in ("measured", "published") and not set_apart


ASSUMPTIONS: tuple[str, ...] = (
    "decode step = max(weights / (bandwidth x efficiency) + KV read / (bandwidth x KV "
    "efficiency), 2 x active params x batch / (FLOPS x efficiency)) + per-step overhead "
    "(+ tensor-parallel all-reduces); the efficiencies before calibration are the engine's "
    "traits on the device kind (below); the KV cache is read at the weights' rate where the "
    "traits give no KV rate, and a run without flash attention at the rate without it",
    "prefill = 2 x active params x input tokens / (FLOPS x efficiency), at its single-stream "
    "speed at every concurrency; before the first token a request holds the engine for a "
    "fixed overhead plus a prefill fitted apart from decode, per engine and device kind, from "
    "profiles' TTFT at one request (the decode-calibrated prefill where there are none)",
    "a mixture-of-experts step reads the shared weights and every expert its batch is routed to "
    "(routing spread evenly over the experts)",
    f"a profile over {1 / MIN_CALIBRATING_RATIO:.0f}x slower than that roofline pins its own "
    "setting but calibrates no other (a broken set-up, not an efficiency)",
    "profiles of a superseded engine release (vLLM before 0.6.0) are checked against, not "
    "planned from",
)


@dataclass(frozen=True)
class PerformanceMap:
    """Per option x instance x concurrency timings with their basis codes (read-only)."""

    decode_step_s: np.ndarray  # (S, I, K)
    prefill_s: np.ndarray  # (S, I)
    basis: np.ndarray  # (S, I, K) int8 codes, see BASIS_NAMES
    max_sequences: np.ndarray  # (S, I) sequences that fit in memory (0 = does not fit)
    weights_gb: np.ndarray  # (S,)
    kv_gb_per_sequence: float
    usable_memory_gb: np.ndarray  # (S, I)
    gpu_layers: np.ndarray  # (S, I) llama.cpp layers on the GPU when split (0 = no split)
    first_token_s: np.ndarray  # (S, I) a request's hold on the engine before its first token
    # (request overhead and prefill, FirstTokenFit): the TTFT queue's service time
    first_token_fits: dict[tuple[str, str], FirstTokenFit]  # per (engine, device kind)
    evidence: dict[tuple[int, int], str] = field(default_factory=dict)  # per (S, I): the
    # profiles the speeds rest on, in words ('' or absent: default efficiencies, no profile)


@dataclass(frozen=True)
class TensorParallelLinks:
    """Per (option, instance) -- or one profile's setting -- the GPUs each layer is sharded
    over and the links their all-reduces cross; arrays broadcast like the bandwidth table."""

    shards: np.ndarray
    bandwidth_gbps: np.ndarray
    ring_latency_s: np.ndarray
    one_shot: np.ndarray

    @staticmethod
    def of(replica: ReplicaHardware) -> TensorParallelLinks:
        link = replica.link
        return TensorParallelLinks(
            shards=np.array(float(replica.tensor_parallel)),
            bandwidth_gbps=np.array(link.bandwidth_gbps),
            ring_latency_s=np.array(link.ring_latency_s),
            one_shot=np.array(link.one_shot),
        )

    def seconds_per_pass(self, shape: ModelShape, tokens: np.ndarray | float) -> np.ndarray:
        """All-reduce seconds of one forward pass over ``tokens`` tokens (a decode step's
        batch, a prefill's prompt): two per layer of tokens x hidden x 16-bit activations."""
        message = np.asarray(tokens, dtype=float) * shape.hidden_size * ACTIVATION_BYTES
        per_allreduce = allreduce_seconds(
            message,
            self.shards[..., None] if np.ndim(message) else self.shards,
            self.bandwidth_gbps[..., None] if np.ndim(message) else self.bandwidth_gbps,
            self.ring_latency_s[..., None] if np.ndim(message) else self.ring_latency_s,
            self.one_shot[..., None] if np.ndim(message) else self.one_shot,
        )
        return ALLREDUCES_PER_LAYER * shape.layers * per_allreduce


def _efficiency_tables(
    space: CandidateSpace, snapshot: CatalogSnapshot
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    TensorParallelLinks,
]:
    """Per (option, instance): spec bandwidth, FLOPS, usable memory, efficiencies (the
    weights', the KV cache's, compute), whether a GPU, and the tensor-parallel links."""
    engines = sorted({o.engine for o in space.options})
    n_inst = len(space.instances)
    per_engine: dict[str, np.ndarray] = {}
    for engine in engines:
        rows = [
            replica_hardware(m, h, engine_traits(snapshot, engine, h.kind))
            for m, h in zip(space.machines, space.hardware, strict=True)
        ]
        per_engine[engine] = np.array(
            [(r.bandwidth_gbps, r.tflops, r.usable_memory_gb, r.tensor_parallel) for r in rows],
            dtype=float,
        ).reshape(n_inst, 4)
    engine_of = [o.engine for o in space.options]
    empty = np.zeros((0, n_inst, 4))
    stacked = np.stack([per_engine[e] for e in engine_of]) if engine_of else empty
    is_gpu = np.array([h.kind == "gpu" for h in space.hardware], dtype=bool)
    capability = np.array([float(h.compute_capability or 0.0) for h in space.hardware])
    bw_eff = np.empty((len(space.options), n_inst))
    kv_eff = np.empty_like(bw_eff)
    fl_eff = np.empty_like(bw_eff)
    for s, option in enumerate(space.options):
        gpu = engine_traits(snapshot, option.engine, "gpu")
        cpu = engine_traits(snapshot, option.engine, "cpu")
        bw_eff[s] = np.where(is_gpu, gpu.bandwidth_efficiency, cpu.bandwidth_efficiency)
        # Plans run the engine's default attention kernel.
        kv_eff[s] = np.where(is_gpu, _kv_bandwidth_efficiency(gpu), _kv_bandwidth_efficiency(cpu))
        fl_eff[s] = np.where(is_gpu, gpu.compute_efficiency, cpu.compute_efficiency)
        method = method_traits(snapshot, option.family)
        if method.slow_kernel_below_capability is not None:
            legacy = is_gpu & (capability < method.slow_kernel_below_capability)
            fl_eff[s] = np.where(legacy, fl_eff[s] * LEGACY_KERNEL_COMPUTE_EFFICIENCY, fl_eff[s])
        if method.w8a8:
            gain = [w8a8_compute_gain(method, h) for h in space.hardware]
            fl_eff[s] = fl_eff[s] * np.array(gain, dtype=float)
    links = [interconnect(h) for h in space.hardware]
    tensor_parallel = TensorParallelLinks(
        shards=stacked[..., 3],
        bandwidth_gbps=np.array([k.bandwidth_gbps for k in links], dtype=float),
        ring_latency_s=np.array([k.ring_latency_s for k in links], dtype=float),
        one_shot=np.array([k.one_shot for k in links], dtype=bool),
    )
    return (
        stacked[..., 0],
        stacked[..., 1],
        stacked[..., 2],
        bw_eff,
        kv_eff,
        fl_eff,
        is_gpu,
        tensor_parallel,
    )


def kv_read_s(
    shape: ModelShape, workload: Workload, kv_bandwidth_gbps: np.ndarray, batch: np.ndarray
) -> np.ndarray:
    """Seconds a decode step spends reading its batch's KV cache at ``kv_bandwidth_gbps``
    (attention's own rate), each sequence half-way through its output; ``batch`` on the last
    axis."""
    kv_read_gb = kv_gb_per_token(shape) * (workload.input_tokens + workload.output_tokens / 2)
    kv_bandwidth = np.maximum(np.asarray(kv_bandwidth_gbps, dtype=float), 1e-6)
    return np.asarray(batch, dtype=float) * kv_read_gb / kv_bandwidth[..., None]


def _step_times(
    shape: ModelShape,
    workload: Workload,
    weights_gb: np.ndarray,
    bandwidth_gbps: np.ndarray,
    kv_bandwidth_gbps: np.ndarray,
    tflops: np.ndarray,
    overhead_s: np.ndarray,
    batch: np.ndarray,
    links: TensorParallelLinks | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode step and prefill seconds; arrays broadcast against ``batch`` on the last axis.

    The weights are read at ``bandwidth_gbps`` and the KV cache at ``kv_bandwidth_gbps``
    (attention's own rate). A tensor-parallel replica (``links``) also waits for its
    all-reduces: per decode step, those of the batch's activations (latency-bound: about a
    millisecond for 80 layers); per prefill, those of the prompt's (bandwidth-bound on
    PCIe)."""
    active_params = shape.parameters_b * 1e9 * active_fraction(shape)
    flops = np.maximum(tflops, 1e-6) * 1e12
    bandwidth = np.maximum(bandwidth_gbps, 1e-6)
    # A mixture-of-experts step reads the experts its batch is routed to (planner/hardware.py).
    weights_read_gb = weights_gb[..., None] * read_fraction(shape, batch)
    memory_s = weights_read_gb / bandwidth[..., None] + kv_read_s(
        shape, workload, kv_bandwidth_gbps, batch
    )
    compute_s = 2 * active_params * batch / flops[..., None]
    decode = np.maximum(memory_s, compute_s) + overhead_s[..., None]
    # Causal self-attention adds 2 x layers x L^2 x (heads x head_dim) FLOPs for an L-token
    # prompt (QK^T and AV, half masked): +20 % for a 16k prompt on a 14B model.
    attention = 2 * shape.layers * workload.input_tokens**2 * shape.heads * shape.head_dim
    prefill_compute = (2 * active_params * workload.input_tokens + attention) / flops
    prompt_read_gb = weights_gb * read_fraction(shape, workload.input_tokens)
    prefill = np.maximum(prefill_compute, prompt_read_gb / bandwidth) + overhead_s
    if links is not None:
        decode = decode + links.seconds_per_pass(shape, batch)
        prefill = prefill + links.seconds_per_pass(shape, float(workload.input_tokens))
    return decode, prefill


@dataclass(frozen=True)
class _ProfileRoofline:
    """One profile's setting as the roofline sees it, with default efficiencies: its model,
    scheme, replica and engine traits, and the step times at any concurrency."""

    shape: ModelShape
    scheme: SchemeRecord
    hardware: HardwareRecord
    replica: ReplicaHardware
    traits: EngineTraitRecord
    method: MethodTraitRecord
    workload: Workload
    overhead_s: float
    flash_attention: bool = True

    @property
    def kv_bandwidth_gbps(self) -> float:
        """The rate attention reads the KV cache at (its own, or the weights')."""
        efficiency = _kv_bandwidth_efficiency(self.traits, self.flash_attention)
        return self.replica.bandwidth_gbps * efficiency

    def kv_read_s(self, concurrency: float) -> float:
        """Seconds a decode step at ``concurrency`` reads the KV cache, at attention's rate."""
        batch = np.array([concurrency])
        return float(
            kv_read_s(self.shape, self.workload, np.array(self.kv_bandwidth_gbps), batch)[0]
        )

    def step_times(self, concurrency: float) -> tuple[np.ndarray, np.ndarray]:
        """Decode step (shape (1,)) and prefill (scalar array) seconds at ``concurrency``."""
        traits, hardware = self.traits, self.hardware
        return _step_times(
            self.shape,
            self.workload,
            np.array(weight_gb(self.shape, self.scheme, self.method)),
            np.array(self.replica.bandwidth_gbps * traits.bandwidth_efficiency),
            np.array(self.kv_bandwidth_gbps),
            np.array(
                self.replica.tflops
                * traits.compute_efficiency
                * w8a8_compute_gain(self.method, hardware)
            ),
            np.array(self.overhead_s),
            np.array([float(concurrency)]),
            TensorParallelLinks.of(self.replica),
        )


def _profile_roofline(profile: ProfileRecord, snapshot: CatalogSnapshot) -> _ProfileRoofline | None:
    """The roofline of ``profile``'s setting, or None where the catalog lacks its rows."""
    model = snapshot.model_by_name.get(profile.model)
    scheme = snapshot.scheme_by_name.get(profile.scheme)
    hardware = snapshot.hardware_by_name.get(profile.hardware)
    if model is None or scheme is None or hardware is None:
        return None
    shape = model_shape_from_record(model)
    gpu = hardware.kind == "gpu"
    machine = MachineShare(
        vcpus=profile.hardware_count if not gpu else 8,
        memory_gib=1024.0,
        accelerator_count=profile.hardware_count if gpu else 0,
    )
    base, per_layer = step_overhead(
        profile.engine, hardware.kind, str(profile.details.get("date") or "")
    )
    flash_attention = ran_flash_attention(profile)
    if gpu and split_without_cuda_graphs(profile):
        per_layer += CUDA_GRAPH_SAVING_S_PER_LAYER
    if gpu and profile.engine == "llama.cpp" and not flash_attention:
        per_layer += LLAMACPP_ATTENTION_WITHOUT_FLASH_S_PER_LAYER
    traits = engine_traits(snapshot, profile.engine, hardware.kind)
    return _ProfileRoofline(
        shape=shape,
        scheme=scheme,
        hardware=hardware,
        replica=replica_hardware(machine, hardware, traits),
        traits=traits,
        method=method_traits(snapshot, scheme.family),
        workload=Workload(
            input_tokens=profile.input_tokens,
            output_tokens=profile.output_tokens,
            requests_per_s=1,
        ),
        overhead_s=base + per_layer * shape.layers,
        flash_attention=flash_attention,
    )


def _profile_decode_ratio(
    profile: ProfileRecord,
    snapshot: CatalogSnapshot,
    workload: Workload,
    *,
    roofline_bound_only: bool = False,
) -> float | None:
    """Modeled-with-default-efficiency over measured time per request for one profile.

    The time compared is a closed-loop cycle: the server spends ``prefill + output x decode /
    concurrency`` per request (the operating-point model), and ``output / measured tokens/s``
    was measured. Scaling both the modeled prefill and decode by this ratio makes the planner
    reproduce the measured throughput at the measured point (a ratio of decode steps alone
    would count the prefill twice: the measured tokens/s already paid for it). Both cycles
    leave out the steps' KV read, which keeps attention's own rate (see
    :func:`single_stream_prefill`)."""
    found = _decode_ratio_and_share(profile, snapshot)
    if found is None or (roofline_bound_only and found[1] < 1.0):
        return None
    return found[0]


def _decode_ratio_and_share(
    profile: ProfileRecord, snapshot: CatalogSnapshot
) -> tuple[float, float] | None:
    """:func:`_profile_decode_ratio`, and the modeled step's roofline terms over its fixed
    per-step overhead."""
    roofline = _profile_roofline(profile, snapshot)
    if roofline is None or profile.output_tokens_per_s <= 0:
        return None
    decode, prefill = roofline.step_times(profile.concurrency)
    # Where most of the step is the fixed per-step overhead (a tiny model on a fast device),
    # the measurement says how slow the server loop is, not what share of the device's
    # bandwidth the engine reaches, so it must not scale other models' roofline terms.
    share = (float(decode[0]) - roofline.overhead_s) / roofline.overhead_s
    out = profile.output_tokens
    # Attention's KV read keeps its own rate (see single_stream_prefill): it leaves both cycles,
    # unless the measured one is hardly more than it (the rate is off for this setting).
    attention = out * roofline.kv_read_s(profile.concurrency) / profile.concurrency
    modeled_cycle = float(prefill) + out * float(decode[0]) / profile.concurrency
    measured_cycle = out / profile.output_tokens_per_s
    if measured_cycle - attention < MIN_DECODE_SHARE * measured_cycle:
        attention = 0.0
    return (modeled_cycle - attention) / (measured_cycle - attention), share


def _matches_machine(profile: ProfileRecord, space: CandidateSpace, i: int) -> bool:
    machine, hardware = space.machines[i], space.hardware[i]
    if hardware.name != profile.hardware:
        return False
    if hardware.kind == "gpu":
        return machine.accelerator_count == profile.hardware_count
    return machine.vcpus == profile.hardware_count


def _similar_workload(profile: ProfileRecord, workload: Workload) -> bool:
    def close(a: int, b: int) -> bool:
        return 0.5 <= a / b <= 2.0

    return close(profile.input_tokens, workload.input_tokens) and close(
        profile.output_tokens, workload.output_tokens
    )


def calibration_keys(
    engine: str, family: str, hardware: HardwareRecord, scheme: str | None = None
) -> tuple[CalibrationKey, ...]:
    """Classes a profile calibrates and a candidate draws on, most specific first.

    Engines reach 0.48-0.91 of spec bandwidth depending on the GPU model and kernel, so the
    efficiency is taken from profiles of the same engine and scheme on the same device model
    where there are any (the kernel: llama.cpp's Q4_K_M reached 0.72-0.81 of F16's share on
    the same 2024 GPUs, 0.46 on an H200), else of the scheme's family on that device, else
    the same architecture (the CUDA compute capability: 8.0 is the A100's datacenter Ampere,
    8.6 the A10G's and the RTX 30 series', 8.9 Ada), else the generation's devices of the same
    memory technology, else the same generation (its major number, or the vendor), else the
    same device kind. llama.cpp ran at about 45 % of spec
    bandwidth on A100s (HBM) and 80-90 % on RTX 3090/4090 and L40S (GDDR) in the same
    published runs (XiongjieDai, May 2024), so a generation alone mixes the two.
    """
    generation = (hardware.compute_capability or "").split(".")[0] or hardware.vendor
    architecture = (
        (("architecture", engine, family, hardware.kind, hardware.compute_capability),)
        if hardware.compute_capability
        else ()
    )
    memory = (
        (("memory", engine, family, hardware.kind, generation, hardware.memory_type),)
        if hardware.memory_type
        else ()
    )
    kernel = (("kernel", engine, scheme, hardware.name),) if scheme else ()
    return (
        *kernel,
        ("device", engine, family, hardware.name),
        *architecture,
        *memory,
        ("generation", engine, family, hardware.kind, generation),
        ("kind", engine, family, hardware.kind),
    )


def _evidence(
    profiles: tuple[ProfileRecord, ...] | list[ProfileRecord],
    snapshot: CatalogSnapshot,
    workload: Workload,
) -> tuple[ClassRatios, dict[CurveKey, BatchingCurve]]:
    """Modeled-over-measured ratios of ``profiles`` filed under every class they belong to,
    and the measured batching curves. The classes hold single-stream efficiencies: a setting
    measured as a curve files its concurrency-1 point only (its other levels are its curve),
    a lone point its ratio divided by its engine's batching factor at its concurrency.

    A point calibrates its classes where the roofline terms make at least half its modeled
    step; it joins a curve where they are at least :data:`CURVE_MIN_ROOFLINE_SHARE` of the
    fixed overhead (the factor is relative to the setting's own single-stream point, so a
    mis-modeled overhead matters less there, but a step that is almost all overhead -- a
    135M model on an H200 -- measures the server loop, not how the engine batches)."""
    points: list[tuple[CurvePoint, tuple[CalibrationKey, ...] | None]] = []
    for profile in profiles:
        if not plans_from(profile):
            continue
        hardware = snapshot.hardware_by_name.get(profile.hardware)
        scheme = snapshot.scheme_by_name.get(profile.scheme)
        if hardware is None or scheme is None:
            continue
        found = _decode_ratio_and_share(profile, snapshot)
        if found is None:
            continue
        ratio, share = found
        served = is_served(profile)
        keys = curve_keys(profile.engine, hardware.kind, scheme.name, scheme.bits, served)
        classes = calibration_keys(profile.engine, scheme.family, hardware, scheme.name)
        on_curve = share >= CURVE_MIN_ROOFLINE_SHARE
        calibrates = classes if share >= 1 and ratio >= MIN_CALIBRATING_RATIO else None
        points.append((CurvePoint(profile, ratio, keys, on_curve), calibrates))
    curve_points = [point for point, _ in points if point.on_curve]
    curves = measured_curves(curve_points)
    with_curves = curve_settings(curve_points)
    # A curve whose first levels paid a start-up cost files nothing under its classes either:
    # its single-stream point is the one set apart; its other levels are its curve.
    cold = {source_setting_of(p) for p in profiles if p.details.get(COLD_START)}
    started_cold = {
        setting_of(point.profile)
        for point in curve_points
        if source_setting_of(point.profile) in cold
    } - with_curves
    ratios = ClassRatios()
    for point, calibrated in points:
        if calibrated is None or setting_of(point.profile) in started_cold:
            continue
        source = point.profile.source
        if setting_of(point.profile) in with_curves:
            if point.profile.concurrency == 1:
                ratios.add(calibrated, point.ratio, source)
            continue
        factor = batching_curve(curves, lookup_keys(point.keys)).factor(
            float(point.profile.concurrency)
        )
        ratios.add(calibrated, point.ratio / float(factor), source)
    anchors = _curve_anchors(curve_points, started_cold, ratios, snapshot)
    if anchors:
        curves = measured_curves([*curve_points, *anchors])
    return ratios, curves


def _curve_anchors(
    curve_points: list[CurvePoint],
    started_cold: set[tuple[object, ...]],
    ratios: ClassRatios,
    snapshot: CatalogSnapshot,
) -> list[CurvePoint]:
    """A one-request point for each setting measured as a curve whose first levels were set
    apart as a start-up cost (:data:`COLD_START`): the single-stream ratio of its calibration
    classes, as a setting without a point of its own is predicted, so its later levels still
    say how its engine batches."""
    levels: dict[tuple[object, ...], list[CurvePoint]] = defaultdict(list)
    for point in curve_points:
        if setting_of(point.profile) in started_cold:
            levels[setting_of(point.profile)].append(point)
    pooled = pooled_log_means(ratios)
    anchors = []
    for found in levels.values():
        first = min(found, key=lambda p: p.profile.concurrency)
        hardware = snapshot.hardware_by_name[first.profile.hardware]
        scheme = snapshot.scheme_by_name[first.profile.scheme]
        single = class_multiplier(
            ratios, first.profile.engine, scheme.family, hardware, pooled, scheme.name
        )
        if single is not None:
            anchor = first.profile.model_copy(update={"concurrency": 1})
            anchors.append(CurvePoint(anchor, single[0], first.keys, True))
    return anchors


def _class_ratios(
    profiles: tuple[ProfileRecord, ...] | list[ProfileRecord],
    snapshot: CatalogSnapshot,
    workload: Workload,
) -> ClassRatios:
    """Single-stream ratios of ``profiles`` per calibration class (see :func:`_evidence`)."""
    return _evidence(profiles, snapshot, workload)[0]


def class_multiplier(
    ratios: dict[CalibrationKey, list[float]],
    engine: str,
    family: str,
    hardware: HardwareRecord,
    pooled: dict[CalibrationKey, float] | None = None,
    scheme: str | None = None,
) -> tuple[float, CalibrationKey] | None:
    """Speed multiplier of the most specific class with evidence (its mean shrunk toward its
    parents', planner/pooling.py), and that class. ``pooled``: the log means already pooled;
    ``scheme``: the scheme itself, whose own runs on the device come first."""
    means = pooled_log_means(ratios) if pooled is None else pooled
    for key in calibration_keys(engine, family, hardware, scheme):
        if key in means:
            return math.exp(means[key]), key
    return None


FIRST_TOKEN_SPREAD = 2.0
"""The fitted profiles' roofline prefills must span this factor (largest over smallest) for a
fit to tell a fixed per-request overhead from a prefill speed."""
PREFILL_DOMINATED = 0.5
"""Where the profiles cannot tell the two apart, the time goes to the prefill if the roofline
puts at least this share of it there (a CPU's prefill), else to a fixed overhead (a GPU's)."""


@dataclass(frozen=True)
class FirstTokenFit:
    """What a request holds one engine on one device kind for before its first token, fitted
    from the profiles that measured TTFT through a client: a fixed overhead (the HTTP request,
    tokenization, the server loop's turn) plus the prefill as ``prefill_factor`` x the
    default-efficiency roofline's. The prefill is fitted apart from the decode step because
    the two are bound by different things (FLOPS and bandwidth): on this project's 4-vCPU
    Sapphire Rapids host llama.cpp decodes 1.24x faster than the default roofline but
    prefills 1.22x slower, vLLM there prefills 5x faster (AMX), and llama-server on an H200
    spends 9 ms a request beside an 8B prefill 2.9x slower than the roofline's.
    ``prefill_factor`` None: the profiles could not separate the two and the roofline calls
    the time overhead; the prefill is then the decode-calibrated one."""

    overhead_s: float
    prefill_factor: float | None
    points: int
    under_load: bool = False  # fitted from closed-loop runs under load (no lone request)

    def service_s(
        self, roofline_prefill_s: np.ndarray | float, calibrated_prefill_s: np.ndarray | float
    ) -> np.ndarray:
        """Overhead plus prefill for arrays of roofline and decode-calibrated prefills."""
        if self.prefill_factor is None:
            return np.asarray(self.overhead_s + np.asarray(calibrated_prefill_s))
        return np.asarray(self.overhead_s + self.prefill_factor * np.asarray(roofline_prefill_s))


NO_FIRST_TOKEN_EVIDENCE = FirstTokenFit(overhead_s=0.0, prefill_factor=None, points=0)


def _first_token_point(
    profile: ProfileRecord, snapshot: CatalogSnapshot
) -> tuple[float, float, _ProfileRoofline] | None:
    """(roofline prefill, measured seconds the request held the engine before its first token,
    roofline) of a profile at one request: its TTFT minus a decode step. A lone request never
    waits behind another, so no arrival model is assumed."""
    if profile.concurrency != 1 or profile.output_tokens_per_s <= 0:
        return None
    ttft_ms = profile.ttft_p50_ms if profile.ttft_p50_ms is not None else profile.ttft_p95_ms
    if ttft_ms is None:
        return None
    step_ms = profile.itl_p50_ms or 1000 / profile.output_tokens_per_s
    return _service_point(profile, snapshot, ttft_ms - step_ms)


def _loaded_first_token_point(
    profile: ProfileRecord, snapshot: CatalogSnapshot
) -> tuple[float, float, _ProfileRoofline] | None:
    """The same from a served closed-loop run under load: planner/queueing.py's burst of
    ``concurrency`` prompts in step puts ``ceil(0.95 c)`` services and a decode step before
    the p95 request's first token, so that service is its p95 TTFT less the step, over the
    services. Only the arrival pattern the TTFT estimate itself assumes for such a run is
    inverted: open-loop runs (a set request rate) and engine-loop runs are not used."""
    if (
        profile.concurrency < 2
        or profile.request_rate
        or profile.ttft_p95_ms is None
        or profile.output_tokens_per_s <= 0
        or not is_served(profile)
    ):
        return None
    step_ms = profile.itl_p50_ms or 1000 * profile.concurrency / profile.output_tokens_per_s
    services = float(burst_services_to_p95(profile.concurrency))
    return _service_point(profile, snapshot, (profile.ttft_p95_ms - step_ms) / services)


def _service_point(
    profile: ProfileRecord, snapshot: CatalogSnapshot, service_ms: float
) -> tuple[float, float, _ProfileRoofline] | None:
    if service_ms <= 0:
        return None
    roofline = _profile_roofline(profile, snapshot)
    if roofline is None:
        return None
    _, prefill = roofline.step_times(1)
    return float(prefill), service_ms / 1000, roofline


def first_token_fits(
    profiles: tuple[ProfileRecord, ...] | list[ProfileRecord],
    snapshot: CatalogSnapshot,
    class_ratios: ClassRatios,
    pooled: dict[CalibrationKey, float] | None = None,
) -> dict[tuple[str, str], FirstTokenFit]:
    """Per (engine, device kind), :class:`FirstTokenFit` from ``profiles``: ``measured =
    overhead + factor x roofline prefill``, least squares on relative errors (overhead at least
    0), where the points' roofline prefills span :data:`FIRST_TOKEN_SPREAD`. Otherwise the
    time goes to one term: to the prefill where the roofline puts at least
    :data:`PREFILL_DOMINATED` of it there, else to an overhead beside the decode-calibrated
    prefill (the median of what is left). The points are runs of one request; an (engine,
    kind) with none is fitted from its served closed-loop runs under load
    (:func:`_loaded_first_token_point`), so a catalog of loaded runs only -- a sweep imported
    from ``vllm bench serve`` -- still sets the service its TTFTs showed. Kinds with neither
    get none."""
    means = pooled_log_means(class_ratios) if pooled is None else pooled
    alone: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    loaded: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for profile in profiles:
        if not plans_from(profile):
            continue
        point = _first_token_point(profile, snapshot)
        found = alone
        if point is None:
            point, found = _loaded_first_token_point(profile, snapshot), loaded
        if point is None:
            continue
        roofline_prefill, measured, roofline = point
        multiplier = class_multiplier(
            class_ratios,
            profile.engine,
            roofline.scheme.family,
            roofline.hardware,
            means,
            roofline.scheme.name,
        )
        calibrated = roofline_prefill / (multiplier[0] if multiplier else 1.0)
        found[(profile.engine, roofline.hardware.kind)].append(
            (roofline_prefill, measured, calibrated)
        )
    fitted = {
        key: replace(_fit_first_token(points), under_load=True) for key, points in loaded.items()
    }
    fitted.update({key: _fit_first_token(points) for key, points in alone.items()})
    return fitted


def _fit_first_token(points: list[tuple[float, float, float]]) -> FirstTokenFit:
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    calibrated = np.array([p[2] for p in points])
    if x.max() >= FIRST_TOKEN_SPREAD * x.min():
        w = 1.0 / y**2  # relative errors: a 10 ms and a 10 s request count alike
        design = np.stack([np.ones_like(x), x], axis=1)
        normal = design.T @ (design * w[:, None])
        overhead, factor = np.linalg.solve(normal, design.T @ (w * y))
        if overhead < 0:
            overhead, factor = 0.0, float(np.sum(w * x * y) / np.sum(w * x * x))
        if factor > 0:
            return FirstTokenFit(float(overhead), float(factor), len(points))
    if float(np.median(x / y)) >= PREFILL_DOMINATED:
        return FirstTokenFit(0.0, float(np.exp(np.median(np.log(y / x)))), len(points))
    overhead = float(np.median(np.maximum(y - calibrated, 0.0)))
    return FirstTokenFit(overhead, None, len(points))


CITED_SOURCES = 3
"""Sources a plan's evidence line names (the ones with most rows); the rest are counted."""


def _named(counts: Counter[str]) -> str:
    named = [f"{source} ({n})" for source, n in counts.most_common(CITED_SOURCES)]
    rest = len(counts) - len(named)
    return "; ".join(named) + (f"; {rest} more source(s)" if rest > 0 else "")


def cite(sources: Iterable[str]) -> str:
    """``sources`` (one per profile) as a citation: the row count, then the sources with the
    most rows, each with its count."""
    counts = Counter(source for source in sources if source)
    return f"{sum(counts.values())} profile(s): {_named(counts)}"


def _class_evidence(key: CalibrationKey, ratios: ClassRatios) -> str:
    """What a calibration class's multiplier rests on, in words."""
    kind, *what = key
    return f"efficiency of the {kind} class ({' '.join(str(w) for w in what)}) from " + cite(
        ratios.sources.get(key, ())
    )


def _curve_evidence(curve: BatchingCurve) -> str:
    """What a batching curve rests on, in words ('' for the roofline's own)."""
    if curve.basis != "measured":
        return ""
    return f"batching: {curve.source} ({_named(Counter(curve.sources))})"


def _calibration(
    space: CandidateSpace, snapshot: CatalogSnapshot, workload: Workload
) -> tuple[
    np.ndarray, np.ndarray, dict[tuple[str, str], FirstTokenFit], dict[tuple[int, int], str]
]:
    """Speed multipliers (S, I, K) and basis codes (S, I, K) from the catalog's profiles, the
    first-token fits, and per (option, instance) the profiles its speeds rest on, in words."""
    shape_s, shape_i, k = len(space.options), len(space.instances), len(CONCURRENCY_GRID)
    multiplier = np.ones((shape_s, shape_i, k))
    basis = np.zeros((shape_s, shape_i, k), dtype=np.int8)
    evidence: dict[tuple[int, int], str] = {}
    usable = [p for p in snapshot.profiles if plans_from(p)]
    if not usable:
        return multiplier, basis, {}, evidence
    # Every profile: _evidence sets apart those plans do not draw on, and knows them.
    class_ratios, curves = _evidence(snapshot.profiles, snapshot, workload)
    # Per (option, instance): (concurrency, ratio, basis code, served, source) of each run.
    exact: dict[tuple[int, int], list[tuple[float, float, int, bool, str]]] = defaultdict(list)
    option_index = {(o.scheme.name, o.engine): s for s, o in enumerate(space.options)}
    for profile in usable:
        s = option_index.get((profile.scheme, profile.engine))
        if s is None or profile.model != space.shape.name:
            continue
        if not _similar_workload(profile, workload):
            continue
        ratio = _profile_decode_ratio(profile, snapshot, workload)
        if ratio is None or ratio <= 0:
            continue
        code = MEASURED if profile.basis == "measured" else PUBLISHED
        for i in range(shape_i):
            if _matches_machine(profile, space, i):
                exact[(s, i)].append(
                    (float(profile.concurrency), ratio, code, is_served(profile), profile.source)
                )
    # Many options share an engine and scheme and many instances a device, so each class's
    # pooled mean is taken once, not once per (option, instance) pair.
    pooled = pooled_log_means(class_ratios)
    by_class: dict[tuple[str, str, str], float | None] = {}
    class_words: dict[tuple[str, str, str], str] = {}
    by_curve: dict[tuple[str, str, str], BatchingCurve] = {}
    bent: dict[tuple[str, str, str], np.ndarray] = {}  # each curve's factors on the grid, once
    curve_words: dict[tuple[str, str, str], str] = {}  # and what it rests on, once
    for s, option in enumerate(space.options):
        for i, hardware in enumerate(space.hardware):
            lookup = (option.engine, option.scheme.name, hardware.name)
            if lookup not in by_class:
                found = class_multiplier(
                    class_ratios, option.engine, option.family, hardware, pooled, option.scheme.name
                )
                by_class[lookup] = found[0] if found else None
                class_words[lookup] = _class_evidence(found[1], class_ratios) if found else ""
            bending = (option.engine, hardware.kind, option.scheme.name)
            if bending not in by_curve:
                # A plan's replicas are served: served curves first.
                keys = lookup_keys(curve_keys(*bending, option.scheme.bits, served=True))
                by_curve[bending] = batching_curve(curves, keys)
                bent[bending] = by_curve[bending].factor(CONCURRENCY_GRID)
                curve_words[bending] = _curve_evidence(by_curve[bending])
            multiplier[s, i, :] = bent[bending]
            value = by_class[lookup]
            if value is not None:
                multiplier[s, i, :] *= value
                basis[s, i, :] = CALIBRATED
            words = (class_words[lookup], curve_words[bending])
            evidence[(s, i)] = "; ".join(w for w in words if w)
    log_grid = np.log(CONCURRENCY_GRID)
    conversions: dict[tuple[str, str, str], BatchingCurve | None] = {}
    for (s, i), points in exact.items():
        option, hardware = space.options[s], space.hardware[i]
        bending = (option.engine, hardware.kind, option.scheme.name)
        if bending not in conversions:
            keys = curve_keys(*bending, option.scheme.bits, served=True)
            conversions[bending] = served_over_loop(curves, keys)
        xs, ys, levels = pinned_curve(
            ((p[0], p[1], p[3]) for p in points), served=True, conversion=conversions[bending]
        )
        curve = by_curve[bending]
        multiplier[s, i, :] = pinned_values(xs, ys, CONCURRENCY_GRID, curve)
        levels_words = ", ".join(f"{math.exp(x):g}" for x in xs)
        runs = cite(p[4] for p in points)
        pinned = f"this setting's runs at concurrency {levels_words} ({runs})"
        beyond = curve_words[bending]
        evidence[(s, i)] = pinned + (f"; beyond them, {beyond}" if beyond else "")
        codes = {p[0]: p[2] for p in points if p[0] in levels}
        for k, log_b in enumerate(log_grid):
            hit = [code for level, code in codes.items() if abs(math.log(level) - log_b) < 1e-9]
            if hit:
                basis[s, i, k] = hit[0]
            elif xs[0] < log_b < xs[-1]:
                basis[s, i, k] = INTERPOLATED
            else:
                basis[s, i, k] = CALIBRATED
    fits = first_token_fits(usable, snapshot, class_ratios, pooled)
    return multiplier, basis, fits, evidence


MIN_DECODE_SHARE = 0.25
"""Floor of a calibrated decode step, as a share of the multiplier's own (see
:func:`single_stream_prefill`)."""


def single_stream_prefill(
    roofline_prefill_s: np.ndarray | float,
    roofline_decode_s: np.ndarray,
    multiplier: np.ndarray,
    single_stream_multiplier: np.ndarray | float,
    output_tokens: int,
    batch: np.ndarray | float,
    kv_read_s: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Prefill and decode step of a calibrated setting, the prefill at its single-stream speed.

    A multiplier is a closed-loop cycle's modeled over measured time (``prefill + output x
    step / batch``), so dividing both terms by it reproduces the measured cycle. But a
    request's prefill does not slow down because the engine batches decodes worse than the
    roofline at 64 sequences: the prefill keeps the single-stream multiplier and the decode
    step takes the rest of the cycle (at least :data:`MIN_DECODE_SHARE` of its own share),
    so the cycle, and the throughput, are unchanged.

    The step's KV read (``kv_read_s``, part of ``roofline_decode_s``) is not scaled: the
    multiplier describes the weight kernels and the step's overhead, while attention's rate
    is measured on its own (the engine traits' ``kv_read_efficiency``, from runs at several
    depths: bench/results/llamacpp_depth*.md). There a token of depth cost one H200 the same
    56-59 ns with flash attention (109-112 without) for F16, Q8_0 and Q4_K_M files whose
    weights it read at 2.9, 1.8 and 1.1 TB/s: the weight kernel's class, which a multiplier
    is, says nothing of attention's. Scaled with the weights', a longer context
    cost too little in all 49 held-out pairs of runs that differ only in length (XiongjieDai's
    2024 tg512 and tg8192, eight GPU models): median -30 %; at attention's own rate the median
    is +1 % (bench/results/prediction_accuracy.md, "context cost"). The spread stays (median
    abs 32 %): without flash attention those builds read the context at about 0.35 of spec
    bandwidth on Ada GPUs and much slower on A100s, RTX 3090s and the M2 Ultra, slower still
    for 70B (eight query heads a KV head) than for 8B (four), which one rate per engine and
    device kind does not tell apart."""
    batch = np.asarray(batch, dtype=float)
    roofline_prefill = np.asarray(roofline_prefill_s, dtype=float)
    attention = np.asarray(kv_read_s, dtype=float)
    prefill = roofline_prefill / np.asarray(single_stream_multiplier)
    decode_share = output_tokens * (np.asarray(roofline_decode_s) - attention) / batch / multiplier
    # The prefills are per setting; the cycle has the concurrency axis last.
    cycle = roofline_prefill[..., None] / multiplier + decode_share
    kept = np.maximum(cycle - prefill[..., None], MIN_DECODE_SHARE * decode_share)
    return np.asarray(prefill), np.asarray(kept * batch / output_tokens + attention)


def estimate_performance(
    space: CandidateSpace, snapshot: CatalogSnapshot, workload: Workload
) -> PerformanceMap:
    """The time map of every option x instance x concurrency, with bases."""
    shape = space.shape
    bandwidth, tflops, usable, bw_eff, kv_eff, fl_eff, is_gpu, links = _efficiency_tables(
        space, snapshot
    )
    weights = np.array(
        [weight_gb(shape, o.scheme, method_traits(snapshot, o.family)) for o in space.options],
        dtype=float,
    )
    overhead = np.array(
        [[step_overhead(o.engine, "gpu" if g else "cpu") for g in is_gpu] for o in space.options],
        dtype=float,
    ).reshape(len(space.options), len(is_gpu), 2)
    overhead_s = overhead[..., 0] + overhead[..., 1] * shape.layers
    decode, prefill = _step_times(
        shape,
        workload,
        np.broadcast_to(weights[:, None], bandwidth.shape),
        bandwidth * bw_eff,
        bandwidth * kv_eff,
        tflops * fl_eff,
        overhead_s,
        CONCURRENCY_GRID,
        links,
    )
    multiplier, basis, first_token, evidence = _calibration(space, snapshot, workload)
    roofline_prefill = prefill
    prefill, decode = single_stream_prefill(
        prefill,
        decode,
        multiplier,
        multiplier[..., 0],
        workload.output_tokens,
        CONCURRENCY_GRID,
        kv_read_s(shape, workload, bandwidth * kv_eff, CONCURRENCY_GRID),
    )
    kv_sequence = kv_gb_per_token(shape) * (workload.input_tokens + workload.output_tokens)
    free = usable - weights[:, None]
    sequences = np.where(free > 0, np.floor(free / kv_sequence), 0).astype(np.int64)
    is_gpu = np.array([h.kind == "gpu" for h in space.hardware], dtype=bool)
    caps = np.array(
        [
            np.where(
                is_gpu,
                engine_traits(snapshot, o.engine, "gpu").max_concurrency,
                engine_traits(snapshot, o.engine, "cpu").max_concurrency,
            )
            for o in space.options
        ],
        dtype=np.int64,
    ).reshape(len(space.options), len(space.hardware))
    sequences = np.minimum(sequences, caps)
    # llama.cpp options the GPU memory rejects may run split by layers (planner/offload.py).
    split = offload_rejected(
        engines=tuple(o.engine for o in space.options),
        offload_gpu=engine_traits(snapshot, OFFLOAD_ENGINE, "gpu"),
        offload_cpu=engine_traits(snapshot, OFFLOAD_ENGINE, "cpu"),
        machines=space.machines,
        is_gpu=is_gpu,
        layers=shape.layers,
        weights_gb=weights,
        weights_read_gb=weights * active_fraction(shape),
        output_gb=np.array([output_layer_gb(shape, o.scheme) for o in space.options], dtype=float),
        kv_gb_per_sequence=kv_sequence,
        kv_read_gb_per_sequence=kv_gb_per_token(shape)
        * (workload.input_tokens + workload.output_tokens / 2),
        active_params=shape.parameters_b * 1e9 * active_fraction(shape),
        input_tokens=workload.input_tokens,
        usable_memory_gb=usable,
        decode_step_s=decode,
        prefill_s=prefill,
        max_sequences=sequences,
        batch=CONCURRENCY_GRID,
    )
    decode, prefill, sequences, gpu_layers = (
        split.decode_step_s,
        split.prefill_s,
        split.max_sequences,
        split.gpu_layers,
    )
    basis = np.where((gpu_layers > 0)[..., None], np.minimum(basis, CALIBRATED), basis)
    basis = basis.astype(np.int8)
    service = prefill.copy()
    request_overhead = np.zeros_like(prefill)
    engine_of = np.array([o.engine for o in space.options])
    kind_of = np.array([h.kind for h in space.hardware])
    for (engine, kind), fit in first_token.items():
        cells = (engine_of == engine)[:, None] & (kind_of == kind)[None, :]
        service[cells] = fit.service_s(roofline_prefill, prefill)[cells]
        request_overhead[cells] = fit.overhead_s
    # A layer split's prefill is the split's own model (planner/offload.py), not the fit's.
    service = np.where(gpu_layers > 0, request_overhead + prefill, service)
    for array in (decode, prefill, basis, sequences, weights, usable, gpu_layers, service):
        array.setflags(write=False)
    return PerformanceMap(
        decode_step_s=decode,
        prefill_s=prefill,
        basis=basis,
        max_sequences=sequences,
        weights_gb=weights,
        kv_gb_per_sequence=kv_sequence,
        usable_memory_gb=usable,
        gpu_layers=gpu_layers,
        first_token_s=service,
        first_token_fits=first_token,
        evidence=evidence,
    )


def first_token_note(engine: str, kind: str, fit: FirstTokenFit) -> str:
    """A plan's line on what its TTFT's service time rests on for ``engine`` on ``kind``."""
    if fit.points == 0:
        return (
            f"first token on {engine} ({kind}): no profile measured its TTFT (at one request, "
            "or served in a closed loop); "
            "the prefill is the decode-calibrated roofline's, with no request overhead"
        )
    if fit.prefill_factor is None:
        how = (
            f"{fit.overhead_s * 1000:.1f} ms a request beside the decode-calibrated prefill "
            "(the roofline puts little of the time in the prefill)"
        )
    else:
        how = (
            f"{fit.overhead_s * 1000:.1f} ms a request + {fit.prefill_factor:.2f} x the "
            "default-efficiency roofline prefill"
        )
    measured = (
        "run under load (closed loop, no run of one request)"
        if fit.under_load
        else "measured at one request"
    )
    return (
        f"first token on {engine} ({kind}): {how}, fitted from {fit.points} profile(s) {measured}"
    )


@dataclass(frozen=True)
class PointPrediction:
    """What the model predicts for one profile's setting (closed loop at its concurrency)."""

    decode_step_s: float
    prefill_s: float
    output_tokens_per_s: float
    ttft_ms: float  # first-token service + one decode step, no queueing
    basis: str
    batching: str = ""  # the batching curve applied (planner/batching.py), when not pinned
    first_token_s: float = 0.0  # request overhead + prefill (FirstTokenFit)


def ttft_p95_under_load_ms(profile: ProfileRecord, prediction: PointPrediction) -> float:
    """The p95 TTFT the model gives ``profile``'s run under load, its arrivals as they came: an
    open loop's set rate (up to what the replica is predicted to carry), or a closed loop's
    clients in step, a burst of ``concurrency`` prompts per round (planner/queueing.py)."""
    rate = prediction.output_tokens_per_s / profile.output_tokens
    if profile.request_rate:
        rate = min(rate, profile.request_rate)
    clients = None if profile.request_rate else profile.concurrency
    return 1000 * float(
        p95_ttft_s(prediction.first_token_s, prediction.decode_step_s, rate, clients=clients)
    )


def predict_profile(
    profile: ProfileRecord, snapshot: CatalogSnapshot, evidence: tuple[ProfileRecord, ...]
) -> PointPrediction | None:
    """The model's prediction for ``profile``'s setting, calibrated from ``evidence`` only.

    The same calibration the planner's time map uses (class multipliers of engine, family and
    device kind), so validating this on held-out profiles validates the planner's numbers.
    """
    roofline = _profile_roofline(profile, snapshot)
    if roofline is None:
        return None
    shape, scheme, hardware = roofline.shape, roofline.scheme, roofline.hardware
    replica, traits, workload = roofline.replica, roofline.traits, roofline.workload
    decode, prefill = roofline.step_times(profile.concurrency)
    class_ratios, curves = _evidence(evidence, snapshot, workload)  # sets apart what it must
    evidence = tuple(o for o in evidence if plans_from(o))
    pooled = pooled_log_means(class_ratios)  # once, for the multiplier and the overheads
    found = class_multiplier(
        class_ratios, profile.engine, scheme.family, hardware, pooled, scheme.name
    )
    first_token = first_token_fits(evidence, snapshot, class_ratios, pooled).get(
        (profile.engine, hardware.kind), NO_FIRST_TOKEN_EVIDENCE
    )
    keys = curve_keys(profile.engine, hardware.kind, scheme.name, scheme.bits, is_served(profile))
    curve = batching_curve(curves, lookup_keys(keys))
    single = found[0] if found else 1.0
    multiplier = single * float(curve.factor(float(profile.concurrency)))
    # A request's prefill runs at the single-stream speed whatever the concurrency, as in the
    # planner's time map (estimate_performance divides it by the concurrency-1 multiplier).
    prefill_multiplier = single * float(curve.factor(1.0))
    basis = f"modeled, calibrated ({found[1][0]})" if found else "modeled, default efficiencies"
    same = sorted(
        (float(o.concurrency), ratio, is_served(o))
        for o in evidence
        if (o.model, o.scheme, o.engine, o.hardware, o.hardware_count)
        == (profile.model, profile.scheme, profile.engine, profile.hardware, profile.hardware_count)
        and _similar_workload(o, workload)
        and (ratio := _profile_decode_ratio(o, snapshot, workload))
    )
    if same:  # pinned at these concurrencies, bent as the engine curve beyond them
        conversion = served_over_loop(curves, keys)
        xs, ys, _ = pinned_curve(same, served=is_served(profile), conversion=conversion)
        levels = np.array([profile.concurrency, 1.0])
        multiplier, prefill_multiplier = (float(v) for v in pinned_values(xs, ys, levels, curve))
        basis = "published or measured, same setting"
    # The engine runs at most the sequences whose KV cache fits (the rest wait), as the map's
    # max_sequences does; the step at that batch is the one the measurement saw.
    kv_sequence = kv_gb_per_token(shape) * (profile.input_tokens + profile.output_tokens)
    weights = weight_gb(shape, scheme, roofline.method)
    fits = max_sequences(replica.usable_memory_gb, weights, kv_sequence)
    running = max(1, min(profile.concurrency, fits, traits.max_concurrency))
    if running != profile.concurrency:
        decode, _ = roofline.step_times(running)
    out = profile.output_tokens
    pre_array, step_array = single_stream_prefill(
        float(prefill),
        decode,
        np.array(multiplier),
        prefill_multiplier,
        out,
        float(running),
        roofline.kv_read_s(running),
    )
    pre, step = float(pre_array), float(step_array[0])
    service = float(first_token.service_s(float(prefill), pre))
    tokens_per_s = out / (pre + out * step / running)
    return PointPrediction(
        decode_step_s=step,
        prefill_s=pre,
        output_tokens_per_s=tokens_per_s,
        ttft_ms=(service + step) * 1000,
        basis=basis,
        batching="" if same else f"{curve.basis}: {curve.source}",
        first_token_s=service,
    )
