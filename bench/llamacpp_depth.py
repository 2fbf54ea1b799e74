"""Report of bench/llamacpp_depth.sh: decode speed against context depth, flash attention off/on.

    python bench/llamacpp_depth.py --device DIR --date 2026-12-05T02:30Z --commit abc1234

DIR holds the files the device calls returned (depth-*.jsonl from llama-bench, models.txt,
machine.txt, version.txt, build.log). Writes bench/results/llamacpp_depth.{json,md}.

The planner's decode step reads the KV cache of every sequence at the weights' bandwidth
(planner/estimate.py ``_step_times``). Here the step time t(d) at depth d is 1 / (tok/s), and
its growth per token of depth, against what reading that token's KV bytes at the rate the
weights are read (the file's bytes over the step at depth 0) would add, is the KV read's cost
factor: 1 means the planner's assumption holds, 3 that each KV byte costs three weight bytes.
The step at depth 0 also holds the fixed per-step overhead, so the factor is a lower bound.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
# 8B shape (bench/llamacpp_server_gpu.py SHAPES["8b"]): 32 layers x 8 KV heads x 128 x (K and V)
# x 2 bytes (llama.cpp's default F16 cache).
KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2
SPEC_GBPS = 4800.0  # H200 HBM3e, NVIDIA's data sheet (the catalog's H200 row)
SLOPE_FROM, SLOPE_TO = 8192, 32768


FINDINGS = """## What it says

- **The KV cache costs the same whatever the weights' format**: 56-59 ns per token of depth
  with flash attention and 109-112 ns without, for the F16, Q8_0 and Q4_K_M files alike, so
  reading it is a term of its own, not a share of the weight read.
- **With flash attention (llama.cpp's default on CUDA now) the planner's assumption roughly
  holds**: the cache is read at 2.2-2.3 TB/s (46-49 % of spec) and the F16 weights at 3.2 TB/s
  over the whole depth-0 step (its fixed overhead included), so a KV byte costs about 1.4 F16
  weight bytes. Without it the cache is read at 1.2 TB/s (24-25 % of spec): a KV byte costs
  about 2.4 F16 weight bytes.
- **Against the published 2024 runs**: XiongjieDai's RTX 3090 rows (llama.cpp build 2824,
  May 2024, flash attention off by default) slow from tg 512 to tg 8192 by 10 % (F16, 47.4 ->
  42.62 tok/s) and 24 % (Q4_K_M, 115.42 -> 87.49): about 616 and 720 ns per token of mean
  depth, a KV read of 180-215 GB/s (19-23 % of the 3090's 936), where its F16 weights were
  read at about 760 GB/s: a KV byte cost about 3.6-4.2 weight bytes there. Those rows are the
  ones the planner over-predicts most at long context (bench/results/prediction_accuracy.md).
- So the cost of the KV read depends on the engine's attention kernel and its release: a
  factor taken from the 2024 rows would make today's plans with flash attention pessimistic
  in that term by 2.5-3x. The planner reads the cache at its own rate per engine and device
  kind (engine traits `kv_read_efficiency`, from this run: 0.44 with flash attention and 0.25
  without, where the weights' prior is 0.6) and takes a run's setting from its details or,
  for llama.cpp, its date (off before September 2025, when `-fa auto` became the default), so
  the 2024 rows are predicted without it and plans with it.
"""


def _file_bytes(models_txt: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in models_txt.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1].endswith(".gguf"):
            sizes[parts[-1].removeprefix("8b-").removesuffix(".gguf")] = int(parts[4])
    return sizes


def read(device: Path) -> dict[str, Any]:
    sizes = _file_bytes(device / "models.txt")
    rows: list[dict[str, Any]] = []
    for path in sorted(device.glob("depth-*.jsonl")):
        quant = path.stem.removeprefix("depth-")
        for line in path.read_text().splitlines():
            if not line.startswith("{"):
                continue
            run = json.loads(line)
            rows.append(
                {
                    "quant": quant,
                    "flash_attn": run.get("flash_attn"),
                    "depth": int(run["n_depth"]),
                    "tokens_per_s": float(run["avg_ts"]),
                    "stddev": float(run.get("stddev_ts", 0.0)),
                }
            )
    factors: list[dict[str, Any]] = []
    for quant in sorted({r["quant"] for r in rows}):
        for fa in sorted({str(r["flash_attn"]) for r in rows}):
            curve = dict(
                (r["depth"], r["tokens_per_s"])
                for r in rows
                if r["quant"] == quant and str(r["flash_attn"]) == fa
            )
            if not {0, SLOPE_FROM, SLOPE_TO} <= set(curve):
                continue
            t0 = 1.0 / curve[0]
            # Between the two deepest levels the step grows linearly with depth (the shallow
            # levels are within run-to-run spread of depth 0).
            per_token = (1.0 / curve[SLOPE_TO] - 1.0 / curve[SLOPE_FROM]) / (SLOPE_TO - SLOPE_FROM)
            kv_rate = KV_BYTES_PER_TOKEN / per_token / 1e9
            weight_rate = sizes[quant] / t0 / 1e9
            factors.append(
                {
                    "quant": quant,
                    "flash_attn": fa,
                    "ns_per_depth_token": round(per_token * 1e9, 1),
                    "kv_read_gbps": round(kv_rate, 1),
                    "kv_share_of_spec": round(kv_rate / SPEC_GBPS, 3),
                    "weights_read_gbps_at_depth_0": round(weight_rate, 1),
                    "kv_byte_cost_vs_weight_byte": round(weight_rate / kv_rate, 2),
                }
            )
    return {"rows": rows, "factors": factors, "file_bytes": sizes}


def render(result: dict[str, Any], date: str, commit: str, machine: str, version: str) -> str:
    lines = [
        "# llama.cpp decode speed against context depth (flash attention off and on)",
        "",
        f"Run {date} (commit {commit}), `bash bench/llamacpp_depth.sh build` then `bench`, "
        f"report `python bench/llamacpp_depth.py`. Machine: {machine}. llama.cpp: {version}.",
        "8B Llama shape (bench/llamacpp_server_gpu.py), random weights: speed only. "
        "llama-bench tg128 at depth d (d tokens already in the KV cache), 3 repetitions, all "
        "layers on the GPU.",
        "",
        "| file | flash attention | depth | tok/s | +- |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['quant']} | {r['flash_attn']} | {r['depth']} | {r['tokens_per_s']:.1f} | "
            f"{r['stddev']:.1f} |"
        )
    lines += [
        "",
        f"The KV cache's read rate: the step's growth per token of depth between depths "
        f"{SLOPE_FROM:,} and {SLOPE_TO:,} (where it is linear), against that token's KV bytes "
        f"({KV_BYTES_PER_TOKEN:,}: 32 layers x 8 KV heads x 128 x K and V x 2 bytes). The "
        "weights' rate is the file's bytes over the whole step at depth 0 (its fixed overhead "
        "included, so a lower bound). The planner reads each at its own rate (engine traits).",
        "",
        "| file | flash attention | ns per token of depth | KV read GB/s | share of spec "
        "(4,800) | weights GB/s at depth 0 | a KV byte costs (weight bytes) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in result["factors"]:
        lines.append(
            f"| {f['quant']} | {f['flash_attn']} | {f['ns_per_depth_token']:.1f} | "
            f"{f['kv_read_gbps']:,.0f} | {f['kv_share_of_spec']:.0%} | "
            f"{f['weights_read_gbps_at_depth_0']:,.0f} | {f['kv_byte_cost_vs_weight_byte']:.2f} |"
        )
    lines += ["", FINDINGS]
    return "\n".join(lines) + "\n"


def machine_and_version(device: Path) -> tuple[str, str]:
    """The machine (machine.txt: nvidia-smi's CSV, header then the card; cores, CPU model,
    uptime lines) in one line, and llama.cpp's version line (version.txt; "?" without it)."""
    lines = (device / "machine.txt").read_text().splitlines()
    machine = "; ".join(" ".join(line.split()) for line in lines[1:] if line.strip())
    version_file = device / "version.txt"
    version = " ".join(version_file.read_text().split()[:12]) if version_file.exists() else "?"
    return machine, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=Path, required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--commit", required=True)
    args = parser.parse_args()
    result = read(args.device)
    machine, version = machine_and_version(args.device)
    result.update({"date": args.date, "commit": args.commit, "machine": machine})
    (RESULTS / "llamacpp_depth.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "llamacpp_depth.md").write_text(
        render(result, args.date, args.commit, machine, version)
    )
    print(json.dumps(result["factors"], indent=1))


if __name__ == "__main__":
    main()
