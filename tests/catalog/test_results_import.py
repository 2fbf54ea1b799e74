"""Other tools' benchmark results as measured profiles (`quantplan catalog import-results`).

The fixtures are files the tools wrote on this project's machine: `vllm bench serve
--save-result` against the default model served by vLLM on CPU (8 prompts of 64 tokens, 16 out,
2 at a time), and `llama-batched-bench --output-format jsonl` on the default model's GGUF at
1, 2 and 4 sequences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantplan.catalog.results_import import RunSetting, profiles_from_results
from quantplan.errors import QuantplanError

FIXTURES = Path(__file__).parent / "fixtures"
VLLM = FIXTURES / "vllm-bench-serve.json"
BATCHED = FIXTURES / "llama-batched-bench.jsonl"
SETTING = RunSetting(
    model="SmolLM2-135M-Instruct",
    scheme="bf16",
    engine="vllm",
    hardware="Xeon-SapphireRapids",
    hardware_count=4,
)


def test_a_vllm_bench_serve_result_is_one_served_profile() -> None:
    (profile,) = profiles_from_results("vllm-bench-serve", VLLM, SETTING)
    raw = json.loads(VLLM.read_text())
    assert (profile.concurrency, profile.input_tokens, profile.output_tokens) == (2, 64, 16)
    assert profile.output_tokens_per_s == raw["output_throughput"]
    assert profile.ttft_p50_ms == raw["median_ttft_ms"]
    assert profile.ttft_p95_ms == raw["p95_ttft_ms"] and profile.itl_p95_ms == raw["p95_itl_ms"]
    assert profile.request_rate is None  # all sent at once, two at a time: a closed loop
    assert profile.error_rate == 0.0 and profile.basis == "measured"
    assert profile.details["served"] is True
    assert profile.details["concurrency_from"] == "--max-concurrency"
    assert profile.run_id == profiles_from_results("vllm-bench-serve", VLLM, SETTING)[0].run_id


def test_an_open_loop_run_gets_its_mean_in_flight_requests_by_little_s_law(tmp_path: Path) -> None:
    raw = json.loads(VLLM.read_text())
    raw.update(max_concurrency=None, request_rate=2.0, failed=2)
    path = tmp_path / "open.json"
    path.write_text(json.dumps(raw))
    (profile,) = profiles_from_results("vllm-bench-serve", path, SETTING)
    in_flight = raw["request_throughput"] * raw["mean_e2el_ms"] / 1000
    assert profile.concurrency == round(in_flight) and profile.request_rate == 2.0
    assert profile.error_rate == pytest.approx(2 / 10)
    assert profile.run_id != profiles_from_results("vllm-bench-serve", VLLM, SETTING)[0].run_id


def test_llama_batched_bench_lines_are_engine_loop_profiles_per_sequence_count() -> None:
    setting = SETTING.model_copy(update={"scheme": "gguf-q4_k_m", "engine": "llama.cpp"})
    profiles = profiles_from_results("llama-batched-bench", BATCHED, setting)
    lines = [json.loads(line) for line in BATCHED.read_text().splitlines() if line.strip()]
    assert [p.concurrency for p in profiles] == [1, 2, 4]
    for profile, line in zip(profiles, lines, strict=True):
        # Sequences x generated tokens over the whole cycle, prompt processing included.
        assert profile.output_tokens_per_s == pytest.approx(line["pl"] * line["tg"] / line["t"])
        assert (profile.input_tokens, profile.output_tokens) == (64, 16)
        assert profile.details["served"] is False
    assert len({p.run_id for p in profiles}) == 1


@pytest.mark.parametrize(
    ("tool", "content", "error"),
    [
        ("vllm-bench-serve", "not json", "not valid JSON"),
        ("vllm-bench-serve", '{"completed": 3}', "not a `vllm bench serve --save-result` file"),
        ("vllm-bench-serve", '{"output_throughput": 1, "completed": 0}', "no request completed"),
        (
            "vllm-bench-serve",
            '{"output_throughput": "fast", "completed": 1, "request_throughput": 1, '
            '"total_input_tokens": 1, "total_output_tokens": 1, "num_prompts": 1}',
            "'output_throughput' is 'fast', not a number",
        ),
        ("llama-batched-bench", "", "holds no result line"),
        ("llama-batched-bench", '{"pp": 1, "tg": 1}\n', "needs pp, tg, pl and t"),
        ("llama-batched-bench", '{"pp": 1, "tg": 1, "pl": 1, "t": 0}\n', "must be positive"),
    ],
)
def test_a_file_that_is_not_the_tool_s_says_what_is_wrong(
    tmp_path: Path, tool: str, content: str, error: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(QuantplanError, match=error):  # ResultsFileError, or the JSON reader's
        profiles_from_results(tool, path, SETTING)


def _quantplan(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "quantplan", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_import_results_through_the_command_line(seeded_sqlite_url: str) -> None:
    setting = ["--model", "SmolLM2-135M-Instruct", "--hardware", "Xeon-SapphireRapids"]
    setting += ["--count", "4"]
    first = _quantplan(
        "catalog", "import-results", str(VLLM), "--tool", "vllm-bench-serve",
        "--scheme", "bf16", "--engine", "vllm", *setting, db=seeded_sqlite_url,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "vllm-bench-serve.json: 1 profile(s) added" in first.stdout
    again = _quantplan(
        "catalog", "import-results", str(VLLM), "--tool", "vllm-bench-serve",
        "--scheme", "bf16", "--engine", "vllm", *setting, db=seeded_sqlite_url,
    )  # fmt: skip
    assert "0 profile(s) added, 1 already present" in again.stdout
    loop = _quantplan(
        "catalog", "import-results", str(BATCHED), "--tool", "llama-batched-bench",
        "--scheme", "gguf-q4_k_m", *setting, db=seeded_sqlite_url,
    )  # fmt: skip
    assert "3 profile(s) added" in loop.stdout, loop.stderr
    listed = _quantplan("catalog", "list", "--kind", "profiles", "--json", db=seeded_sqlite_url)
    sources = [row["source"] for row in json.loads(listed.stdout)["rows"]]
    assert sources.count("llama-batched-bench results: llama-batched-bench.jsonl") == 3

    unknown = _quantplan(
        "catalog", "import-results", str(VLLM), "--tool", "vllm-bench-serve",
        "--scheme", "bf16", "--engine", "vllm", "--model", "Llama-3.1-8b",
        "--hardware", "Xeon-SapphireRapids", db=seeded_sqlite_url,
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown model 'Llama-3.1-8b'" in unknown.stderr
    no_engine = _quantplan(
        "catalog", "import-results", str(VLLM), "--tool", "vllm-bench-serve",
        "--scheme", "bf16", *setting, db=seeded_sqlite_url,
    )  # fmt: skip
    assert no_engine.returncode == 2 and "--engine" in no_engine.stderr
    assert "Traceback" not in unknown.stderr + no_engine.stderr
