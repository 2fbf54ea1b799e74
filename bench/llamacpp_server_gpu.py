"""llama.cpp with CUDA on the GPU machine: GGUF files of Llama 1B and 8B shape, speed only.

The GPU machine cannot download anything and takes at most 64 MiB per call, so neither the
weights nor the 77 MB sdist travel. What travels is the llama.cpp tree vendored in the pinned
llama-cpp-python 0.3.36 sdist, trimmed to what builds llama-server (no models, docs, web UI
sources or other backends: about 33 MB), and the tokenizer metadata of the default model's GGUF.
There, the tree is built with CUDA for the card, and GGUF files are written with the tree's own
gguf-py from random weights: speed does not depend on the values, quality numbers would.

Steps (the device part runs as one command, see ``device.sh`` in the md):

* here:  ``python bench/llamacpp_server_gpu.py tokenizer --out .llama-src/tokenizer.gguf``
* there: ``python bench/llamacpp_server_gpu.py model --shape 8b --out /tmp/m/8b-f16.gguf``,
  then ``llama-quantize`` and ``llama-batched-bench --output-format jsonl``
* here:  ``python bench/llamacpp_server_gpu.py report --jsonl results.jsonl`` writes
  bench/results/llamacpp_server_gpu.{json,md}

This file imports only numpy and gguf-py (the GPU machine has no pydantic).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TREE = HERE.parent / ".llama-src" / "llama.cpp"

# Llama shapes (config.json of meta-llama/Llama-3.2-1B and Llama-3.1-8B). The vocabulary is the
# default model's (49,152 tokens, its tokenizer travels), not Llama 3's 128,256: the 8B file
# has 0.32 B fewer parameters in its embedding and output matrices (about 4 % of the weights).
# "70b-8l" is 8 of Llama-3.1-70B's 80 layers (its config.json: 64 query heads a layer over the
# same 8 KV heads of 128 as the 8B's 32), for what a layer's attention costs per KV byte.
SHAPES: dict[str, dict[str, float | int]] = {
    "1b": {"hidden": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "ffn": 8192, "tied": 1},
    "8b": {"hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "ffn": 14336, "tied": 0},
    "70b-8l": {"hidden": 8192, "layers": 8, "heads": 64, "kv_heads": 8, "ffn": 28672, "tied": 0},
}


def _gguf():  # type: ignore[no-untyped-def]  # gguf-py comes from the carried tree
    sys.path.insert(0, str(TREE / "gguf-py"))
    import gguf

    return gguf


def tokenizer_only(source: Path, out: Path) -> None:
    """Copy the ``tokenizer.*`` keys of ``source`` into a GGUF with no tensors (small)."""
    gguf = _gguf()
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(out, "llama")
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        kind = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[1]) if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), kind, sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def random_model(shape_name: str, tokenizer: Path, out: Path) -> None:
    """An F16 GGUF of Llama shape with random weights (N(0, 0.02)) and the given tokenizer."""
    import numpy as np

    gguf = _gguf()
    shape = SHAPES[shape_name]
    hidden, layers, ffn = int(shape["hidden"]), int(shape["layers"]), int(shape["ffn"])
    heads, kv_heads = int(shape["heads"]), int(shape["kv_heads"])
    head_dim = hidden // heads
    reader = gguf.GGUFReader(tokenizer)
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name(f"random-llama-{shape_name}")
    writer.add_context_length(8192)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for name, field in reader.fields.items():
        if name.startswith("tokenizer."):
            kind = gguf.GGUFValueType(field.types[0])
            sub = gguf.GGUFValueType(field.types[1]) if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, field.contents(), kind, sub)
    # One pool of random values, sliced per tensor: drawing 8 B normals would take minutes,
    # and the values do not change the speed.
    rng = np.random.default_rng(0)
    pool = (rng.standard_normal(1 << 26, dtype=np.float32) * 0.02).astype(np.float16)

    def weight(rows: int, cols: int, salt: int) -> np.ndarray:
        count = rows * cols
        start = (salt * 7919) % (pool.size - 1)
        flat = np.resize(np.roll(pool, -start), count) if count > pool.size else None
        if flat is None:
            end = start + count
            flat = (
                pool[start:end]
                if end <= pool.size
                else np.concatenate([pool[start:], pool[: end - pool.size]])
            )
        return flat.reshape(rows, cols)

    ones = np.ones(hidden, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weight(vocab, hidden, 1))
    for i in range(layers):
        prefix = f"blk.{i}."
        writer.add_tensor(prefix + "attn_norm.weight", ones)
        writer.add_tensor(prefix + "attn_q.weight", weight(heads * head_dim, hidden, 10 * i + 2))
        writer.add_tensor(prefix + "attn_k.weight", weight(kv_heads * head_dim, hidden, 10 * i + 3))
        writer.add_tensor(prefix + "attn_v.weight", weight(kv_heads * head_dim, hidden, 10 * i + 4))
        attn_output = weight(hidden, heads * head_dim, 10 * i + 5)
        writer.add_tensor(prefix + "attn_output.weight", attn_output)
        writer.add_tensor(prefix + "ffn_norm.weight", ones)
        writer.add_tensor(prefix + "ffn_gate.weight", weight(ffn, hidden, 10 * i + 6))
        writer.add_tensor(prefix + "ffn_up.weight", weight(ffn, hidden, 10 * i + 7))
        writer.add_tensor(prefix + "ffn_down.weight", weight(hidden, ffn, 10 * i + 8))
    writer.add_tensor("output_norm.weight", ones)
    if not shape["tied"]:
        writer.add_tensor("output.weight", weight(vocab, hidden, 9))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


SEED_NAME = "profiles_llamacpp_server_gpu.yaml"
SOURCE = "quantplan bench/results/llamacpp_server_gpu.json"
CATALOG_MODEL = {"1b": "Llama-3.2-1B", "8b": "Llama-3.1-8B"}
SCHEME = {"F16": "gguf-f16", "Q8_0": "gguf-q8_0", "Q4_K_M": "gguf-q4_k_m"}


SEED_HEADER = (
    "llama.cpp on one H200, measured by bench/llamacpp_server_gpu.py (llama-batched-bench,\n"
    "random weights of Llama 1B/8B shape: speed only). Written by that script; do not edit."
)


def seed_rows(full: list[dict], date: str, commit: str, engine_version: str) -> list[Any]:
    """The all-on-GPU levels as profile records. The run had no warm-up, so each file's first
    level, and any level that paid a new shape's start-up cost, is kept but set apart
    (planner/estimate.py COLD_START)."""
    from llamacpp_cold_start import START_UP_RUN, start_up_notes

    from quantplan.catalog.records import ProfileRecord
    from quantplan.planner.estimate import COLD_START

    cold = {
        name: start_up_notes(
            {p["pl"]: 1000 * p["t_pp"] for p in full if p["model"] == name}, warmed=False
        )
        for name in dict.fromkeys(point["model"] for point in full)
    }
    rows = []
    for point in full:
        shape, quant = point["model"].split("-", 1)
        note = cold[point["model"]].get(point["pl"])
        rows.append(
            ProfileRecord(
                model=CATALOG_MODEL[shape],
                scheme=SCHEME[quant],
                engine="llama.cpp",
                hardware="H200",
                hardware_count=1,
                input_tokens=point["pp"],
                output_tokens=point["tg"],
                concurrency=point["pl"],
                output_tokens_per_s=point["output_tokens_per_s"],
                basis="measured",
                source=SOURCE,
                # A level set apart keeps its own run id: the seed retracted it as first
                # shipped, unmarked (catalog/seed_retractions.yaml, seed version 34).
                run_id=f"llamacpp-gpu-{date[:10]}" + (START_UP_RUN if note else ""),
                engine_version=engine_version,
                notes=(
                    "llama-batched-bench (the engine's batched decode, no HTTP), random weights "
                    f"of the model's shape with a 49,152-token vocabulary, all layers on the GPU;"
                    f" output tok/s = sequences x {point['tg']} / (prefill + decode time); "
                    f"decode alone {point['speed_tg']:.1f} tok/s"
                ),
                details={
                    "url": "bench/results/llamacpp_server_gpu.json",
                    "where": f"full_offload[{point['model']}, pl={point['pl']}]",
                    "date": date[:10],
                    "commit": commit,
                    "category": "throughput_at_concurrency",
                    **({COLD_START: note} if note else {}),
                },
            )
        )
    return rows


def report(device: list[Path], date: str, commit: str) -> None:
    """Results JSON + md and the seed rows from the files the two device calls returned."""
    from llamacpp_server_planner import SEED_DIR, compare, write_seed

    def find(name: str) -> Path:
        return next(d / name for d in device if (d / name).is_file())

    points = [json.loads(line) for line in find("batched.jsonl").read_text().splitlines()]
    gpu = find("gpu.csv").read_text().splitlines()[1]
    version = " ".join(find("version.txt").read_text().split())
    build_s = int(find("build.log").read_text().split("build_seconds")[-1].split()[0])
    files = {
        line.split()[-1]: int(line.split()[4])
        for line in find("files.txt").read_text().splitlines()
        if line.endswith(".gguf")
    }
    engine_version = f"llama.cpp of llama-cpp-python 0.3.36's sdist, CUDA sm_90 ({version})"
    full, partial = [], []
    for point in points:
        # Closed-loop equivalent: pl sequences prefill then decode together, so the output rate
        # of the whole cycle is pl x tg / (t_pp + t_tg); speed_tg alone leaves the prefill out.
        cycle = point["pl"] * point["tg"] / point["t"]
        entry = {
            **point,
            "output_tokens_per_s": round(cycle, 1),
            "bytes": files.get(point["model"] + ".gguf"),
        }
        (full if point["n_gpu_layers"] >= 99 else partial).append(entry)
    rows = seed_rows(full, date, commit, engine_version)
    write_seed(SEED_DIR / SEED_NAME, SEED_HEADER, rows)
    comparison = compare(rows)
    http = [
        json.loads(line)
        for d in device
        if (d / "http.jsonl").is_file()
        for line in (d / "http.jsonl").read_text().splitlines()
    ]
    http_metrics = next(
        (
            dict(line.split() for line in (d / "metrics.txt").read_text().splitlines())
            for d in device
            if (d / "metrics.txt").is_file()
        ),
        {},
    )
    result = {
        "benchmark": "llamacpp_server_gpu",
        "date": date,
        "commit": commit,
        "gpu": gpu,
        "engine_version": engine_version,
        "cuda_build_seconds": build_s,
        "files_bytes": files,
        "full_offload": full,
        "partial_offload": partial,
        "planner": comparison,
        "http": http,
        "http_server_metrics": http_metrics,
    }
    results = HERE / "results" / "llamacpp_server_gpu.json"
    results.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    results.with_suffix(".md").write_text("\n".join(_markdown(result)) + "\n", encoding="utf-8")


def _markdown(result: dict) -> list[str]:
    from llamacpp_server_planner import comparison_md

    lines = [
        "# llama.cpp on one H200: batched decode, F16 / Q8_0 / Q4_K_M, full and partial offload",
        "",
        f"Run {result['date']} (commit {result['commit']}) on {result['gpu']}. The llama.cpp "
        "tree vendored in the pinned llama-cpp-python 0.3.36 sdist, trimmed and built there "
        f"with CUDA for sm_90 in {result['cuda_build_seconds']} s (16 cores); "
        f"{result['engine_version']}.",
        "",
        "**Random weights, speed only.** The GGUF files were written on that machine with the "
        "tree's gguf-py: Llama-3.2-1B and Llama-3.1-8B layer shapes (hidden size, layers, heads, "
        "KV heads, FFN), random N(0, 0.02) weights, and the default model's tokenizer (49,152 "
        "tokens instead of 128,256: the 8B file has about 4 % fewer weights), then quantized with "
        "llama-quantize. Speed does not depend on the values; no quality is measured here.",
        "",
        "**What ran**: `llama-batched-bench` (128 prompt + 64 generated tokens per sequence, "
        "1 to 64 sequences decoded together, flash attention auto), the engine's batched decode "
        "loop without HTTP. llama-server runs the same loop with one slot per sequence; the "
        "HTTP server on the GPU was not measured in this run. tok/s = sequences x 64 / (prefill "
        "+ decode seconds); decode-only in its own column.",
        "",
        "| file | sequences | output tok/s (cycle) | decode-only tok/s | x of 1 sequence |",
        "|---|---:|---:|---:|---:|",
    ]
    first: dict[str, float] = {}
    for p in result["full_offload"]:
        first.setdefault(p["model"], p["output_tokens_per_s"])
        lines.append(
            f"| {p['model']} | {p['pl']} | {p['output_tokens_per_s']:,.1f} | "
            f"{p['speed_tg']:,.1f} | {p['output_tokens_per_s'] / first[p['model']]:.1f} |"
        )
    lines += [
        "",
        "## Partial offload, 8B Q4_K_M (-ngl of 32 blocks; 33 = all, the table above)",
        "",
        "128 prompt + 32 generated tokens per sequence; the blocks not offloaded run on the "
        "host's 16 cores (AVX-512).",
        "",
        "| -ngl | share on GPU | sequences | output tok/s (cycle) | decode-only tok/s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in result["partial_offload"]:
        lines.append(
            f"| {p['n_gpu_layers']} | {p['n_gpu_layers'] / 32:.0%} | {p['pl']} | "
            f"{p['output_tokens_per_s']:,.1f} | {p['speed_tg']:,.1f} |"
        )
    if result.get("http"):
        metrics = result.get("http_server_metrics", {})
        lines += [
            "",
            "## llama-server over HTTP, 8B Q4_K_M (a third call, fresh machine, same recipe)",
            "",
            "`llama-server -np 64 -c 16384 -ngl 99 --cont-batching`, closed loop with a "
            "standard-library streaming client (bench/llamacpp_server_gpu_http.py: that machine "
            "has no pydantic for quantplan's own client) on the same host, 2 requests per worker "
            "and level, about 107 prompt and 64 output tokens (ignore_eos, prompt cache off).",
            "",
            "| concurrency | output tok/s | x of 1 | TTFT p50 / p95 ms |",
            "|---:|---:|---:|---:|",
        ]
        base = result["http"][0]["output_tokens_per_s"]
        for p in result["http"]:
            lines.append(
                f"| {p['concurrency']} | {p['output_tokens_per_s']:,.1f} | "
                f"{p['output_tokens_per_s'] / base:.1f} | {p['ttft_p50_ms']:,.0f} / "
                f"{p['ttft_p95_ms']:,.0f} |"
            )
        lines += [
            "",
            "Over HTTP the 8B Q4_K_M reaches 3.7x its single-stream rate at 32 and 4.5x at 64, "
            "short of the 5x at 32 that batched-bench shows for the engine (9.1x). With two "
            "requests per worker, each level is mostly ramp: all workers prefill at once, then "
            "decode, then wait for the slowest. In the decode phase the server's own counters "
            "show 31.8 ms per token per slot at 64 slots (about 2,000 tok/s together); "
            f"{float(metrics.get('llamacpp:n_busy_slots_per_decode', 0)):.1f} slots per decode "
            "on average over the whole run. Longer levels would show the steady state; not run.",
        ]
    lines += [
        "",
        "## The planner against these points",
        "",
        "`planner.estimate.predict_profile` for each full-offload point: before (the seed "
        "catalog without these rows) and after (these rows added except the point itself: "
        "interpolated from the neighbouring concurrencies, clamped at the ends)."
        " Catalog models: Llama-3.2-1B and Llama-3.1-8B (their real vocabulary, which the files "
        "do not have).",
        "",
        *comparison_md(result["planner"]),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    tok = sub.add_parser("tokenizer", help="here: tokenizer-only GGUF of the default model")
    tok.add_argument("--source", type=Path, default=None)
    tok.add_argument("--out", type=Path, required=True)
    model = sub.add_parser("model", help="there: a random-weight F16 GGUF of Llama shape")
    model.add_argument("--shape", choices=sorted(SHAPES), required=True)
    model.add_argument("--tokenizer", type=Path, default=TREE.parent / "tokenizer.gguf")
    model.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("report", help="here: results + seed rows from the device's files")
    rep.add_argument("--device", type=Path, nargs="+", required=True)
    rep.add_argument("--date", required=True)
    rep.add_argument("--commit", required=True)
    sub.add_parser("seed", help="here: the seed rows again from the results JSON")
    args = parser.parse_args()
    if args.step == "report":
        report(args.device, args.date, args.commit)
    elif args.step == "seed":
        from llamacpp_server_planner import SEED_DIR, write_seed

        result = json.loads((HERE / "results" / "llamacpp_server_gpu.json").read_text())
        date, commit = result["date"], result["commit"]
        rows = seed_rows(result["full_offload"], date, commit, result["engine_version"])
        write_seed(SEED_DIR / SEED_NAME, SEED_HEADER, rows)
    elif args.step == "tokenizer":
        source = args.source
        if source is None:
            from quantplan.agent.model_source import default_gguf

            source = default_gguf()
        tokenizer_only(source, args.out)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        random_model(args.shape, args.tokenizer, args.out)
    print(json.dumps({"step": args.step, "ok": True}))


if __name__ == "__main__":
    main()
