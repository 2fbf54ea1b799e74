"""Report of bench/llamacpp_types_gpu.sh: one-sequence speed of every common GGUF type on one GPU.

    python bench/llamacpp_types_gpu.py --device BUILD_DIR BENCH_DIR --date 2026-12-05 \
        --commit abc1234

The device dirs hold what the two calls returned (machine.txt, version.txt, models.txt and
types.jsonl from llama-bench). Writes bench/results/llamacpp_types_gpu.{json,md} and the seed
rows catalog/seed/profiles_llamacpp_types_gpu.yaml: tg128 with flash attention on (llama.cpp's
default on CUDA since ``-fa auto``), the setting plans deploy; the runs without it are reported
here only.

Per type it reports the decode step (1 / tok/s), the file's bytes over that step (the effective
weight read rate) and its share of the card's spec bandwidth: the quantity the planner
calibrates per engine x scheme x GPU model.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from llamacpp_server_gpu import SHAPES  # the random files' shapes (bench/ is this script's dir)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = HERE.parent / "catalog" / "seed" / "profiles_llamacpp_types_gpu.yaml"
SOURCE = "quantplan bench/results/llamacpp_types_gpu.json"
# The card's name as nvidia-smi prints it -> the catalog's hardware row and its spec bandwidth
# (GB/s, the catalog's hardware.yaml).
HARDWARE = {"NVIDIA H100 80GB HBM3": ("H100-SXM", 3350.0), "NVIDIA H200": ("H200", 4800.0)}
MODELS = {"8b": "Llama-3.1-8B", "1b": "Llama-3.2-1B"}


def _scheme(file_type: str) -> str:
    return "gguf-" + file_type.lower()


def _runs(bench_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for line in (bench_dir / "types.jsonl").read_text().splitlines():
        raw = json.loads(line)
        shape, file_type = Path(raw["model_filename"]).stem.split("-", 1)
        runs.append(
            {
                "shape": shape,
                "model": MODELS[shape],
                "scheme": _scheme(file_type),
                "file_bytes": raw["model_size"],
                "test": "pp512" if raw["n_prompt"] else "tg128",
                "flash_attention": bool(raw["flash_attn"]),
                "tokens_per_s": round(raw["avg_ts"], 2),
                "stddev": round(raw["stddev_ts"], 2),
                "gpu": raw["gpu_info"],
            }
        )
    return runs


def _planned(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs in the setting plans deploy: one sequence decoding, flash attention on."""
    return [r for r in runs if r["test"] == "tg128" and r["flash_attention"]]


def _seed_rows(runs: list[dict[str, Any]], meta: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for run in _planned(runs):
        hardware, _ = HARDWARE[run["gpu"]]
        rows.append(
            {
                "model": run["model"],
                "scheme": run["scheme"],
                "engine": "llama.cpp",
                "hardware": hardware,
                "hardware_count": 1,
                "input_tokens": 1,
                "output_tokens": 128,
                "concurrency": 1,
                "output_tokens_per_s": run["tokens_per_s"],
                "basis": "measured",
                "source": SOURCE,
                "run_id": f"llamacpp-types-{meta['date']}",
                "engine_version": meta["engine_version"],
                "notes": (
                    f"llama-bench tg128 (± {run['stddev']}, 5 runs), flash attention on, all "
                    f"layers on the GPU; random weights of the model's shape with a 49,152-token "
                    f"vocabulary, {run['file_bytes'] / 2**30:.2f} GiB file (speed only)"
                ),
                "details": {
                    "url": "bench/results/llamacpp_types_gpu.json",
                    "where": f"runs[{run['shape']}-{run['scheme']}, tg128, fa on]",
                    "date": meta["date"],
                    "commit": meta["commit"],
                    "category": "batch1_decode",
                    "flash_attention": True,
                    "gpu": meta["gpu"],
                },
            }
        )
    return rows


def _markdown(result: dict[str, Any]) -> str:
    spec = result["spec_gbps"]
    lines = [
        "# llama.cpp on one GPU, every common GGUF type",
        "",
        f"Run {result['date']} (commit {result['commit']}) on {result['gpu']}, by "
        "`bench/llamacpp_types_gpu.sh` (llama-bench, 5 runs each, all layers on the GPU) and "
        f"`bench/llamacpp_types_gpu.py`. Engine: {result['engine_version']}. Random weights in "
        "the shapes of Llama-3.1-8B and Llama-3.2-1B with the default model's 49,152-token "
        "vocabulary: speed only (a decode step reads the same bytes whatever their values).",
        "",
        f"Step = 1 / tg128 tok/s; read rate = the file's bytes over the step (its fixed "
        f"per-step overhead included, so a lower bound on the kernels' rate); spec "
        f"{spec:.0f} GB/s.",
        "",
        "| model | type | file GiB | tg128 fa off | tg128 fa on | step ms (fa on) | read GB/s "
        "| of spec | fa saves ms/layer | pp512 fa on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["by_type"]:
        lines.append(
            f"| {row['model']} | {row['scheme']} | {row['file_bytes'] / 2**30:.2f} "
            f"| {row['tg128_fa_off']:.1f} | {row['tg128_fa_on']:.1f} | {row['step_ms']:.2f} "
            f"| {row['read_gbps']:.0f} | {row['read_gbps'] / spec:.0%} "
            f"| {row['flash_saving_ms_per_layer']:.4f} | {row['pp512_fa_on']:.0f} |"
        )
    lines += [
        "",
        f"Flash attention's saving, median of the {len(result['by_type'])} types: "
        f"{result['flash_saving_ms_per_layer_median']:.4f} ms a layer.",
        "",
        result["findings"],
        "",
    ]
    return "\n".join(lines)


FINDINGS = """## What it says

- **The smaller the file, the smaller the share of the step that reads it.** The 8B F16 file
  is read at about three quarters of spec (its fixed per-step overhead included), Q8_0 at a
  little over half, the K-quants of 2 to 6 bits at 21-41 %: their step does not shrink with
  their bytes. Q2_K's step is longer than Q4_K_M's for a file 37 % smaller, and Q6_K's and
  Q3_K_M's longer than Q5_K_M's: each type's kernel, not its size alone, sets its speed, which
  is why the planner calibrates llama.cpp per type and GPU model.
- **Flash attention is faster even with no context** on this card, by 9-26 % (the most for
  the smallest files, where the step is mostly fixed cost): one fused attention kernel per
  layer instead of several. The saving is about the same per layer whatever the type,
  0.013-0.018 ms: a fixed cost of the attention path, not of the weights. The planner
  charges it per layer to runs without flash attention (llama.cpp before September 2025),
  beside their slower KV read (bench/results/llamacpp_depth.md).
- **The fixed part of a step is about 0.6 ms here.** A line through the 1B and 8B steps of one
  type against the file's bytes meets zero bytes at 0.56 ms (F16), 0.64 ms (Q8_0) and 0.59 ms
  (Q4_K_M). The planner's GPU step overhead was 2 ms plus 0.02 ms a layer (2.3 ms for the
  1B's 16 layers), more than the 1B's whole step: held out, the 1B rows came out 50 % slow.
  A 0.6 ms overhead for every llama.cpp run made the 2024 rows of consumer GPUs come out
  17-30 % slow: the builds of 2024 did pay about 2 ms (PR #6766's tg128 rows meet zero bytes
  at 1.4-2.4 ms). So llama.cpp runs since graph reuse (August 2025), and plans, now pay
  0.6 ms with no per-layer part, and earlier runs keep 2 ms + 0.02 ms a layer
  (planner/estimate.py `step_overhead`; bench/results/prediction_accuracy.md).
- The seed rows (flash attention on) are the project's first llama.cpp evidence on H100 SXM,
  where plans leaned on its H200 runs and the Hopper generation's pooled efficiency.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", type=Path, nargs=2, required=True, metavar=("BUILD", "BENCH"))
    parser.add_argument("--date", required=True)
    parser.add_argument("--commit", required=True)
    args = parser.parse_args()
    build_dir, bench_dir = args.device
    runs = _runs(bench_dir)
    gpu = runs[0]["gpu"]
    _, spec = HARDWARE[gpu]
    machine = (build_dir / "machine.txt").read_text()
    smi = machine.splitlines()[1]
    # "version: 0.5.0-dev (build N, commit C)": llama.cpp's CMake reads the build number and
    # commit of the enclosing git checkout (this project's), so only the version is kept.
    version = (build_dir / "version.txt").read_text().split()[1]
    meta = {
        "date": args.date,
        "commit": args.commit,
        "gpu": smi,
        "engine_version": f"llama.cpp {version} of llama-cpp-python 0.3.36's sdist, CUDA sm_90",
    }
    speed = {
        (r["shape"], r["scheme"], r["test"], r["flash_attention"]): r["tokens_per_s"] for r in runs
    }
    by_type = []
    for run in _planned(runs):
        shape, scheme = run["shape"], run["scheme"]
        step = 1 / run["tokens_per_s"]
        step_without_flash = 1 / speed[(shape, scheme, "tg128", False)]
        by_type.append(
            {
                "model": run["model"],
                "scheme": scheme,
                "file_bytes": run["file_bytes"],
                "tg128_fa_off": speed[(shape, scheme, "tg128", False)],
                "tg128_fa_on": run["tokens_per_s"],
                "pp512_fa_on": speed[(shape, scheme, "pp512", True)],
                "step_ms": step * 1000,
                "read_gbps": run["file_bytes"] / step / 1e9,
                # What flash attention saves a step per layer with almost no context.
                "flash_saving_ms_per_layer": (step_without_flash - step)
                * 1000
                / int(SHAPES[shape]["layers"]),
            }
        )
    by_type.sort(key=lambda r: (r["model"], -r["file_bytes"]))
    flash_saving = statistics.median(r["flash_saving_ms_per_layer"] for r in by_type)
    result = {
        "date": args.date,
        "commit": args.commit,
        "gpu": smi,
        "spec_gbps": spec,
        "engine_version": meta["engine_version"],
        "machine": machine,
        "runs": runs,
        "by_type": by_type,
        "flash_saving_ms_per_layer_median": flash_saving,
        "findings": FINDINGS.strip(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "llamacpp_types_gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "llamacpp_types_gpu.md").write_text(_markdown(result))
    rows = _seed_rows(runs, meta)
    header = (
        "# llama.cpp on one H100 SXM, one sequence, every common GGUF type, measured by\n"
        "# bench/llamacpp_types_gpu.py (llama-bench tg128, flash attention on, random weights of\n"
        "# Llama 1B/8B shape: speed only). Written by that script; do not edit.\n"
        "kind: profiles\nrows:\n"
    )
    SEED.write_text(header + "".join(f"- {json.dumps(r)}\n" for r in rows))
    print(f"{len(rows)} seed rows, {len(by_type)} types")


if __name__ == "__main__":
    main()
