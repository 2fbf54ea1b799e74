"""Report of bench/llamacpp_cold_start.sh: llama-batched-bench's first level, cold and warm.

    python bench/llamacpp_cold_start.py --device DIR --served DIR --date 2026-12-05 \
        --commit abc1234

The device dir holds what the bench call returned (machine.txt, version.txt and batched.jsonl:
each file's levels 1, 1, 2, 4, ... 64 sequences in one process); the served dir what the
served call returned (http.jsonl: llama-server over HTTP, 8B Q8_0 and Q4_K_M, 1-64 requests
in flight). Writes bench/results/llamacpp_cold_start.{json,md} and the seed rows
catalog/seed/profiles_llamacpp_batched_h100.yaml: every engine-loop level that paid no start-up
cost (the repeated first level, and each later level whose prompts did not take longer to
prefill than the next level's), and every served level, on one H100 SXM.
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = HERE.parent / "catalog" / "seed" / "profiles_llamacpp_batched_h100.yaml"
SOURCE = "quantplan bench/results/llamacpp_cold_start.json"
HARDWARE = {"NVIDIA H100 80GB HBM3": "H100-SXM", "NVIDIA H200": "H200"}
MODELS = {"8b": "Llama-3.1-8B", "1b": "Llama-3.2-1B"}
H200_FIRST_LEVELS = "bench/results/llamacpp_server_gpu.json"
START_UP_RUN = "-start-up"
"""Appended to the run id of a level that paid a start-up cost, in runs seeded before the
warm-up (planner/estimate.py COLD_START)."""


def device_meta(device: Path, date: str, commit: str) -> dict[str, str]:
    """The run's date and commit, the card (nvidia-smi's row in machine.txt, and the catalog's
    name for it) and the engine's version, from a build call's machine.txt and version.txt."""
    smi = (device / "machine.txt").read_text().splitlines()[1]
    # "version: 0.5.0-dev (build N, commit C)": llama.cpp's CMake reads the build number and
    # commit of the enclosing git checkout (this project's), so only the version is kept.
    version = (device / "version.txt").read_text().split()[1]
    return {
        "date": date,
        "commit": commit,
        "gpu": smi,
        "hardware": HARDWARE[smi.split(",")[0].strip()],
        "engine_version": f"llama.cpp {version} of llama-cpp-python 0.3.36's sdist, CUDA sm_90",
    }


def _levels(device: Path) -> dict[str, list[dict[str, Any]]]:
    """Each file's levels in the order they ran, the first one marked ``cold``."""
    files: dict[str, list[dict[str, Any]]] = {}
    for line in (device / "batched.jsonl").read_text().splitlines():
        raw = json.loads(line)
        levels = files.setdefault(raw["model"], [])
        levels.append(
            {
                "sequences": raw["pl"],
                "prefill_ms": round(raw["t_pp"] * 1000, 1),
                "decode_only_tokens_per_s": round(raw["speed_tg"], 1),
                # The closed-loop cycle: the sequences prefill, then decode together.
                "output_tokens_per_s": round(raw["pl"] * raw["tg"] / raw["t"], 1),
                "prompt_tokens": raw["pp"],
                "output_tokens": raw["tg"],
                "run": "cold" if not levels else "warm",
            }
        )
    return files


def start_up_notes(prefill_ms: dict[int, float], *, warmed: bool) -> dict[int, str]:
    """The levels of one file's llama-batched-bench run (sequences -> prefill milliseconds, in
    the order they ran) that paid a start-up cost, each with the reason: the first level of a
    run without a warm-up (``warmed`` false), and a later level whose prompts took longer to
    prefill than the next level's, which prefilled more of the same prompts (a new batch shape
    loads its kernels on first use)."""
    levels = list(prefill_ms)
    notes = {
        a: (
            f"its prompts took longer to prefill than the next level's {b} sequences' "
            f"({prefill_ms[a]:.1f} ms against {prefill_ms[b]:.1f} ms): a new batch shape's "
            "one-time start-up cost"
        )
        for a, b in pairwise(levels)
        if prefill_ms[a] > prefill_ms[b]
    }
    if not warmed and levels:
        notes[levels[0]] = (
            "the first level of a run without a warm-up, which pays a one-time start-up cost "
            "in its prefill (16-187 ms on an H100 SXM: bench/results/llamacpp_cold_start.md)"
        )
    return notes


def _start_up_levels(warm: list[dict[str, Any]]) -> set[int]:
    """The warm levels (from the repeated first one on) that paid a start-up cost of their own."""
    return set(start_up_notes({w["sequences"]: w["prefill_ms"] for w in warm}, warmed=True))


def _seed_rows(files: dict[str, list[dict[str, Any]]], meta: dict[str, str]) -> list[dict]:
    rows = []
    for name, levels in files.items():
        shape, file_type = name.split("-", 1)
        warm = levels[1:]
        skipped = _start_up_levels(warm)
        for level in warm:
            if level["sequences"] in skipped:
                continue
            rows.append(
                {
                    "model": MODELS[shape],
                    "scheme": "gguf-" + file_type.lower(),
                    "engine": "llama.cpp",
                    "hardware": meta["hardware"],
                    "hardware_count": 1,
                    "input_tokens": level["prompt_tokens"],
                    "output_tokens": level["output_tokens"],
                    "concurrency": level["sequences"],
                    "output_tokens_per_s": level["output_tokens_per_s"],
                    "basis": "measured",
                    "source": SOURCE,
                    "run_id": f"llamacpp-batched-{meta['date']}",
                    "engine_version": meta["engine_version"],
                    "notes": (
                        "llama-batched-bench (the engine loop, no HTTP) after a first level "
                        "that loaded its kernels, all layers on the GPU; output tok/s = "
                        f"sequences x {level['output_tokens']} / (prefill + decode time); "
                        f"decode alone {level['decode_only_tokens_per_s']:,} tok/s; random "
                        "weights of the model's shape with a 49,152-token vocabulary (speed only)"
                    ),
                    "details": {
                        "url": "bench/results/llamacpp_cold_start.json",
                        "where": f"files[{name}].levels[warm, sequences={level['sequences']}]",
                        "date": meta["date"],
                        "commit": meta["commit"],
                        "category": "throughput_at_concurrency",
                        "gpu": meta["gpu"],
                    },
                }
            )
    return rows


def http_level_rows(
    levels: list[dict[str, Any]],
    meta: dict[str, str],
    *,
    source: str = SOURCE,
    url: str = "bench/results/llamacpp_cold_start.json",
    run: str = "",
) -> list[dict]:
    """llama-server's levels over HTTP as profile rows (the way plans serve); each level's
    ``model`` is "<shape>-<file type>", ``run`` tells one pass over the levels from another."""
    from llamacpp_served_gap import PROMPT_TOKENS

    rows = []
    for level in levels:
        shape, file_type = level["model"].split("-", 1)
        scheme = "gguf-" + file_type.lower()
        rows.append(
            {
                "model": MODELS[shape],
                "scheme": scheme,
                "engine": "llama.cpp",
                "hardware": meta["hardware"],
                "hardware_count": 1,
                "input_tokens": PROMPT_TOKENS,
                "output_tokens": 64,
                "concurrency": level["concurrency"],
                "output_tokens_per_s": level["output_tokens_per_s"],
                "ttft_p50_ms": level["ttft_p50_ms"],
                "ttft_p95_ms": level["ttft_p95_ms"],
                "basis": "measured",
                "source": source,
                "run_id": f"llamacpp-served-{meta['date']}-{scheme}{run}",
                "engine_version": meta["engine_version"],
                "notes": (
                    "llama-server -np 64 --cont-batching over HTTP, closed loop, streamed, "
                    f"standard-library client (bench/llamacpp_server_gpu_http.py), "
                    f"{level['requests']} requests at this level after a warm-up request; "
                    "random weights of the model's shape with a 49,152-token vocabulary "
                    "(speed only)"
                ),
                "details": {
                    "url": url,
                    "where": f"served[{level['model']}{run}, concurrency={level['concurrency']}]",
                    "date": meta["date"],
                    "commit": meta["commit"],
                    "category": "throughput_at_concurrency",
                    "served": True,
                    "gpu": meta["gpu"],
                },
            }
        )
    return rows


def _h200_first_levels() -> dict[str, dict[str, float]]:
    """The H200 run's first level and next level per file (same recipe, levels once)."""
    found: dict[str, dict[str, float]] = {}
    result = json.loads((HERE.parent / H200_FIRST_LEVELS).read_text())
    for point in result["full_offload"]:
        entry = found.setdefault(point["model"], {})
        entry.setdefault("first_prefill_ms", round(point["t_pp"] * 1000, 1))
        if point["pl"] == 2:
            entry["next_prefill_ms"] = round(point["t_pp"] * 1000, 1)
    return found


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# llama-batched-bench's first level: cold and warm",
        "",
        f"Run {result['date']} (commit {result['commit']}) on {result['gpu']}, by "
        "`bench/llamacpp_cold_start.sh` and `bench/llamacpp_cold_start.py`. Engine: "
        f"{result['engine_version']}. Random weights in the shapes of Llama-3.1-8B and "
        "Llama-3.2-1B with the default model's 49,152-token vocabulary: speed only. Each file: "
        "128 prompt + 64 generated tokens a sequence, all layers on the GPU, flash attention "
        "auto, levels 1, 1, 2, 4, ... 64 sequences in one process (the first level twice).",
        "",
        "## The first level, cold and again",
        "",
        "| file | prefill ms, cold | prefill ms, warm | start-up cost ms | output tok/s, cold "
        "| output tok/s, warm | cold / warm | H200 first level's prefill ms (next level's) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["first_level"]:
        h200 = row.get("h200")
        lines.append(
            f"| {row['file']} | {row['cold_prefill_ms']:.1f} | {row['warm_prefill_ms']:.1f} "
            f"| {row['start_up_ms']:.1f} | {row['cold_output_tokens_per_s']:,.1f} "
            f"| {row['warm_output_tokens_per_s']:,.1f} | {row['cold_over_warm']:.2f} | "
            + (f"{h200['first_prefill_ms']:.1f} ({h200['next_prefill_ms']:.1f})" if h200 else "")
            + " |"
        )
    lines += [
        "",
        "## Every level (warm runs)",
        "",
        "| file | sequences | prefill ms | output tok/s (cycle) | decode-only tok/s | seeded |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, levels in result["files"].items():
        skipped = set(result["start_up_levels"].get(name, []))
        for level in levels[1:]:
            seeded = "no: a start-up cost" if level["sequences"] in skipped else "yes"
            lines.append(
                f"| {name} | {level['sequences']} | {level['prefill_ms']:.1f} "
                f"| {level['output_tokens_per_s']:,.1f} "
                f"| {level['decode_only_tokens_per_s']:,.1f} | {seeded} |"
            )
    lines += [
        "",
        "## llama-server over HTTP (a second call, same recipe: 8B Q8_0 and Q4_K_M)",
        "",
        "`llama-server -np 64 -c 16384 -ngl 99 --cont-batching`, closed loop with a "
        "standard-library streaming client (bench/llamacpp_server_gpu_http.py) on the same "
        "host, one warm-up request, then 2 requests per worker and level, about 107 prompt and "
        "64 output tokens (ignore_eos, prompt cache off). Share of loop = served output over "
        "the engine loop's at the same sequences (the loop's prompts are 128 tokens).",
        "",
        "| file | in flight | output tok/s | TTFT p50 ms | TTFT p95 ms | share of loop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for level in result["served"]:
        loop = {w["sequences"]: w for w in result["files"][level["model"]][1:]}
        share = level["output_tokens_per_s"] / loop[level["concurrency"]]["output_tokens_per_s"]
        lines.append(
            f"| {level['model']} | {level['concurrency']} | {level['output_tokens_per_s']:,.1f} "
            f"| {level['ttft_p50_ms']:,.1f} | {level['ttft_p95_ms']:,.1f} | {share:.0%} |"
        )
    lines += ["", result["findings"], ""]
    return "\n".join(lines)


FINDINGS = """## What it says

- **The first level of every file pays a start-up cost in its prefill**: 16-187 ms more
  than the same level run again in the same process, the most for F16. llama-batched-bench
  warms up with one 16-token batch, which does not load what a 128-token prompt calls; the
  likely cause is that CUDA loads each kernel on its first use, and F16's prompt products
  go through cuBLAS, which sets itself up on its first call (the quantized types use
  llama.cpp's own kernels). At one sequence the cost takes 9-10 % off an 8B quantized
  file's output rate, 27 % off the 8B F16's and 19-68 % off the 1B files'.
- **A new batch shape can pay again**: the 8B F16 file's level of 2 sequences prefilled 256
  tokens in 105 ms, against 24 ms for 512 tokens at the next level. It is not seeded.
- **The H200 runs of the same recipe paid the same** (`bench/results/llamacpp_server_gpu.json`
  and `llamacpp_served_gap.json`, levels once): the first levels of llamacpp_server_gpu
  prefilled in 26-141 ms, against 8-79 ms for twice the prompts at the next. A server pays
  it once, at its first requests. Seed version 34 marks those levels (each file's first, and
  the 8B F16 file's two sequences) `cold_start`: they stay in the validation, set apart,
  and neither pin, calibrate nor anchor a batching curve (planner/estimate.py COLD_START).
  Their settings' later levels still make a curve, started from the single-stream speed of
  their classes (the served H200 rows at one request, which agree with the loop there).
- **llama-server over HTTP gives 40-44 % of its engine loop's output at 16-64 requests**,
  as on the H200 (38-40 %, bench/results/llamacpp_served_gap.md); at 4 requests 75-79 %
  here against 46-49 % there, and 88-90 % at one request (100 % there).
- The seed rows are the warm engine-loop levels and the served levels: the project's first
  llama.cpp batching curves on an H100 SXM, its only warm engine-loop curves, and its second
  run of quantized files served (seed version 35).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", type=Path, required=True)
    parser.add_argument("--served", type=Path, required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--commit", required=True)
    args = parser.parse_args()
    machine = (args.device / "machine.txt").read_text()
    meta = device_meta(args.device, args.date, args.commit)
    smi = meta["gpu"]
    files = _levels(args.device)
    h200 = _h200_first_levels()
    first_level = []
    for name, levels in files.items():
        cold, warm = levels[0], levels[1]
        first_level.append(
            {
                "file": name,
                "cold_prefill_ms": cold["prefill_ms"],
                "warm_prefill_ms": warm["prefill_ms"],
                "start_up_ms": round(cold["prefill_ms"] - warm["prefill_ms"], 1),
                "cold_output_tokens_per_s": cold["output_tokens_per_s"],
                "warm_output_tokens_per_s": warm["output_tokens_per_s"],
                "cold_over_warm": round(
                    cold["output_tokens_per_s"] / warm["output_tokens_per_s"], 3
                ),
                **({"h200": h200[name]} if name in h200 else {}),
            }
        )
    result = {
        "date": args.date,
        "commit": args.commit,
        "gpu": smi,
        "engine_version": meta["engine_version"],
        "machine": machine,
        "files": files,
        "first_level": first_level,
        "start_up_levels": {
            name: sorted(_start_up_levels(levels[1:])) for name, levels in files.items()
        },
        "served": [
            json.loads(line) for line in (args.served / "http.jsonl").read_text().splitlines()
        ],
        "findings": FINDINGS.strip(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "llamacpp_cold_start.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "llamacpp_cold_start.md").write_text(_markdown(result))
    from llamacpp_server_planner import write_seed

    rows = _seed_rows(files, meta) + http_level_rows(result["served"], meta)
    header = (
        "llama.cpp on one H100 SXM, measured by bench/llamacpp_cold_start.py: its engine loop\n"
        "(llama-batched-bench, warm levels only) and llama-server over HTTP; random weights of\n"
        "Llama 1B/8B shape: speed only. Written by that script; do not edit."
    )
    write_seed(SEED, header, rows)
    print(f"{len(rows)} seed rows from {len(files)} files")


if __name__ == "__main__":
    main()
