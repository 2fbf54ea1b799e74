"""The planner's partial GPU offload model (planner/offload.py) against measured -ngl runs.

    .venv/bin/python bench/llamacpp_partial_offload.py

Reads the partial-offload runs of bench/results/llamacpp_server_gpu.json (llama-batched-bench,
8B Q4_K_M of Llama-3.1-8B shape with random weights, one H200 with 16 host threads, -ngl 8, 16
and 24 of 32 layers, 1, 4 and 16 sequences of 128 prompt + 32 output tokens; these runs are not
in the catalog) and predicts each the way the planner sizes a replica:

* the GPU part: ``predict_profile`` of the same setting with every layer on the GPU, calibrated
  by the seed catalog (which holds the full-offload runs of the same file, not these);
* the split: planner/offload.py ``split_step_times`` with the replica's 16 vCPUs;
* output tok/s = output / (prefill + output x step / sequences), as ``predict_profile``.

Three sets of host figures: the prior (catalog CPU figures per vCPU, before these runs were
seen), fitted to all 9 runs (the planner's ``HOST``), and fitted with each -ngl setting left out
then predicting it (held out). Writes bench/results/llamacpp_partial_offload.{json,md}.
Planner arithmetic only: nothing is measured here.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.seeding import seed_records
from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.estimate import predict_profile
from quantplan.planner.hardware import (
    active_fraction,
    kv_gb_per_token,
    model_shape_from_record,
    weight_gb,
)
from quantplan.planner.offload import (
    HOST,
    PRIOR_HOST,
    HostFigures,
    output_layer_gb,
    split_step_times,
)
from quantplan.planner.targets import ModelShape
from quantplan.planner.traits import method_traits

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE = RESULTS / "llamacpp_server_gpu.json"
MODEL, SCHEME, HARDWARE = "Llama-3.1-8B", "gguf-q4_k_m", "H200"
HOST_VCPUS = 16
"""The GPU machine's host threads (``n_threads`` of every run)."""


def _runs() -> list[dict[str, Any]]:
    return list(json.loads(SOURCE.read_text(encoding="utf-8"))["partial_offload"])


def _gpu_part(
    snapshot: CatalogSnapshot, run: dict[str, Any], scheme: str = SCHEME
) -> tuple[float, float, str]:
    """The planner's all-on-GPU decode step and prefill for the run's setting."""
    key = (id(snapshot), scheme, int(run["pp"]), int(run["tg"]), int(run["pl"]))
    if key not in _GPU_PARTS:
        _GPU_PARTS[key] = _gpu_part_of(snapshot, scheme, *key[2:])
    return _GPU_PARTS[key]


_GPU_PARTS: dict[tuple[int, str, int, int, int], tuple[float, float, str]] = {}


def _gpu_part_of(
    snapshot: CatalogSnapshot, scheme: str, prompt: int, output: int, sequences: int
) -> tuple[float, float, str]:
    row = ProfileRecord(
        model=MODEL,
        scheme=scheme,
        engine="llama.cpp",
        hardware=HARDWARE,
        input_tokens=prompt,
        output_tokens=output,
        concurrency=sequences,
        output_tokens_per_s=1.0,  # unused: only the setting is predicted
        basis="modeled",
        source="bench/llamacpp_partial_offload.py",
    )
    prediction = predict_profile(row, snapshot, tuple(snapshot.profiles))
    assert prediction is not None
    return prediction.decode_step_s, prediction.prefill_s, prediction.basis


FILE_VOCABULARY = 49_152
"""The runs' GGUF files: Llama-3.1-8B's layers with the default model's tokenizer."""


def file_shape(snapshot: CatalogSnapshot) -> ModelShape:
    """The shape of the measured files: the catalog model's with the files' vocabulary, its
    embedding and output matrices (and so its parameters) that much smaller. The host's share of
    a split holds the output layer, so its size matters there."""
    shape = model_shape_from_record(snapshot.model_by_name[MODEL])
    fewer = 2 * (shape.vocab_size - FILE_VOCABULARY) * shape.hidden_size / 1e9
    return shape.model_copy(
        update={"vocab_size": FILE_VOCABULARY, "parameters_b": shape.parameters_b - fewer}
    )


def predict(
    snapshot: CatalogSnapshot,
    runs: list[dict[str, Any]],
    host: HostFigures,
    scheme_name: str = SCHEME,
) -> list[float]:
    """Output tok/s of each run (``pl`` sequences of ``pp`` + ``tg`` tokens, ``n_gpu_layers``
    of the model's layers on the H200) as the planner sizes such a replica."""
    shape = file_shape(snapshot)
    scheme = snapshot.scheme_by_name[scheme_name]
    method = method_traits(snapshot, scheme.family)
    weights = weight_gb(shape, scheme, method) * active_fraction(shape)
    output_gb = output_layer_gb(shape, scheme)
    out = []
    for run in runs:
        gpu_step, gpu_prefill, _ = _gpu_part(snapshot, run, scheme_name)
        sequences, output = int(run["pl"]), int(run["tg"])
        decode, prefill = split_step_times(
            int(run["n_gpu_layers"]) / shape.layers,
            np.array([gpu_step]),
            gpu_prefill,
            weights_read_gb=weights,
            kv_read_gb_per_sequence=kv_gb_per_token(shape) * (run["pp"] + output / 2),
            active_params=shape.parameters_b * 1e9 * active_fraction(shape),
            input_tokens=int(run["pp"]),
            batch=np.array([float(sequences)]),
            vcpus=HOST_VCPUS,
            host=host,
            output_read_gb=output_gb,
        )
        out.append(output / (prefill + output * float(decode[0]) / sequences))
    return out


def measured(run: dict[str, Any]) -> float:
    return float(run["pl"]) * run["tg"] / (run["t_pp"] + run["t_tg"])


def fit(snapshot: CatalogSnapshot, runs: list[dict[str, Any]]) -> HostFigures:
    """Host figures minimising the squared log error over ``runs`` (a grid search)."""
    grid_bw = np.geomspace(1.0, 16.0, 29)
    grid_fl = np.geomspace(0.01, 0.2, 29)
    grid_cp = np.geomspace(2.0, 64.0, 21)
    truth = np.log([measured(r) for r in runs])
    best: tuple[float, HostFigures] | None = None
    for bw, fl, cp in itertools.product(grid_bw, grid_fl, grid_cp):
        host = HostFigures(float(bw), float(fl), float(cp), "fit")
        loss = float(np.sum((np.log(predict(snapshot, runs, host)) - truth) ** 2))
        if best is None or loss < best[0]:
            best = (loss, host)
    assert best is not None
    return best[1]


def main() -> None:
    kinds = {kind: tuple(records) for kind, records in seed_records()}
    snapshot = CatalogSnapshot(**kinds)
    runs = _runs()
    fitted = fit(snapshot, runs)
    held_out: dict[int, float] = {}
    held_figures: dict[int, HostFigures] = {}
    for ngl in sorted({int(r["n_gpu_layers"]) for r in runs}):
        train = [r for r in runs if r["n_gpu_layers"] != ngl]
        test_index = [i for i, r in enumerate(runs) if r["n_gpu_layers"] == ngl]
        figures = fit(snapshot, train)
        held_figures[ngl] = figures
        for i, value in zip(
            test_index, predict(snapshot, [runs[i] for i in test_index], figures), strict=True
        ):
            held_out[i] = value
    prior = predict(snapshot, runs, PRIOR_HOST)
    shipped = predict(snapshot, runs, HOST)
    rows = []
    for i, run in enumerate(runs):
        truth = measured(run)
        rows.append(
            {
                "gpu_layers": run["n_gpu_layers"],
                "sequences": run["pl"],
                "measured_tokens_per_s": round(truth, 1),
                "prior_tokens_per_s": round(prior[i], 1),
                "prior_error_pct": round(100 * (prior[i] / truth - 1), 1),
                "held_out_tokens_per_s": round(held_out[i], 1),
                "held_out_error_pct": round(100 * (held_out[i] / truth - 1), 1),
                "planner_tokens_per_s": round(shipped[i], 1),
                "planner_error_pct": round(100 * (shipped[i] / truth - 1), 1),
            }
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()

    def figures(h: HostFigures) -> dict[str, float]:
        return {
            "bandwidth_gbps_per_vcpu": round(h.bandwidth_gbps_per_vcpu, 3),
            "tflops_per_vcpu": round(h.tflops_per_vcpu, 4),
            "copy_gbps": round(h.copy_gbps, 2),
        }

    result = {
        "benchmark": "llamacpp_partial_offload",
        "commit": commit,
        "source": str(SOURCE.relative_to(RESULTS.parent.parent)),
        "host_vcpus": HOST_VCPUS,
        "prior_host": figures(PRIOR_HOST),
        "fitted_host": figures(fitted),
        "planner_host": figures(HOST),
        "held_out_fits": {str(k): figures(v) for k, v in held_figures.items()},
        "rows": rows,
    }
    (RESULTS / "llamacpp_partial_offload.json").write_text(
        json.dumps(result, indent=1) + "\n", encoding="utf-8"
    )
    (RESULTS / "llamacpp_partial_offload.md").write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))


def _markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]

    def within(key: str) -> str:
        inside = sum(abs(r[key]) <= 20 for r in rows)
        return f"{inside} of {len(rows)}"

    lines = [
        "# Partial GPU offload: the planner's split model against measured -ngl runs",
        "",
        f"Commit {result['commit']}. Planner arithmetic over {result['source']}",
        "(llama-batched-bench, 8B Q4_K_M of Llama-3.1-8B shape, random weights: speed only;",
        "one H200, 16 host threads; 128 prompt + 32 output tokens a sequence). The GPU part is",
        "the planner's all-on-GPU prediction of the setting (calibrated by the seed catalog's",
        "full-offload runs); the CPU part the host roofline of planner/offload.py, 16 vCPUs.",
        "",
        "Host figures per vCPU (GB/s read, TFLOPS, host->GPU copy GB/s):",
        f"prior {result['prior_host']}, fitted to all 9 runs {result['fitted_host']}, "
        f"in the planner {result['planner_host']};",
        f"fitted with each -ngl left out: {result['held_out_fits']}.",
        "",
        "| -ngl of 32 | sequences | measured tok/s | prior | error | held out | error "
        "| planner | error |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['gpu_layers']} | {r['sequences']} | {r['measured_tokens_per_s']:.1f} | "
            f"{r['prior_tokens_per_s']:.1f} | {r['prior_error_pct']:+.0f} % | "
            f"{r['held_out_tokens_per_s']:.1f} | {r['held_out_error_pct']:+.0f} % | "
            f"{r['planner_tokens_per_s']:.1f} | {r['planner_error_pct']:+.0f} % |"
        )
    lines += [
        "",
        f"Within 20 %: prior {within('prior_error_pct')}, held out (each -ngl predicted from "
        f"the other two) {within('held_out_error_pct')}, planner (fitted to all 9) "
        f"{within('planner_error_pct')}.",
        "",
        "Caveats: the runs' files have a 49,152-token vocabulary where the catalog's Llama-3.1-8B",
        "has 128,256: the split is computed for the files' shape (4 % fewer weights, a smaller",
        "output layer), the GPU part is the catalog model's prediction; the",
        "host figures come from one machine's 16 threads and transfer to other hosts per vCPU, an",
        "assumption no run here checks. The split keeps the output layer on the host (llama.cpp",
        "moves it only past the block count; bench/results/gpu_serve_cli.md). Before it did, the",
        "-ngl 24 runs were over-predicted by +15..+18 % fitted and +19..+28 % held out, and 6 of 9",
        "held-out runs were within 20 %.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
