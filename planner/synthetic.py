"""Synthetic catalogs for scale benchmarks and randomized tests (never for real plans).

Rows are random but plausible (GPU and CPU hardware within published spec ranges, prices that
grow with the hardware) so the planner's code paths all run: compatible and incompatible pairs,
models that fit and do not, spot prices present or absent, measured profiles for calibration.
Every record says ``synthetic`` in its source, but for the engine and method traits: the engines
are the real ones, so their traits are the shipped rows.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from quantplan.catalog.records import (
    EngineSupportRecord,
    EngineTraitRecord,
    HardwareRecord,
    InstanceRecord,
    MethodTraitRecord,
    ModelRecord,
    ProfileRecord,
    QualityRecord,
    SchemeRecord,
)
from quantplan.catalog.snapshot import CatalogSnapshot

SOURCE = "synthetic (randomly generated for tests and benchmarks)"
_SCHEME_KINDS = (
    ("baseline", 16, "vllm", 16.0),
    ("gptq", 4, "vllm", 4.125),
    ("gptq", 8, "vllm", 8.125),
    ("awq", 4, "vllm", 4.156),
    ("awq", 8, "vllm", 8.1875),
    ("gguf", 8, "llama.cpp", 8.5),
    ("gguf", 5, "llama.cpp", 5.7),
    ("gguf", 4, "llama.cpp", 4.9),
    ("gguf", 3, "llama.cpp", 4.0),
    ("gguf", 2, "llama.cpp", 3.2),
)
SUPPORT = (
    EngineSupportRecord(engine="vllm", family="baseline", device_kind="gpu", bits=16,
                        min_compute_capability=7.0, kernel="GEMM", source=SOURCE),
    EngineSupportRecord(engine="vllm", family="baseline", device_kind="cpu", bits=16,
                        required_isa="avx512", kernel="oneDNN", source=SOURCE),
    EngineSupportRecord(engine="vllm", family="gptq", device_kind="gpu", bits=4,
                        min_compute_capability=8.0, kernel="Marlin", source=SOURCE),
    EngineSupportRecord(engine="vllm", family="gptq", device_kind="gpu", bits=8,
                        min_compute_capability=8.0, kernel="Marlin", source=SOURCE),
    EngineSupportRecord(engine="vllm", family="gptq", device_kind="cpu", bits=4,
                        required_isa="avx512", kernel="CPUWNA16", source=SOURCE),
    EngineSupportRecord(engine="vllm", family="awq", device_kind="gpu", bits=4,
                        min_compute_capability=7.5, kernel="Marlin/AWQ GEMM", source=SOURCE),
    EngineSupportRecord(engine="vllm", family="awq", device_kind="gpu", bits=8,
                        min_compute_capability=8.0, kernel="Marlin", source=SOURCE),
    EngineSupportRecord(engine="llama.cpp", family="gguf", device_kind="gpu", bits=0,
                        min_compute_capability=6.0, kernel="ggml-cuda", source=SOURCE),
    EngineSupportRecord(engine="llama.cpp", family="gguf", device_kind="cpu", bits=0,
                        required_isa="avx2", kernel="ggml-cpu", source=SOURCE),
)  # fmt: skip


def _hardware(rng: np.random.Generator, count: int) -> list[HardwareRecord]:
    rows = []
    for k in range(count):
        if k % 3 != 2:
            bandwidth = float(rng.uniform(300, 4800))
            rows.append(
                HardwareRecord(
                    name=f"gpu-{k}", kind="gpu", vendor="synthetic",
                    memory_gb=float(rng.choice([16, 24, 40, 48, 80, 141])),
                    memory_bandwidth_gbps=bandwidth, bf16_tflops=bandwidth * rng.uniform(0.1, 0.4),
                    compute_capability=str(rng.choice(["7.0", "7.5", "8.0", "8.6", "8.9", "9.0"])),
                    source=SOURCE,
                )
            )  # fmt: skip
        else:
            rows.append(
                HardwareRecord(
                    name=f"cpu-{k}", kind="cpu", vendor="synthetic",
                    memory_bandwidth_gbps=float(rng.uniform(100, 460)),
                    bf16_tflops=float(rng.uniform(1, 8)),
                    cores_per_socket=int(rng.choice([16, 48, 64, 96])),
                    isa_flags=str(rng.choice(["avx2", "avx2,avx512", "avx2,avx512,amx"])),
                    source=SOURCE,
                )
            )  # fmt: skip
    return rows


def _instances(
    rng: np.random.Generator, count: int, hardware: list[HardwareRecord]
) -> list[InstanceRecord]:
    rows = []
    for k in range(count):
        hw = hardware[int(rng.integers(len(hardware)))]
        gpus = int(rng.choice([1, 1, 1, 2, 4, 8])) if hw.kind == "gpu" else 0
        vcpus = int(rng.choice([2, 4, 8, 16, 32, 64, 96, 192]))
        scale = gpus * hw.memory_bandwidth_gbps / 1000 if gpus else vcpus * 0.045
        price = float(max(0.02, scale * rng.uniform(0.6, 1.6)))
        spot = float(price * rng.uniform(0.2, 0.8)) if rng.random() < 0.7 else None
        rows.append(
            InstanceRecord(
                cloud=str(rng.choice(["aws", "gcp", "azure"])), name=f"inst-{k}",
                region=str(rng.choice(["r1", "r2"])), vcpus=vcpus,
                memory_gib=float(vcpus * rng.choice([2, 4, 8])), hardware=hw.name,
                accelerator_count=gpus, price_per_hour=price, spot_price_per_hour=spot,
                price_source=SOURCE,
            )
        )  # fmt: skip
    return rows


def _models(rng: np.random.Generator, count: int) -> list[ModelRecord]:
    rows = []
    for k in range(count):
        layers = int(rng.choice([16, 24, 32, 40, 48, 64, 80]))
        hidden = int(rng.choice([1024, 2048, 3072, 4096, 5120, 8192]))
        heads = hidden // 128
        params = 12 * layers * hidden * hidden / 1e9 + 2 * 32000 * hidden / 1e9
        rows.append(
            ModelRecord(
                name=f"model-{k}", family=str(rng.choice(["llama", "qwen2", "mistral"])),
                parameters_b=params, layers=layers, hidden_size=hidden, heads=heads,
                kv_heads=max(1, heads // int(rng.choice([1, 4, 8]))), head_dim=128,
                vocab_size=32000, max_context=32768, source=SOURCE,
            )
        )  # fmt: skip
    return rows


def _schemes(count: int) -> list[SchemeRecord]:
    rows = []
    for k in range(count):
        family, bits, engine, bpw = _SCHEME_KINDS[k % len(_SCHEME_KINDS)]
        rows.append(
            SchemeRecord(
                name=f"{family}-{bits}b-{k}", family=family, bits=bits, bits_per_weight=bpw,
                group_size=None if family in ("baseline", "gguf") else 128, engines=engine,
                source=SOURCE,
            )
        )  # fmt: skip
    return rows


@cache
def shipped_traits() -> tuple[tuple[EngineTraitRecord, ...], tuple[MethodTraitRecord, ...]]:
    """The shipped engine and method trait rows (catalog/seed), read once."""
    from quantplan.catalog.seeding import SEED_DIR
    from quantplan.catalog.transfer import parse

    rows: dict[str, tuple[object, ...]] = {}
    for kind in ("engine_traits", "method_traits"):
        path = SEED_DIR / f"{kind}.yaml"
        _, records = parse(path.read_text(encoding="utf-8"), "yaml", kind, path.name)
        rows[kind] = tuple(records)
    engines = tuple(r for r in rows["engine_traits"] if isinstance(r, EngineTraitRecord))
    methods = tuple(r for r in rows["method_traits"] if isinstance(r, MethodTraitRecord))
    return engines, methods


def synthetic_snapshot(
    seed: int,
    *,
    instances: int = 50,
    schemes: int = 10,
    models: int = 3,
    hardware: int = 12,
    quality_rows: int = 20,
    profiles: int = 5,
) -> CatalogSnapshot:
    """A random catalog; the same seed gives the same catalog."""
    rng = np.random.default_rng(seed)
    hw = _hardware(rng, hardware)
    inst = _instances(rng, instances, hw)
    model_rows = _models(rng, models)
    scheme_rows = _schemes(schemes)
    quality = []
    for _ in range(quality_rows):
        model = model_rows[int(rng.integers(len(model_rows)))]
        scheme = scheme_rows[int(rng.integers(len(scheme_rows)))]
        quality.append(
            QualityRecord(
                model=model.name, scheme=scheme.name, eval_set="synthetic",
                perplexity_delta_pct=float(rng.exponential(8.0 / scheme.bits_per_weight)),
                kl_divergence=float(rng.exponential(0.08 / scheme.bits_per_weight)),
                basis=str(rng.choice(["measured", "published"])), source=SOURCE,
            )
        )  # fmt: skip
    profile_rows = []
    for _ in range(profiles):
        model = model_rows[int(rng.integers(len(model_rows)))]
        scheme = scheme_rows[int(rng.integers(len(scheme_rows)))]
        machine = inst[int(rng.integers(len(inst)))]
        device = next(h for h in hw if h.name == machine.hardware)
        count = machine.accelerator_count if device.kind == "gpu" else machine.vcpus
        profile_rows.append(
            ProfileRecord(
                model=model.name, scheme=scheme.name, engine=scheme.engines,
                hardware=machine.hardware, hardware_count=count, input_tokens=512,
                output_tokens=256, concurrency=int(rng.choice([1, 4, 16])),
                output_tokens_per_s=float(rng.uniform(5, 500)), basis="measured", source=SOURCE,
            )
        )  # fmt: skip
    engine_traits, method_traits = shipped_traits()
    return CatalogSnapshot(
        hardware=tuple(hw),
        instances=tuple(inst),
        models=tuple(model_rows),
        schemes=tuple(scheme_rows),
        support=SUPPORT,
        engine_traits=engine_traits,
        method_traits=method_traits,
        profiles=tuple(profile_rows),
        quality=tuple(quality),
    )
