"""Report of bench/llamacpp_served_gap.sh: llama-server over HTTP against its own engine loop.

    python bench/llamacpp_served_gap.py --device DIR --date 2026-12-02T15:53Z --commit abc1234
    python bench/llamacpp_served_gap.py --write-seed

DIR holds the files of the device call's archive (served-gap.tgz, unpacked). Writes
bench/results/llamacpp_served_gap.{json,md}; ``--write-seed`` writes the run's served
(streamed) and engine-loop levels as seed profiles, the served ones marked ``served``, from
that JSON (catalog/seed/profiles_llamacpp_served_gap.yaml).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SEED = (
    Path(__file__).resolve().parent.parent
    / "catalog"
    / "seed"
    / "profiles_llamacpp_served_gap.yaml"
)
SOURCE = "quantplan bench/results/llamacpp_served_gap.json"
PROMPT_TOKENS = 107
"""The client's ~100-word prompts: 34,851 prompt tokens over 325 requests (server metrics)."""
OUTPUT_TOKENS = 64
QUANTIZED = ("Q8_0", "Q4_K_M")
"""The second call's files: llama-quantize of the same F16 file (`... quantized`)."""
VARIANTS = {
    "stream": "streamed, temperature 0, default sampler chain (quantplan's protocol)",
    "whole": "one JSON response per request (no per-token events)",
    "topk1": "sampler chain cut to top-k 1",
    "pinned": "streamed; server on cores 0-11, client on 12-15",
}


FINDINGS = """## What it says

- **The client is not the limit.** It used 0.4-2.3 CPU seconds in each variant's ~20 s (at
  most 12 % of one core), and moving it to cores of its own did not raise the output (1,340
  tok/s at 64 against 1,189 shared; the spread between variants is of that size).
- **Streaming and the sampler chain cost something, not the gap.** One response per request
  gave 1,438 tok/s at 64 and a top-k-only chain 1,479 (+21 % and +24 % over streamed; at 16
  both were below streamed, so part of this is run-to-run spread); the engine loop gives
  4,456 with its prefill and 6,745 decoding alone. Without streaming the server used half
  the CPU (22 s against 51 s).
- **The server is the limit.** The GPU was busy 44-51 % of the samples while the server process
  used 2-2.5 cores (40-51 CPU seconds per ~20 s variant): its single main loop does the
  per-step host work for every slot (batch bookkeeping, sampling, detokenizing) and folds the
  prompts of newly arrived requests into decode steps. Its own log puts a slot's decode at a
  median 38.7 ms per token over these runs, against the loop's 9.5 ms step at 64 sequences.
- **Quantized files bend the same way.** Q8_0 and Q4_K_M of the same file, served, gave 38-49 %
  of their own engine loop at 4-64 requests and all of it at one (second call, table above):
  about 1,000 tok/s at 64 for both, against 2,400-2,600 in the loop. The server's share of a
  step is nearly the same whatever the weights' format.
- **For the planner:** served rows are what a replica delivers, and the engine loop's rows
  describe the engine alone. On this GPU and model, serving reached 27-38 % of the loop's
  output at 16-64 concurrent requests and about its decode speed at one. The planner keeps
  the two apart (planner/batching.py): served curves size replicas, and an engine-loop curve
  is scaled to serving by the ratio measured where a setting was measured both ways.
"""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _metrics(path: Path) -> dict[str, float]:
    """llama-server's /metrics lines (``name value``)."""
    return {
        name: float(value)
        for name, value in (line.split() for line in path.read_text().splitlines())
    }


def _costs(path: Path) -> dict[str, float]:
    """client-*.txt: ``client_cpu_s USER SYS wall_s REAL`` then ``server_cpu_s S``."""
    words = path.read_text().split()
    at = {word: index for index, word in enumerate(words)}
    return {
        "client_cpu_s": float(words[at["client_cpu_s"] + 1]) + float(words[at["client_cpu_s"] + 2]),
        "wall_s": float(words[at["wall_s"] + 1]),
        "server_cpu_s": float(words[at["server_cpu_s"] + 1]),
    }


def engine_loop(path: Path) -> list[dict[str, Any]]:
    rows = []
    for row in _jsonl(path):
        sequences = int(row["pl"])
        rows.append(
            {
                "sequences": sequences,
                "output_tokens_per_s": round(sequences * row["tg"] / row["t"], 1),
                "decode_only_tokens_per_s": round(row["speed_tg"], 1),
                "decode_step_ms": round(1000 * row["t_tg"] / row["tg"], 2),
            }
        )
    return rows


def variant(device: Path, name: str, what: str) -> dict[str, Any]:
    gpu = [float(x) for x in (device / f"gpu-{name}.txt").read_text().split()]
    busy = [x for x in gpu if x > 0]
    cost = _costs(device / f"client-{name}.txt")
    metrics = _metrics(device / f"metrics-{name}.txt")
    return {
        "variant": name,
        "what": what,
        "levels": _jsonl(device / f"http-{name}.jsonl"),
        "client_cpu_s": round(cost["client_cpu_s"], 2),
        "server_cpu_s": cost["server_cpu_s"],
        "wall_s": cost["wall_s"],
        "gpu_busy_mean_pct": round(statistics.mean(busy), 1) if busy else None,
        "busy_slots_per_decode": metrics.get("llamacpp:n_busy_slots_per_decode"),
    }


def _shares(levels: list[dict[str, Any]], loop: list[dict[str, Any]]) -> None:
    """Each served level's output as a share of the engine loop's at the same concurrency."""
    loop_at = {row["sequences"]: row for row in loop}
    for level in levels:
        reference = loop_at.get(level["concurrency"])
        if reference:
            rate = level["output_tokens_per_s"]
            level["share_of_engine_loop"] = round(rate / reference["output_tokens_per_s"], 3)
            level["share_of_decode_only"] = round(rate / reference["decode_only_tokens_per_s"], 3)


def report(
    device: Path, date: str, commit: str, quantized: Path | None, quantized_date: str | None
) -> dict[str, Any]:
    loop = engine_loop(device / "batched.jsonl")
    variants = []
    for name, what in VARIANTS.items():
        found = variant(device, name, what)
        _shares(found["levels"], loop)
        variants.append(found)
    files = []
    if quantized is not None:
        for weights in QUANTIZED:
            quantized_loop = engine_loop(quantized / f"batched-{weights}.jsonl")
            served = variant(quantized, f"stream-{weights}", VARIANTS["stream"])
            _shares(served["levels"], quantized_loop)
            files.append({"file": weights, "engine_loop": quantized_loop, "served": served})
    return {
        "date": date,
        "commit": commit,
        "machine": (device / "machine.txt").read_text().strip().splitlines(),
        "version": (device / "version.txt").read_text().strip().splitlines()[0],
        "model": "Llama-3.1-8B layer shapes, default model's tokenizer, random weights, F16",
        "engine_loop": loop,
        "served": variants,
        "quantized_date": quantized_date,
        "quantized": files,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# llama-server over HTTP against its own engine loop, one H200",
        "",
        f"Run {result['date']} (commit {result['commit']}) on {result['machine'][1]}, "
        f"{result['machine'][2]} cores; llama.cpp {result['version']}, built there for sm_90 "
        "from the vendored tree of the pinned llama-cpp-python sdist. Model: "
        f"{result['model']} (speed only; no quality figure comes from random weights). "
        "Script: `bench/llamacpp_served_gap.sh` (device) and `.py` (this report); raw figures "
        "in `llamacpp_served_gap.json`.",
        "",
        "**Question.** Served on this GPU, llama-server's output at 64 concurrent requests was a "
        "third or less of `llama-batched-bench` on the same file "
        "(bench/results/gpu_node_steps.md, llamacpp_server_gpu.md). Either the measuring client "
        "was the limit -- then the served rows understate the engine and should not pin the "
        "planner's curves -- or the server is, and they are the truth a replica delivers.",
        "",
        "## The engine loop (llama-batched-bench: 128 prompt + 64 generated tokens, no HTTP)",
        "",
        "| sequences | output tok/s (prefill + decode) | decode-only tok/s | decode step ms |",
        "|---:|---:|---:|---:|",
    ]
    for row in result["engine_loop"]:
        lines.append(
            f"| {row['sequences']} | {row['output_tokens_per_s']:,.0f} | "
            f"{row['decode_only_tokens_per_s']:,.0f} | {row['decode_step_ms']} |"
        )
    lines += [
        "",
        "## Served: llama-server -np 64 -c 16384 -ngl 99 --cont-batching, closed loop",
        "",
        "Standard-library client (bench/llamacpp_server_gpu_http.py), 4 requests per worker and "
        "level, about 107 prompt and 64 output tokens (ignore_eos, prompt cache off). Each "
        "variant removes one suspect. CPU seconds and GPU busy cover the variant's whole run.",
        "",
        "| variant | concurrency | output tok/s | of loop (cycle / decode-only) | TTFT p50 ms "
        "| client CPU s | server CPU s | wall s | GPU busy % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for found in result["served"]:
        for level in found["levels"]:
            cycle, decode = level.get("share_of_engine_loop"), level.get("share_of_decode_only")
            shares = "" if cycle is None else f"{cycle:.0%} / {decode:.0%}"
            ttft = level["ttft_p50_ms"] or "n/a"
            lines.append(
                f"| {found['variant']} | {level['concurrency']} | "
                f"{level['output_tokens_per_s']:,.0f} | {shares} | {ttft} | "
                f"{found['client_cpu_s']} | {found['server_cpu_s']:.0f} | {found['wall_s']} | "
                f"{found['gpu_busy_mean_pct']} |"
            )
    if result["quantized"]:
        lines += [
            "",
            f"## Quantized files, a second call ({result['quantized_date']})",
            "",
            "The same F16 file quantized there with llama-quantize, each through the engine loop "
            "and streamed through llama-server (`bench/llamacpp_served_gap.sh quantized`).",
            "",
            "| file | concurrency | engine loop tok/s | served tok/s | served / loop | "
            "served TTFT p50 / p95 ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for found in result["quantized"]:
            loop_at = {row["sequences"]: row for row in found["engine_loop"]}
            for level in found["served"]["levels"]:
                reference = loop_at[level["concurrency"]]
                lines.append(
                    f"| {found['file']} | {level['concurrency']} | "
                    f"{reference['output_tokens_per_s']:,.0f} | "
                    f"{level['output_tokens_per_s']:,.0f} | "
                    f"{level['share_of_engine_loop']:.0%} | "
                    f"{level['ttft_p50_ms']:,.0f} / {level['ttft_p95_ms']:,.0f} |"
                )
    lines += ["", "Variants:", ""]
    lines += [f"- `{name}`: {what}" for name, what in VARIANTS.items()]
    lines += ["", FINDINGS]
    return "\n".join(lines)


def seed_rows(result: dict[str, Any]) -> list[Any]:
    """Each file's engine-loop and streamed levels as profile records, one run per setting."""
    settings = [("gguf-f16", result["date"], result["engine_loop"], _streamed(result["served"]))]
    for found in result["quantized"]:
        scheme = f"gguf-{found['file'].lower()}"
        settings.append((scheme, result["quantized_date"], found["engine_loop"], found["served"]))
    rows = []
    for scheme, date, loop, streamed in settings:
        rows += _setting_rows(result, scheme, date, loop, streamed)
    return rows


def _streamed(variants: list[dict[str, Any]]) -> dict[str, Any]:
    return next(found for found in variants if found["variant"] == "stream")


def _setting_rows(
    result: dict[str, Any],
    scheme: str,
    date: str,
    loop: list[dict[str, Any]],
    streamed: dict[str, Any],
) -> list[Any]:
    from llamacpp_cold_start import START_UP_RUN, start_up_notes

    from quantplan.catalog.records import ProfileRecord
    from quantplan.planner.estimate import COLD_START

    # + how: two settings of one file (the first call's F16 rows keep their shipped ids)
    run = f"llamacpp-served-gap-{date[:10]}" + ("" if scheme == "gguf-f16" else f"-{scheme}")
    common = {
        "model": "Llama-3.1-8B",
        "scheme": scheme,
        "engine": "llama.cpp",
        "hardware": "H200",
        "hardware_count": 1,
        "output_tokens": OUTPUT_TOKENS,
        "basis": "measured",
        "source": SOURCE,
        "engine_version": result["version"],
    }
    weights = (
        "random weights in Llama-3.1-8B's layer shapes with the default model's 49,152-token "
        "vocabulary (speed only)"
    )
    where = "" if scheme == "gguf-f16" else f"quantized[{scheme}]."
    # The prefill of a level: its whole cycle less its decode, from the two rates it recorded.
    # The run had no warm-up: its first level is set apart (planner/estimate.py COLD_START).
    cold = start_up_notes(
        {
            level["sequences"]: 1000
            * level["sequences"]
            * OUTPUT_TOKENS
            * (1 / level["output_tokens_per_s"] - 1 / level["decode_only_tokens_per_s"])
            for level in loop
        },
        warmed=False,
    )
    rows = []
    for level in loop:
        note = cold.get(level["sequences"])
        rows.append(
            ProfileRecord(
                **common,
                input_tokens=128,
                # A level set apart keeps its own run id: the seed retracted it as first
                # shipped, unmarked (catalog/seed_retractions.yaml, seed version 34).
                run_id=f"{run}-engine-loop" + (START_UP_RUN if note else ""),
                concurrency=level["sequences"],
                output_tokens_per_s=level["output_tokens_per_s"],
                notes="llama-batched-bench (the engine loop, no HTTP), all layers on the GPU; "
                "output tok/s = sequences x 64 / (prefill + decode time); decode alone "
                f"{level['decode_only_tokens_per_s']:,} tok/s; {weights}",
                details={
                    "url": "bench/results/llamacpp_served_gap.json",
                    "where": f"{where}engine_loop[sequences={level['sequences']}]",
                    "date": date[:10],
                    "commit": result["commit"],
                    "category": "throughput_at_concurrency",
                    **({COLD_START: note} if note else {}),
                },
            )
        )
    for level in streamed["levels"]:
        rows.append(
            ProfileRecord(
                **common,
                input_tokens=PROMPT_TOKENS,
                run_id=f"{run}-served",
                concurrency=level["concurrency"],
                output_tokens_per_s=level["output_tokens_per_s"],
                ttft_p50_ms=level["ttft_p50_ms"],
                ttft_p95_ms=level["ttft_p95_ms"],
                notes="llama-server -np 64 --cont-batching over HTTP, closed loop, streamed, "
                f"standard-library client, {level['requests']} requests at this level; {weights}",
                details={
                    "url": "bench/results/llamacpp_served_gap.json",
                    "where": f"{where}served[stream].levels[concurrency={level['concurrency']}]",
                    "date": date[:10],
                    "commit": result["commit"],
                    "category": "throughput_at_concurrency",
                    "served": True,
                },
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", type=Path)
    parser.add_argument("--date")
    parser.add_argument("--commit")
    parser.add_argument("--quantized", type=Path, help="the second call's files (quantized)")
    parser.add_argument("--quantized-date")
    parser.add_argument("--write-seed", action="store_true", help="the seed file, from the JSON")
    args = parser.parse_args()
    if args.write_seed:
        from llamacpp_server_planner import write_seed

        result = json.loads((RESULTS / "llamacpp_served_gap.json").read_text())
        header = (
            "llama.cpp on one H200, one run: its engine loop (llama-batched-bench) and\n"
            "llama-server over HTTP on the same file (random weights in real shapes: speed\n"
            "only). Written by bench/llamacpp_served_gap.py --write-seed; do not edit."
        )
        write_seed(SEED, header, seed_rows(result))
        return
    if not (args.device and args.date and args.commit):
        parser.error("--device, --date and --commit are needed to write the report")
    result = report(args.device, args.date, args.commit, args.quantized, args.quantized_date)
    (RESULTS / "llamacpp_served_gap.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "llamacpp_served_gap.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
