"""`quantplan catalog gaps --kind quality`: which (model, scheme) pairs have their own figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from quantplan.catalog.gaps import COMMON_SCHEMES, quality_gaps, same_model_share
from quantplan.catalog.seeding import seed_records

QUANTPLAN = [sys.executable, "-m", "quantplan"]


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "120"}
    return subprocess.run([*QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=120)


def test_every_model_and_common_scheme_is_listed_with_its_evidence(seeded_sqlite_url: str) -> None:
    result = run("catalog", "gaps", "--kind", "quality", "--json", db=seeded_sqlite_url)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    payload = json.loads(result.stdout)
    seeds = dict(seed_records())
    # SmolLM2-135M's 576-wide layers take no 128-weight groups: its two g128 pairs cannot be
    # made (the project measured g64), so no plan holds them and the share leaves them out.
    assert payload["pairs"] == len(seeds["models"]) * len(COMMON_SCHEMES) - 2
    pairs = {(r["model"], r["scheme"]): r for r in payload["rows"]}
    fp8_70b = pairs[("Llama-3.1-70B", "fp8-w8a8")]
    assert fp8_70b["evidence"] == "published" and fp8_70b["metrics"] == ["recovery:openllm-v1"]
    assert pairs[("Qwen2.5-32B", "int8-w8a8")]["evidence"] == "none"
    for scheme in ("gptq-w4a16-g128", "awq-w4a16-g128"):
        assert pairs[("SmolLM2-135M-Instruct", scheme)]["evidence"] == "cannot be made"
    assert pairs[("SmolLM2-135M-Instruct", "gguf-q4_k_m")]["evidence"] == "measured"
    own = sum(r["evidence"] in ("measured", "published") for r in payload["rows"])
    assert payload["same_model_share"] == round(own / payload["pairs"], 4)

    missing = run(
        "catalog", "gaps", "--missing", "--json", "-m", "Qwen2.5-7B", db=seeded_sqlite_url
    )
    rows = json.loads(missing.stdout)["rows"]
    assert rows and all(r["model"] == "Qwen2.5-7B" and r["evidence"] == "none" for r in rows)
    assert "fp8-w8a8" not in {r["scheme"] for r in rows}  # it has its own published figure

    table = run("catalog", "gaps", db=seeded_sqlite_url)
    assert table.returncode == 0 and "Qwen2.5-32B" in table.stdout and "q4_k_m" in table.stdout
    assert f"{own} of {payload['pairs']} (model, scheme) pairs" in table.stdout
    assert "2 more cannot be made" in " ".join(table.stdout.split())


def test_unknown_kind_or_model_is_one_line_with_a_hint(seeded_sqlite_url: str) -> None:
    kind = run("catalog", "gaps", "--kind", "qualty", db=seeded_sqlite_url)
    assert kind.returncode == 2 and "Traceback" not in kind.stderr
    assert (
        "no gap report for kind 'qualty'" in kind.stderr and "did you mean quality" in kind.stderr
    )
    model = run("catalog", "gaps", "--model", "Llama-3.1-8", db=seeded_sqlite_url)
    assert model.returncode == 2 and "did you mean Llama-3.1-8B" in model.stderr


def test_share_counts_only_the_models_own_figures() -> None:
    seeds = dict(seed_records())
    gaps = quality_gaps(seeds["models"], seeds["schemes"], seeds["quality"])
    share = same_model_share(gaps)
    assert 0 < share < 1
    assert same_model_share(quality_gaps(seeds["models"], seeds["schemes"], [])) == 0.0
