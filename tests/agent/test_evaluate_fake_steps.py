"""The evaluation's engine runs around their steps, with the steps faked: what is cached by
what key, and what a step is asked (toolchains.fake.FakeStepRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantplan.agent.evaluate.engines import EvalSettings, evaluation_windows, vllm_positions
from quantplan.agent.model_source import resolve_model
from quantplan.agent.toolchains import use_step_runner
from quantplan.agent.toolchains.fake import FakeStepRunner, StepCall

SETTINGS = EvalSettings(num_windows=2, window_length=8, top_k=3)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))


def _model(directory: Path, weights: bytes) -> Path:
    directory.mkdir()
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(weights)
    return directory


def _tokenize(call: StepCall) -> dict[str, Any]:
    n, length = call.request["num_windows"], call.request["window_length"]
    return {"windows": [[i] * length for i in range(n)], "vocab_size": 100}


def _logprobs(call: StepCall) -> dict[str, Any]:
    position = {"target_logprob": -1.0, "top_ids": [1, 2, 3], "top_logprobs": [-1.0, -2.0, -3.0]}
    return {
        "windows": [[position] * len(window) for window in call.request["windows"]],
        "load_seconds": 1.0,
        "score_seconds": 2.0,
        "peak_rss_mb": 10.0,
    }


def test_windows_are_tokenized_once_per_model_content(tmp_path: Path) -> None:
    runner = FakeStepRunner({"tokenize_windows": _tokenize})
    first = resolve_model(str(_model(tmp_path / "a", b"\0" * 64)))
    same_content = resolve_model(str(_model(tmp_path / "b", b"\0" * 64)))
    other = resolve_model(str(_model(tmp_path / "c", b"\1" * 64)))
    with use_step_runner(runner):
        windows = evaluation_windows(first, SETTINGS)
        assert evaluation_windows(same_content, SETTINGS) == windows
        evaluation_windows(other, SETTINGS)
        evaluation_windows(first, SETTINGS.model_copy(update={"num_windows": 3}))
    assert windows == [[0] * 8, [1] * 8]
    # The held-out side of the text, in the tokenizer of the model asked about.
    assert [call.request["model_dir"] for call in runner.calls] == [
        str(tmp_path / "a"),
        str(tmp_path / "c"),
        str(tmp_path / "a"),
    ]
    assert all(call.toolchain.name == "llmcompressor" for call in runner.calls)


def test_vllm_logprobs_are_cached_by_identity_windows_and_top_k(tmp_path: Path) -> None:
    runner = FakeStepRunner({"vllm_logprobs": _logprobs})
    windows = [[1, 2, 3], [4, 5, 6]]
    with use_step_runner(runner):
        positions = vllm_positions(tmp_path, "artifact-1", windows, SETTINGS)
        assert vllm_positions(tmp_path, "artifact-1", windows, SETTINGS) == positions
        vllm_positions(tmp_path, "artifact-2", windows, SETTINGS)
        vllm_positions(tmp_path, "artifact-1", [[1, 2, 3]], SETTINGS)
        vllm_positions(tmp_path, "artifact-1", windows, SETTINGS.model_copy(update={"top_k": 5}))
    assert len(positions) == 6 and positions[0].top_ids == [1, 2, 3]
    assert runner.steps() == ["vllm_logprobs"] * 4
    assert runner.calls[0].request == {
        "model_dir": str(tmp_path),
        "windows": windows,
        "top_k": 3,
        "dtype": "bfloat16",
    }
    assert runner.calls[0].toolchain.name == "vllm-cpu"
