"""The node agent's GPU steps on a real GPU host, run directly: detection, GPTQ and AWQ with the
CUDA llm-compressor toolchain, llama.cpp's CUDA ``llama-server``, the one benchmark protocol, and
the measured profile in the catalog's import format.

Ray cannot reach the GPU machine (its wheel is 79 MB and a call carries at most 64 MiB), so no
node agent actor runs there. Each step calls what the agent's job calls
(``agent/cluster/node_agent.py``): ``quantize()`` inside ``using_gpus`` (the quantize job),
``gpu_engine`` + ``start_server`` on the GPU assignment (the serve job), ``run_plan`` +
``profile_report`` with ``gpu_profile_placement`` (the benchmark job); the report is recorded
with ``record_report`` into a catalog and exported with ``quantplan catalog export``.

The machine cannot download anything, so everything comes with the calls:

* ``prepare`` (here) fills ``.devcarry/``: Python 3.12 wheels for quantplan's core and for the
  llm-compressor toolchain (the machine's image has CUDA PyTorch and transformers; the pinned
  CUDA lock cannot be installed there, so the toolchain is an *adopted* environment:
  ``quantplan toolchain adopt``), the default model's config and tokenizer (the weights cannot
  travel: the model quantized there has the default model's exact shape and tokenizer with random
  weights, so its speed is real and its quality meaningless: none is reported), the default
  GGUF's metadata (bench/serving_gguf_skeleton.py), and the pinned llama-cpp-python sdist (77
  MB) in two halves, one per call;
* ``quantize`` (there, first call): detection, the adopted toolchain, GPTQ and AWQ;
* ``serve`` (there, second call, back to back so the first call's files are still there):
  the llama-server CUDA build from the rejoined sdist (sha256-checked by the build), a GGUF of
  the default model's shape with random weights, the server on the GPU, the benchmark, the
  profile;
* ``report`` (here): bench/results/gpu_node_steps.{json,md} and the profile file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".devcarry"
WORK = Path(os.environ.get("QP_WORK", "/tmp/qpw"))
# The first call's carried files, copied out of the checkout: the second call carries only
# the sdist's other half, and the machine keeps /tmp while it stays warm between the calls.
CARRIED = WORK / "carry-a"
CORE_WHEELS = [
    "alembic==1.20.1",
    "annotated-types==0.8.0",
    "click==8.5.1",
    "gguf==0.19.0",
    "mako==1.4.3",
    "platformdirs==4.14.9",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "rich==15.0.0",
    "shellingham==1.5.4",
    "sqlalchemy==2.1.9",
    "sqlmodel==0.0.50",
    "typer==0.29.2",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
]
# The llm-compressor toolchain's pins (agent/toolchains/requirements/llmcompressor-cuda.txt)
# that the machine's image lacks; torch, transformers, accelerate and the rest are the image's.
TOOLCHAIN_WHEELS = [
    "llmcompressor==0.14.0.1",
    "compressed-tensors==0.19.0",
    "auto-round==0.15.1",
    "loguru==0.7.3",
    "datasets==5.2.0",
    "dill==0.4.1",
    "multiprocess==0.70.19",
    "gguf==0.19.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "typing-extensions==4.16.0",
]
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
CONCURRENCY = tuple(int(c) for c in os.environ.get("QP_LEVELS", "1,2,4,8,16,32,64").split(","))
# QP_REHEARSAL=1: the serve call's steps on a CPU host (CPU llama-server), to check the script
# before spending GPU time; nothing it measures is a GPU figure.
REHEARSAL = bool(os.environ.get("QP_REHEARSAL"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def out_dir() -> Path:
    path = Path(os.environ.get("OUT", "/tmp/out"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def portable(text: str) -> str:
    """``text`` with the device's interpreter and work folder named by what they are, so the
    results committed from it name no machine's folders."""
    return text.replace(sys.executable, "python").replace(str(WORK), "$QP_WORK")


def save(name: str, payload: Any) -> None:
    (out_dir() / name).write_text(portable(json.dumps(payload, indent=2, default=str)))


# -- here ------------------------------------------------------------------------------------


def _download(requirements: list[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    platforms = []
    for tag in ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014"):
        platforms += ["--platform", f"{tag}_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", "3.12", "--implementation", "cp", *platforms]
    subprocess.run([*command, "-d", str(target), *requirements], check=True)


def prepare() -> None:
    """Fill .devcarry/ (git-ignored) with what the two device calls need."""
    from quantplan.agent.model_source import default_gguf, resolve_model
    from quantplan.agent.toolchains.llama_server import SDIST_NAME, SDIST_SHA256, _sdist

    shutil.rmtree(CARRY, ignore_errors=True)
    _download(CORE_WHEELS, CARRY / "a" / "whl-core")
    _download(TOOLCHAIN_WHEELS, CARRY / "a" / "whl-toolchain")
    source = resolve_model("default")
    model = CARRY / "a" / "model"
    model.mkdir(parents=True)
    for name in MODEL_FILES:
        if (source.path / name).is_file():
            shutil.copy2(source.path / name, model / name)
    skeleton = CARRY / "a" / "gguf-skeleton.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serving_gguf_skeleton.py"), "export",
         str(default_gguf()), str(skeleton)],
        check=True,
    )  # fmt: skip
    log_path = CARRY / "sdist.log"
    sdist = _sdist(log_path, lambda line: None)
    assert sdist.name == SDIST_NAME
    data = sdist.read_bytes()
    half = len(data) // 2
    (CARRY / "a" / "sdist.part1").write_bytes(data[:half])
    (CARRY / "b").mkdir(parents=True)
    (CARRY / "b" / "sdist.part2").write_bytes(data[half:])
    (CARRY / "sdist.sha256").write_text(SDIST_SHA256)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "llamacpp_server_gpu.py"), "tokenizer",
         "--source", str(default_gguf()), "--out", str(CARRY / "b" / "tokenizer.gguf")],
        check=True,
    )  # fmt: skip
    for part in ("a", "b"):
        size = sum(f.stat().st_size for f in (CARRY / part).rglob("*") if f.is_file())
        log(f".devcarry/{part}: {size / 2**20:.1f} MiB")


# -- there: shared ---------------------------------------------------------------------------


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    log("$ " + " ".join(command))
    # Not from the checkout: its quantplan/ folder would shadow the package view.
    return subprocess.run(command, check=True, text=True, cwd=WORK, **kwargs)


def detection() -> dict[str, Any]:
    from quantplan.agent.toolchains.gpu import detect_accelerators, ray_resources

    inventory = detect_accelerators()
    smi = (
        subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
        if shutil.which("nvidia-smi")
        else ""
    )
    return {
        "inventory": inventory.model_dump(mode="json"),
        "describe": inventory.describe(),
        "ray_resources": ray_resources(inventory),
        "nvidia_smi_header": "\n".join(smi.splitlines()[:4]),
    }


# -- there: first call -----------------------------------------------------------------------


def random_model(target: Path) -> dict[str, Any]:
    """The default model's config and tokenizer with random weights (safetensors, bf16)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(CARRIED / "model")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(target, safe_serialization=True)
    for name in MODEL_FILES:
        if (CARRIED / "model" / name).is_file() and not (target / name).exists():
            shutil.copy2(CARRIED / "model" / name, target / name)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "architecture": config.architectures,
        "weights": "random N(0, initializer_range), seed 0",
    }


def adopted_toolchain() -> dict[str, Any]:
    """A venv over the image's CUDA PyTorch stack plus the carried toolchain wheels, adopted as
    llmcompressor-cuda through the CLI."""
    import sysconfig

    venv = WORK / "llmcompressor-env"
    python = venv / "bin" / "python"
    if not python.exists():
        # The image's python is itself a venv, whose packages --system-site-packages would not
        # see: a .pth file appends them after the venv's own (the carried wheels win).
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        own = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  capture_output=True).stdout.strip()  # fmt: skip
        Path(own, "image-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        wheels = sorted(str(p) for p in (CARRIED / "whl-toolchain").glob("*.whl"))
        run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--no-compile", "--target", own, *wheels])  # fmt: skip
    log("quantplan toolchain adopt llmcompressor-cuda --python " + str(python))
    adopt = subprocess.run(
        [sys.executable, "-m", "quantplan", "toolchain", "adopt", "llmcompressor-cuda",
         "--python", str(python)],
        capture_output=True, text=True, env={**os.environ, "QUANTPLAN_DEBUG": "1"}, cwd=WORK,
    )  # fmt: skip
    print(adopt.stderr[-3000:], flush=True)
    if adopt.returncode != 0:  # the same function in-process, so the quantize steps can run
        from quantplan.agent.toolchains.adopt import adopt_toolchain

        adopt_toolchain("llmcompressor-cuda", python)
    doctor = subprocess.run(
        [sys.executable, "-m", "quantplan", "toolchain", "doctor", "llmcompressor-cuda"],
        capture_output=True,
        text=True,
    )
    return {
        "adopt_exit": adopt.returncode,
        "adopt": adopt.stderr.strip()[-3000:],
        "doctor": doctor.stdout.strip()[-3000:],
    }


def quantize_on_gpu(model_dir: Path, method: str) -> dict[str, Any]:
    """What the node agent's quantize job does on a GPU lease: quantize() inside using_gpus."""
    from quantplan.agent.artifacts import ArtifactStore
    from quantplan.agent.quantize.api import quantize
    from quantplan.agent.toolchains.gpu_scope import using_gpus

    store = ArtifactStore(str(WORK / "store"))
    stages: list[str] = []
    started = time.perf_counter()
    with using_gpus(("0",)):
        manifest = quantize(
            str(model_dir),
            method,
            {"scheme": "W4A16"},
            store=store,
            on_progress=lambda step: stages.append(step.message),
            force=True,
        )
    seconds = time.perf_counter() - started
    return {
        "method": method,
        "seconds_wall": round(seconds, 1),
        "quantize_seconds": manifest.quantize_seconds,
        "peak_memory_mb": manifest.peak_memory_mb,
        "artifact_id": manifest.artifact_id,
        "scheme": manifest.scheme,
        "bits_per_weight": manifest.bits_per_weight,
        "toolchain": manifest.toolchain,
        "toolchain_key": manifest.toolchain_key,
        "tool_versions": manifest.tool_versions,
        "calibration": manifest.calibration,
        "files": [f.path for f in manifest.files],
        "stages": stages[-8:],
    }


def first_call() -> None:
    run_steps(
        "quantize.json",
        [
            ("detection", detection),
            ("model", lambda: random_model(WORK / "model")),
            ("toolchain", adopted_toolchain),
            ("gptq", lambda: quantize_on_gpu(WORK / "model", "gptq")),
            ("awq", lambda: quantize_on_gpu(WORK / "model", "awq")),
        ],
    )


# -- there: second call ----------------------------------------------------------------------


def place_sdist() -> None:
    from quantplan.paths import cache_dir

    target = cache_dir() / "sdists"
    target.mkdir(parents=True, exist_ok=True)
    data = (CARRIED / "sdist.part1").read_bytes() + (CARRY / "b" / "sdist.part2").read_bytes()
    (target / "llama_cpp_python-0.3.36.tar.gz").write_bytes(data)


def build_server() -> dict[str, Any]:
    """The CUDA llama-server through quantplan's own build (the sdist's sha256 is checked)."""
    from quantplan.agent.toolchains.llama_server import (
        detect_cuda_architecture,
        ensure_llama_server,
    )

    place_sdist()
    architecture = detect_cuda_architecture()
    build = ensure_llama_server(architecture, progress=lambda line: None)
    return build.model_dump(mode="json")


def random_gguf(target: Path) -> dict[str, Any]:
    run([sys.executable, str(ROOT / "bench" / "serving_gguf_skeleton.py"), "build",
         str(CARRIED / "gguf-skeleton.json"), str(target)])  # fmt: skip
    return {"file": target.name, "bytes": target.stat().st_size}


def serve_and_bench(gguf: Path, model: str, weights: str, name: str) -> dict[str, Any]:
    """The serve job and the benchmark job of a 1-GPU llama.cpp replica serving ``gguf`` (F16),
    recorded as ``model``'s profile; the report goes to $OUT/report-<name>.json."""
    from quantplan.agent.benchmark.recording import host_hardware_record, profile_report
    from quantplan.agent.benchmark.runner import BenchPlan, run_plan
    from quantplan.agent.benchmark.workload import Workload
    from quantplan.agent.cluster.gpu_engines import GpuAssignment, gpu_engine, gpu_host_hardware
    from quantplan.agent.cluster.gpu_provenance import gpu_profile_placement
    from quantplan.agent.serve.engine import ServeOptions
    from quantplan.agent.serve.host import detect_host, measure_memory_bandwidth_gbps
    from quantplan.agent.serve.manager import start_server
    from quantplan.agent.toolchains.gpu import detect_accelerators

    inventory = detect_accelerators()
    assignment = GpuAssignment(
        visible_devices=("0",), accelerator_type=inventory.accelerator_type, memory_fraction=0.9
    )
    engine: Any = gpu_engine("llama.cpp", assignment)
    host = detect_host()
    hardware = gpu_host_hardware(host, inventory)
    if REHEARSAL:  # the same path on a CPU host: the CPU server, one logical GPU for the record
        from quantplan.agent.serve import LlamaServer
        from quantplan.agent.toolchains.gpu import fake_inventory

        inventory, engine, hardware = fake_inventory("H200", 1), LlamaServer(), host
    engine.binary(install=False)  # built by the step before, as `toolchain install` does
    options = ServeOptions(
        # max_model_len is each slot's context (llama-server's --ctx-size is slots x that)
        parallel_slots=max(CONCURRENCY),
        max_model_len=256,
        threads=4,
    )
    started = datetime.now(UTC)
    handle = start_server(
        engine,
        gguf,
        options,
        python=Path(sys.executable),
        hardware=hardware,
        logs=WORK / "logs",
    )
    try:
        command = [str(part) for part in handle.process.args]  # type: ignore[union-attr]
        provenance = engine.provenance(Path(sys.executable))
        plan = BenchPlan(
            workload=Workload(input_tokens=128, output_tokens=64),
            mode="closed",
            concurrencies=list(CONCURRENCY),
            num_requests=None,
            warmup_requests=2,
        )
        sweep = asyncio.run(run_plan(handle.endpoint, plan))
    finally:
        handle.stop()
    placement = gpu_profile_placement(
        inventory,
        1,
        visible_devices=assignment.visible_devices,
        engine_toolchain="llama-server",
        engine_versions={"llama-server": str(provenance.get("engine_version"))},
    )
    bandwidth = measure_memory_bandwidth_gbps(size_mb=128, repeats=3)
    report = profile_report(
        run_id=f"gpu-node-steps-{name}-{started:%Y%m%dT%H%M%S}",
        started_at=started,
        model=model,
        scheme="gguf-f16",
        engine="llama.cpp",
        hardware=host,
        hardware_record=host_hardware_record(host, bandwidth),
        sweep=sweep,
        tool_versions={"quantplan": "checkout"},
        engine_version=f"llama-server {provenance.get('engine_version')}"[:200],
        extra_details={
            "weights": weights,
            "run_note": "the node agent's serve and benchmark steps run directly (no Ray)",
            **placement.details,
        },
        gpu_hardware=placement.hardware,
        gpu_count=placement.hardware_count,
        run_hardware=placement.description,
    )
    levels = [
        {
            "concurrency": level.concurrency,
            "output_tokens_per_s": round(level.metrics.output_tokens_per_s, 1),
            "total_tokens_per_s": round(level.metrics.total_tokens_per_s, 1),
            "ttft_p50_ms": round(level.metrics.ttft.p50_ms, 1),
            "ttft_p95_ms": round(level.metrics.ttft.p95_ms, 1),
            "itl_p50_ms": round(level.metrics.itl.p50_ms, 2),
            "itl_p95_ms": round(level.metrics.itl.p95_ms, 2),
            "completed": level.metrics.completed,
            "failed": level.metrics.failed,
        }
        for level in sweep.levels
    ]
    (out_dir() / f"report-{name}.json").write_text(report.model_dump_json(indent=2))
    return {
        "command": command,
        "startup_s": handle.startup_s,
        "provenance": provenance,
        "placement": placement.details,
        "levels": levels,
        "stop_reason": sweep.stop_reason,
    }


def record_and_export(name: str) -> dict[str, Any]:
    """The report recorded into a catalog, then exported in the import format."""
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.reports import MeasurementReport, record_report

    database = f"sqlite:///{WORK / f'catalog-{name}.db'}"
    report = MeasurementReport.model_validate_json((out_dir() / f"report-{name}.json").read_text())
    outcome = record_report(open_catalog(database), report)
    exported = out_dir() / f"profiles-{name}.yaml"
    run([sys.executable, "-m", "quantplan", "catalog", "export", "--kind", "profiles",
         "--db", database, "--output", str(exported)])  # fmt: skip
    return {"recorded": str(outcome)[:500], "export": exported.name}


def run_steps(result_name: str, steps: list[tuple[str, Any]]) -> None:
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "host": platform.node()}
    for name, step in steps:
        log(f"step {name}")
        try:
            result[name] = step()
        except Exception as error:  # recorded, so the other steps' results still come back
            result[name] = {"error": f"{type(error).__name__}: {error}"[:3000]}
            traceback.print_exc()
        save(result_name, result)


def second_call() -> None:
    gguf = WORK / "smollm2-random-F16.gguf"
    weights = "random, in the default model's GGUF shapes and tokenizer (speed only)"
    model = "SmolLM2-135M-Instruct"
    run_steps(
        "serve.json",
        [
            ("detection", detection),
            ("gguf", lambda: random_gguf(gguf)),
            ("llama_server_build", build_server),
            ("serve_bench", lambda: serve_and_bench(gguf, model, weights, "smollm2")),
            ("catalog", lambda: record_and_export("smollm2")),
            ("gptq", lambda: quantize_on_gpu(WORK / "model", "gptq")),
        ],
    )


def third_call() -> None:
    """Llama-3.1-8B's shape (F16, random weights) through the same serve and benchmark steps."""
    sys.path.insert(0, str(ROOT / "bench"))
    from llamacpp_server_gpu import random_model as llama_shape

    gguf = WORK / "llama8b-random-F16.gguf"
    weights = (
        "random N(0, 0.02) in Llama-3.1-8B's layer shapes with the default model's 49,152-token "
        "tokenizer (about 4 % fewer weights than the real model; speed only)"
    )

    def write() -> dict[str, Any]:
        llama_shape("8b", WORK / "tokenizer.gguf", gguf)
        return {"file": gguf.name, "bytes": gguf.stat().st_size}

    run_steps(
        "serve8b.json",
        [
            ("gguf", write),
            ("serve_bench", lambda: serve_and_bench(gguf, "Llama-3.1-8B", weights, "llama8b")),
            ("catalog", lambda: record_and_export("llama8b")),
        ],
    )


# -- here, after the calls -------------------------------------------------------------------


def report(device: list[Path]) -> None:
    """bench/results/gpu_node_steps.{json,md} and the new profile rows in the import format."""
    import yaml

    results: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for folder in device:
        for name in ("quantize.json", "serve.json", "serve8b.json"):
            if (folder / name).is_file():
                results[name.removesuffix(".json")] = json.loads((folder / name).read_text())
        for exported in sorted(folder.glob("profiles-*.yaml")):
            for row in (yaml.safe_load(exported.read_text()) or {}).get("rows", []):
                if str(row.get("run_id") or "").startswith("gpu-node-steps-"):
                    rows.append(row)
    target = ROOT / "bench" / "results"
    # The machine's own folders say nothing to a reader: named by role, not by path.
    text = json.dumps(results, indent=2, default=str)
    for path, role in ((str(ROOT), "<checkout>"), (str(WORK), "<work>")):
        text = text.replace(path, role)
    (target / "gpu_node_steps.json").write_text(text)
    header = (
        "# The node agent's GPU steps on one H200, run directly\n"
        "# (bench/gpu_node_steps.py; random weights in real shapes: speed only)\n"
    )
    (target / "gpu_node_steps-profiles.yaml").write_text(
        header + yaml.safe_dump({"kind": "profiles", "rows": rows}, sort_keys=False, width=100)
    )
    log(f"{len(rows)} profile rows; results in {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("prepare", "quantize", "serve", "serve8b", "report"))
    parser.add_argument("--device", type=Path, nargs="*", default=[], help="report: $OUT copies")
    args = parser.parse_args()
    if args.step == "report":
        report(args.device)
        return
    steps = {"prepare": prepare, "quantize": first_call, "serve": second_call}
    steps["serve8b"] = third_call
    steps[args.step]()


if __name__ == "__main__":
    main()
