"""GGUF serving on an NVIDIA GPU: llama.cpp built with CUDA, benchmarked with the same protocol.

Runs on a GPU machine that cannot download anything, so everything arrives with the call:
llama-cpp-python's source trimmed to the CPU and CUDA backends, the Python wheels the server and
quantplan's client need. The weights cannot travel (the GGUF is 98 MB), so the model is
SmolLM2-135M's exact GGUF (metadata, tokenizer, tensor shapes) with randomly initialised weights:
speed does not depend on weight values, quality does, so no quality is measured here.

Steps: build llama.cpp (CUDA, sm_90) with CMake; write an F16 GGUF from the default model's
metadata, tokenizer and tensor shapes (bench/serving_gguf_skeleton.py) with random weights;
quantize Q8_0 and Q4_K_M (llama-cpp-python's binding); serve each file with every layer on the
GPU and run the closed-loop sweep. Results: $OUT/serving_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_llama_cpp(source: Path, jobs: int) -> float:
    started = time.perf_counter()
    build = source / "build-cuda"
    configure = [
        "cmake", "-S", str(source), "-B", str(build), "-G", "Ninja",
        "-DCMAKE_BUILD_TYPE=Release", "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90",
        "-DGGML_NATIVE=OFF", "-DLLAVA_BUILD=OFF", f"-DSKBUILD_PLATLIB_DIR={build / 'platlib'}",
    ]  # fmt: skip
    subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "-j", str(jobs)], check=True)
    subprocess.run(["cmake", "--install", str(build)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def quantize_gguf(f16: Path, target: Path, ftype_name: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name}")
    params.nthread = os.cpu_count() or 8
    code = llama_cpp.llama_model_quantize(str(f16).encode(), str(target).encode(), params)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize returned {code} for {ftype_name}")


def bench_file(gguf: Path, args: argparse.Namespace) -> dict[str, Any]:
    from quantplan.agent.benchmark.runner import BenchPlan, benchmark_artifact
    from quantplan.agent.benchmark.workload import Workload
    from quantplan.agent.serve import LlamaCppServer
    from quantplan.agent.serve.engine import ServeOptions

    plan = BenchPlan(
        workload=Workload(input_tokens=args.input_tokens, output_tokens=args.output_tokens),
        max_concurrency=args.max_concurrency,
        num_requests=args.requests,
    )
    options = ServeOptions(
        gpu_layers=-1, max_model_len=2048, startup_timeout_s=180, prefix_caching=False
    )
    bench = benchmark_artifact(
        LlamaCppServer(cuda=not args.cpu), gguf, plan, options=options, python=Path(sys.executable)
    )
    log_text = bench.server_log.read_text(errors="replace")
    offload = [line.strip() for line in log_text.splitlines() if "offloaded" in line]
    return {
        "file": gguf.name,
        "bytes": gguf.stat().st_size,
        "engine_version": bench.engine_version,
        "engine_build": bench.engine_build,
        "offload": offload[:2],
        "startup_s": bench.startup_s,
        "result": bench.result.model_dump(mode="json"),
    }


def markdown(report: dict[str, Any], device_note: str) -> str:
    """The readable summary of a GPU run's JSON."""
    lines = [
        "# GGUF serving on a GPU (llama.cpp with CUDA)",
        "",
        f"GPU: {report['gpu']} ({device_note}). llama.cpp built there for sm_90 in "
        f"{report.get('build_s', 0):.0f} s. Model: SmolLM2-135M-Instruct's GGUF metadata, "
        "tokenizer and tensor shapes with random weights (the real weights cannot be carried to "
        "that machine; speed does not depend on weight values, so no quality is reported). "
        "All layers offloaded. Same protocol as on CPU: streaming /v1/completions, prompts from "
        "the evaluation text (about 108 tokens), 64 output tokens with EOS suppressed, closed-loop "
        "sweep 1, 2, 4, ... stopping when output throughput grows less than 5 %.",
        "",
        "llama-cpp-python's server runs one request at a time (concurrent requests queue), so "
        "throughput stays flat (within a few %) as concurrency grows while TTFT grows with the "
        "queue; the 'best' level is only the highest throughput measured. "
        "At about 2.4 ms per token the Python server, not the GPU, is the limit: "
        "reading the F16 weights once takes about 56 us at 4.8 TB/s.",
        "",
        "| file | size MB | conc. | out tok/s | total tok/s | TTFT p50 / p95 ms | "
        "ITL p50 / p95 ms | server RSS GB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in report["runs"]:
        if "result" not in run:
            lines.append(f"| {run['file']} | failed: {run.get('error')} | | | | | | |")
            continue
        best = run["result"]["best"]
        for level in run["result"]["levels"]:
            m = level["metrics"]
            marker = " (best)" if best and level["concurrency"] == best["concurrency"] else ""
            lines.append(
                f"| {run['file']} | {run['bytes'] / 1e6:.0f} | {level['concurrency']}{marker} | "
                f"{m['output_tokens_per_s']:.1f} | {m['total_tokens_per_s']:.1f} | "
                f"{m['ttft']['p50_ms']:.1f} / {m['ttft']['p95_ms']:.1f} | "
                f"{m['itl']['p50_ms']:.2f} / {m['itl']['p95_ms']:.2f} | "
                f"{level['peak_server_memory_gb']:.2f} |"
            )
    build = report["runs"][0].get("engine_build") if report["runs"] else None
    lines += [
        "",
        f"llama-cpp-python {report['runs'][0].get('engine_version')}; build: `{build}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, help="llama-cpp-python source")
    parser.add_argument("--skeleton", type=Path, help="metadata + tensor shapes of the model")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-work"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/out")))
    parser.add_argument("--types", default="F16,Q8_0,Q4_K_M")
    parser.add_argument("--cpu", action="store_true", help="dry run of the flow on a CPU build")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--markdown-from", type=Path, help="only write the .md of a result JSON")
    parser.add_argument("--device-note", default="")
    args = parser.parse_args()
    if args.markdown_from:
        report = json.loads(args.markdown_from.read_text())
        print(markdown(report, args.device_note))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"host": platform.node(), "python": sys.version.split()[0]}
    from quantplan.agent.serve.host import detect_host

    gpu = detect_host().describe()
    report["gpu"] = gpu
    log(f"GPU: {gpu}")

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serving_gpu.json").write_text(json.dumps(report, indent=2))

    if not args.cpu and not (args.source / "llama_cpp" / "lib" / "libllama.so").exists():
        log("building llama.cpp with CUDA (sm_90)")
        report["build_s"] = build_llama_cpp(args.source, os.cpu_count() or 16)
        log(f"built in {report['build_s']:.0f} s")
        save()
    f16 = args.work / "smollm2-random-F16.gguf"
    if not f16.exists():
        sys.path.insert(0, str(Path(__file__).parent))
        from serving_gguf_skeleton import build_random_gguf

        started = time.perf_counter()
        report["parameters"] = build_random_gguf(args.skeleton, f16)
        report["build_gguf_s"] = time.perf_counter() - started
        log(f"random-weight F16 GGUF: {report['parameters']} parameters")
    import importlib.util

    server_spec = importlib.util.find_spec("llama_cpp.server")
    log(f"llama_cpp.server at {server_spec.origin if server_spec else None}")
    report["runs"] = []
    for type_name in [t.strip() for t in args.types.split(",")]:
        gguf = f16 if type_name == "F16" else args.work / f"smollm2-random-{type_name}.gguf"
        try:
            if not gguf.exists():
                quantize_gguf(f16, gguf, type_name)
            log(f"benchmarking {gguf.name}")
            run = bench_file(gguf, args)
            best = run["result"]["best"]
            if best:
                m = best["metrics"]
                log(
                    f"  best c={best['concurrency']}: {m['output_tokens_per_s']:.1f} out tok/s, "
                    f"TTFT p50 {m['ttft']['p50_ms']:.1f} ms, ITL p50 {m['itl']['p50_ms']:.2f} ms"
                )
            report["runs"].append(run)
        except Exception as error:  # one type failing must not lose the others' numbers
            report["runs"].append({"file": gguf.name, "error": f"{type(error).__name__}: {error}"})
            log(f"  failed: {error}")
        save()
    save()


if __name__ == "__main__":
    main()
