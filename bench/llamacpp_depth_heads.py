"""Report of bench/llamacpp_depth_heads.sh: the KV read per byte with four and eight query heads
a KV head, flash attention off and on.

    python bench/llamacpp_depth_heads.py --device DIR --date 2026-12-05T23:00Z --commit abc1234

DIR holds the files the device calls returned (depth-<shape>-<quant>.jsonl from llama-bench,
models.txt, machine.txt, version.txt). Writes bench/results/llamacpp_depth_heads.{json,md}.

The step time t(d) at depth d is 1 / (tok/s); its growth per token of depth between the two
deepest levels, against the KV bytes a token adds (layers x 8 KV heads x 128 x K and V x 2
bytes, the same per layer in both shapes), is the rate attention reads the cache at. The
planner reads it at one rate per engine and device kind whatever the model (engine traits
``kv_read_efficiency``, planner/estimate.py ``kv_read_s``); a rate that halves with eight query
heads a KV head would say it must depend on the model's head ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llamacpp_cold_start import HARDWARE
from llamacpp_depth import SLOPE_FROM, SLOPE_TO, machine_and_version
from llamacpp_server_gpu import SHAPES

from quantplan.catalog.seeding import seed_records

RESULTS = Path(__file__).resolve().parent / "results"
KV_BYTES_PER_TOKEN_AND_LAYER = 8 * 128 * 2 * 2  # both shapes: 8 KV heads of 128, K and V, F16

# What the committed run (bench/results/llamacpp_depth_heads.json) says.
FINDINGS = """## What it says

- **Eight query heads a KV head read the cache at a different rate from four.**
  - Without flash attention, a KV byte costs the 70B layer shape 1.77x what it costs the 8B:
    6.40-6.46 against 3.63-3.64 ns per token of depth and layer, 19 % against 34 % of spec.
  - With flash attention it costs less: 1.45-1.50 against 1.92-1.94 ns, 82-84 % against
    63-64 % of spec.
- **The weights' format does not matter.** F16 and Q4_K_M are within 1 % of each other in
  every setting, as on the H200 (bench/results/llamacpp_depth.md). This is what commit 8c3ede3
  rests on: the calibration multiplier, which a file's weight kernel sets, no longer scales
  the KV read.
- **The H100 reads the 8B's cache about as fast as the H200 in absolute terms**: 2.1 TB/s with
  flash attention and 1.13 without, against the H200's 2.2-2.3 and 1.17-1.20. The H100's spec
  bandwidth is 30 % lower, so its shares of spec are higher: 63 % and 34 % against 46-49 % and
  24-25 %. At one sequence the read is bound by something besides DRAM bandwidth.
- **What the planner does with it.** It reads the cache at one share of spec per engine and
  device kind: 0.44 with flash attention, 0.25 without, from the H200. Plans run with flash
  attention, so for a long context on an H100 the modeled KV time is pessimistic:
  - about 1.4x for an 8B (0.63 measured);
  - about 1.9x for a Llama-3-70B layer (0.83 measured).
- **The published 2024 runs without flash attention agree only in part.** Going from tg512 to
  tg8192 (bench/results/prediction_accuracy.md, "context cost"):
  - On A100s and the M2 Ultra, Llama-3-70B costs about twice what 8B costs per KV byte, as here.
  - On the RTX 4090 and L40S it costs about the same as 8B.
- **Tried, not kept: a rate that follows the head ratio.** The ratios measured here were
  applied to llama.cpp's GPU rates as a power of the query heads per KV head (exponent +0.39
  with flash attention, -0.84 without).
  - Held out, the batch-1 decode median went from 7.2 % to 6.5 %.
  - The context-cost check of the same run got worse: median abs 32 % → 38 %, p90 62 % → 121 %.
  - The Ada GPUs' 70B pairs, which do not slow the way the H100 does, were given 2.2x their
    measured context cost.
  - How the rate depends on the head ratio differs by device, and one H100 cannot tell the
    devices apart, so it stays a measured limit.
- The bench step ran after both files had been quantized in parallel on the machine's 16 cores.
  The load average of 7 at its end comes from that quantization.
"""


def read(device: Path, spec_gbps: float) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for path in sorted(device.glob("depth-*.jsonl")):
        shape, quant = path.stem.removeprefix("depth-").rsplit("-", 1)  # 70b-8l, Q4_K_M
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                run = json.loads(line)
                rows.append(
                    {
                        "shape": shape,
                        "quant": quant,
                        "flash_attn": int(bool(run.get("flash_attn"))),
                        "depth": int(run["n_depth"]),
                        "tokens_per_s": float(run["avg_ts"]),
                        "stddev": float(run.get("stddev_ts", 0.0)),
                    }
                )
    rates: list[dict[str, Any]] = []
    for shape, quant, fa in sorted({(r["shape"], r["quant"], r["flash_attn"]) for r in rows}):
        curve = {
            r["depth"]: r["tokens_per_s"]
            for r in rows
            if (r["shape"], r["quant"], r["flash_attn"]) == (shape, quant, fa)
        }
        if not {SLOPE_FROM, SLOPE_TO} <= set(curve):
            continue
        layers = int(SHAPES[shape]["layers"])
        group = int(SHAPES[shape]["heads"]) // int(SHAPES[shape]["kv_heads"])
        per_token = (1.0 / curve[SLOPE_TO] - 1.0 / curve[SLOPE_FROM]) / (SLOPE_TO - SLOPE_FROM)
        kv_rate = layers * KV_BYTES_PER_TOKEN_AND_LAYER / per_token / 1e9
        rates.append(
            {
                "shape": shape,
                "query_heads_per_kv_head": group,
                "quant": quant,
                "flash_attn": fa,
                "ns_per_depth_token_and_layer": round(per_token * 1e9 / layers, 2),
                "kv_read_gbps": round(kv_rate, 1),
                "kv_share_of_spec": round(kv_rate / spec_gbps, 3),
            }
        )
    return {"rows": rows, "rates": rates}


def render(result: dict[str, Any]) -> str:
    lines = [
        "# The KV read per byte with four and eight query heads a KV head (llama.cpp)",
        "",
        f"Run {result['date']} (commit {result['commit']}), `bash bench/llamacpp_depth_heads.sh "
        "build` then `bench`, report `python bench/llamacpp_depth_heads.py`. Machine: "
        f"{result['machine']}. llama.cpp: {result['version']}.",
        "Random weights (speed only) in two Llama layer shapes of bench/llamacpp_server_gpu.py: "
        "the 8B (32 layers, 32 query heads over 8 KV heads of 128) and 8 of Llama-3.1-70B's 80 "
        "layers (64 query heads over the same 8 KV heads). llama-bench tg128 at depth d "
        "(d tokens already in the KV cache), 3 repetitions, all layers on the GPU.",
        "",
        "| shape | file | flash attention | depth | tok/s | +- |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['shape']} | {r['quant']} | {r['flash_attn']} | {r['depth']} | "
            f"{r['tokens_per_s']:.1f} | {r['stddev']:.1f} |"
        )
    lines += [
        "",
        f"The rate: the step's growth per token of depth between depths {SLOPE_FROM:,} and "
        f"{SLOPE_TO:,}, against the KV bytes a token adds (4,096 a layer in both shapes), and "
        f"its share of the card's spec bandwidth ({result['spec_gbps']:,.0f} GB/s).",
        "",
        "| shape | query heads a KV head | file | flash attention | ns per depth token and "
        "layer | KV read GB/s | share of spec |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for r in result["rates"]:
        lines.append(
            f"| {r['shape']} | {r['query_heads_per_kv_head']} | {r['quant']} | "
            f"{r['flash_attn']} | {r['ns_per_depth_token_and_layer']:.2f} | "
            f"{r['kv_read_gbps']:,.0f} | {r['kv_share_of_spec']:.0%} |"
        )
    lines += ["", FINDINGS]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=Path, required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--commit", required=True)
    args = parser.parse_args()
    machine, version = machine_and_version(args.device)
    # The card's spec bandwidth: its catalog row (nvidia-smi's name, mapped as the seeds map it).
    card = HARDWARE[machine.split(",")[0].strip()]
    hardware = dict(seed_records())["hardware"]
    spec = next(h.memory_bandwidth_gbps for h in hardware if h.name == card)
    result = read(args.device, spec)
    result |= {
        "date": args.date,
        "commit": args.commit,
        "machine": machine,
        "version": version,
        "spec_gbps": spec,
    }
    (RESULTS / "llamacpp_depth_heads.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "llamacpp_depth_heads.md").write_text(render(result))
    print(json.dumps(result["rates"], indent=1))


if __name__ == "__main__":
    main()
