"""Other benchmark tools' results as measured profiles, so a user's own runs plan like ours.

Two formats are read, each as the tool writes it:

* ``vllm-bench-serve``: the JSON file of ``vllm bench serve --save-result`` (one run against an
  OpenAI-compatible server: vLLM's, llama-server, any). One profile, served. Its concurrency
  is ``--max-concurrency`` where the run had one; an open-loop run without it (a request rate)
  gets the mean requests in flight by Little's law (request throughput x mean end-to-end
  latency), and keeps the rate as ``request_rate``.
* ``llama-batched-bench``: the JSONL of ``llama-batched-bench --output-format jsonl`` (llama.cpp's
  batched decode loop, no HTTP). One profile a line, at ``pl`` sequences, measured in the
  engine loop (``served: false``): output tokens per second = sequences x generated tokens /
  (prompt + generation seconds), as quantplan files its own llama-batched-bench runs.

Neither file names the model, scheme or hardware as the catalog does, so the caller says
(:class:`RunSetting`); the names are checked against the catalog when the rows are written.
A file is read whole and validated before anything is written, and its rows carry a run id
derived from the file's content, so importing the same file twice adds nothing.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from quantplan.catalog.records import ProfileRecord, Record, first_problem
from quantplan.catalog.vocabulary import DeviceCount, Name, Text
from quantplan.errors import QuantplanError
from quantplan.inputs import parse_json, read_text, shown_path

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class RunSetting(BaseModel):
    """What a results file does not say: what ran, on what, in the catalog's names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Name
    scheme: Name
    engine: Name
    hardware: Name
    hardware_count: DeviceCount = 1
    engine_version: Name | None = None
    notes: Text = ""


class ResultsFileError(QuantplanError):
    """A results file that is not what its tool writes."""


def _optional(data: dict[str, Any], key: str, where: str) -> float | None:
    """``data[key]`` as a number, None where the file leaves it out."""
    return None if data.get(key) is None else _number(data, key, where)


def _number(data: dict[str, Any], key: str, where: str) -> float:
    """``data[key]`` as a finite number, or the file is not what its tool writes."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsFileError(
            f"{where}: {key!r} is {value!r}, not a number",
            hint="pass the file the tool wrote, unchanged",
        )
    return float(value)


def _content_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _vllm_bench_serve(
    text: str, where: str, setting: RunSetting, source: str
) -> list[dict[str, Any]]:
    data = parse_json(text, where)
    if not isinstance(data, dict) or "output_throughput" not in data:
        raise ResultsFileError(
            f"{where} is not a `vllm bench serve --save-result` file (no 'output_throughput')"
        )
    completed = _number(data, "completed", where)
    if completed < 1:
        raise ResultsFileError(f"{where}: no request completed, so nothing was measured")
    failed = _optional(data, "failed", where) or 0.0
    rate = data.get("request_rate")  # "inf" (all at once) or requests per second
    open_rate = (
        float(rate)
        if isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate)
        else None
    )
    max_concurrency = data.get("max_concurrency")
    throughput = _number(data, "request_throughput", where)
    if isinstance(max_concurrency, int) and max_concurrency >= 1:
        concurrency, derived = max_concurrency, "--max-concurrency"
    elif open_rate is not None:
        e2e_ms = _number(data, "mean_e2el_ms", where)
        concurrency = max(1, round(throughput * e2e_ms / 1000))
        derived = "Little's law: request throughput x mean end-to-end latency"
    else:  # every prompt sent at once, none held back
        concurrency = max(1, round(_number(data, "num_prompts", where)))
        derived = "--num-prompts (all sent at once)"
    total_input = _number(data, "total_input_tokens", where)
    total_output = _number(data, "total_output_tokens", where)
    row = {
        "model": setting.model,
        "scheme": setting.scheme,
        "engine": setting.engine,
        "hardware": setting.hardware,
        "hardware_count": setting.hardware_count,
        "input_tokens": max(1, round(total_input / completed)),
        "output_tokens": max(1, round(total_output / completed)),
        "concurrency": concurrency,
        "request_rate": open_rate,
        "output_tokens_per_s": _number(data, "output_throughput", where),
        "total_tokens_per_s": _optional(data, "total_token_throughput", where),
        "requests_per_s": throughput,
        "ttft_p50_ms": _optional(data, "median_ttft_ms", where),
        "ttft_p95_ms": _optional(data, "p95_ttft_ms", where),
        "itl_p50_ms": _optional(data, "median_itl_ms", where),
        "itl_p95_ms": _optional(data, "p95_itl_ms", where),
        "e2e_p50_ms": _optional(data, "median_e2el_ms", where),
        "error_rate": failed / (completed + failed),
        "basis": "measured",
        "source": source,
        "run_id": _content_id("vllm-bench-serve", text),
        "engine_version": setting.engine_version,
        "notes": setting.notes,
        "details": {
            "tool": "vllm bench serve",
            "served": True,  # against the engine's OpenAI-compatible server
            "date": data.get("date"),
            "backend": data.get("backend"),
            "served_model": data.get("model_id"),
            "num_prompts": data.get("num_prompts"),
            "request_rate": rate,
            "burstiness": data.get("burstiness"),
            "max_concurrency": max_concurrency,
            "concurrency_from": derived,
            "duration_s": data.get("duration"),
        },
    }
    return [row]


def _llama_batched_bench(
    text: str, where: str, setting: RunSetting, source: str
) -> list[dict[str, Any]]:
    rows = []
    run_id = _content_id("llama-batched-bench", text)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{where} line {number}"
        data = parse_json(line, at)
        if not isinstance(data, dict) or not {"pp", "tg", "pl", "t"} <= data.keys():
            raise ResultsFileError(
                f"{at} is not a llama-batched-bench result (needs pp, tg, pl and t)",
                hint="run llama-batched-bench with --output-format jsonl",
            )
        sequences, generated = _number(data, "pl", at), _number(data, "tg", at)
        seconds = _number(data, "t", at)
        if sequences < 1 or generated < 1 or seconds <= 0:
            raise ResultsFileError(f"{at}: pl, tg and t must be positive")
        rows.append(
            {
                "model": setting.model,
                "scheme": setting.scheme,
                "engine": setting.engine,
                "hardware": setting.hardware,
                "hardware_count": setting.hardware_count,
                "input_tokens": max(1, round(_number(data, "pp", at))),
                "output_tokens": round(generated),
                "concurrency": round(sequences),
                "output_tokens_per_s": sequences * generated / seconds,
                "total_tokens_per_s": _optional(data, "speed", at),
                "basis": "measured",
                "source": source,
                "run_id": run_id,
                "engine_version": setting.engine_version,
                "notes": setting.notes,
                "details": {
                    "tool": "llama-batched-bench",
                    "served": False,  # the engine's decode loop, no HTTP server
                    **{
                        key: data[key]
                        for key in (
                            "n_batch",
                            "n_ubatch",
                            "n_gpu_layers",
                            "n_threads",
                            "flash_attn",
                            "is_pp_shared",
                            "t_pp",
                            "t_tg",
                            "speed_tg",
                        )
                        if key in data
                    },
                },
            }
        )
    if not rows:
        raise ResultsFileError(f"{where} holds no result line")
    return rows


READERS = {"vllm-bench-serve": _vllm_bench_serve, "llama-batched-bench": _llama_batched_bench}
RESULTS_TOOLS: tuple[str, ...] = tuple(READERS)


def profiles_from_results(tool: str, path: Path, setting: RunSetting) -> list[ProfileRecord]:
    """The measured profiles in one results file of ``tool``, validated like any catalog row."""
    if tool not in READERS:
        raise QuantplanError(
            f"unknown results format {tool!r}", hint=f"one of: {', '.join(RESULTS_TOOLS)}"
        )
    where = f"results file {shown_path(path)}"
    text = read_text(path, "results file")
    source = f"{tool} results: {path.name}"[:200]
    profiles = []
    for number, row in enumerate(READERS[tool](text, where, setting, source), start=1):
        try:
            profiles.append(ProfileRecord.model_validate(row))
        except ValidationError as error:
            raise ResultsFileError(f"{where}: result {number}: {first_problem(error)}") from None
    return profiles


def import_results(
    engine: Engine, tool: str, paths: list[Path], setting: RunSetting
) -> list[tuple[str, dict[str, int]]]:
    """Import results files of ``tool`` as profiles of ``setting``, all or nothing: every file
    is read and validated first, then all rows go in one transaction."""
    from quantplan.catalog.transfer import write_parsed

    parsed = []
    for path in paths:
        rows: list[Record] = list(profiles_from_results(tool, path, setting))
        parsed.append((path.name, "profiles", rows))
    return write_parsed(engine, parsed)
