"""The profile matrix: one cell's failure stays one failed row, results reach the catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from stub_engine import CPU, StubEngine

import quantplan.agent.profile as profile_module
from quantplan.agent.benchmark.recording import host_hardware_record
from quantplan.agent.benchmark.runner import BenchPlan, benchmark_artifact
from quantplan.agent.benchmark.workload import Workload
from quantplan.agent.cli_profile import instance_price, model_shape, rows_table
from quantplan.agent.profile import (
    MatrixCell,
    ModelShape,
    ProfileContext,
    ProfileRow,
    add_latency_reduction,
    run_profile,
)
from quantplan.agent.serve.errors import InvalidArtifactError
from quantplan.catalog.db import open_catalog
from quantplan.catalog.models import Profile, Run
from quantplan.catalog.reports import record_report
from quantplan.catalog.snapshot import load_snapshot
from quantplan.errors import UnknownNameError

SHAPE = ModelShape(name="SmolLM2-135M-Instruct", layers=30, kv_heads=3, head_dim=64, parameters=0)


@pytest.fixture
def catalog(seeded_sqlite_url: str) -> Engine:
    return open_catalog(seeded_sqlite_url)


def context(**overrides: object) -> ProfileContext:
    values: dict[str, object] = {
        "shape": SHAPE,
        "plan": BenchPlan(
            workload=Workload(input_tokens=16, output_tokens=8), max_concurrency=2, num_requests=4
        ),
        "hardware": CPU,
        "hardware_record": host_hardware_record(CPU, 20.0),
        "bandwidth_gbps": 20.0,
        "bandwidth_source": "test",
        "price_per_hour": 0.09,
        "price_source": "test price",
    }
    values.update(overrides)
    return ProfileContext(**values)  # type: ignore[arg-type]


def row(scheme: str, e2e: float | None, status: str = "succeeded") -> ProfileRow:
    return ProfileRow(
        scheme=scheme, engine="vllm", status=status, run_id=scheme, single_stream_e2e_ms=e2e
    )  # type: ignore[arg-type]


def test_latency_reduction_is_against_the_bf16_baseline() -> None:
    rows = [row("bf16", 200.0), row("gptq-w4a16-g64", 150.0), row("awq-w4a16-g64", None, "failed")]
    add_latency_reduction(rows)
    assert rows[0].latency_reduction_pct == 0.0
    assert rows[1].latency_reduction_pct == pytest.approx(25.0)
    assert rows[2].latency_reduction_pct is None


def test_a_failing_cell_is_a_failed_run_and_the_others_go_on(
    catalog: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model_dir / "model.safetensors").write_bytes(b"\0" * 64)
    # The stub server stands in for the engine; everything else (manager, protocol, cost and
    # roofline math, catalog reports) is the real code path.
    monkeypatch.setattr(profile_module, "get_engine", lambda name: StubEngine())
    monkeypatch.setattr(
        profile_module,
        "benchmark_artifact",
        lambda engine, artifact, plan, **kw: benchmark_artifact(
            engine, artifact, plan, python=Path(sys.executable), **kw
        ),
    )
    monkeypatch.setattr("quantplan.agent.serve.manager.detect_host", lambda: CPU)

    def artifact_for(cell: MatrixCell) -> Path:
        if cell.scheme == "gptq-w4a16-g64":
            raise InvalidArtifactError("the GPTQ artifact is missing")
        return model_dir

    cells = [
        MatrixCell(scheme="bf16", engine="vllm", method="baseline"),
        MatrixCell(scheme="gptq-w4a16-g64", engine="vllm", method="gptq"),
    ]
    rows = run_profile(
        cells,
        context(),
        artifact_for=artifact_for,
        quality_for=lambda cell, path: 0.0,
        record=lambda report: record_report(catalog, report),
        progress=lambda line: None,
    )
    ok, failed = rows
    assert ok.status == "succeeded" and ok.output_tokens_per_s and ok.output_tokens_per_s > 0
    assert ok.usd_per_million_output is not None and ok.fraction_of_roofline is not None
    assert ok.latency_reduction_pct == 0.0
    assert failed.status == "failed" and failed.error_kind == "bad_input"
    with Session(catalog) as session:
        failed_run = session.get(Run, failed.run_id)
        profiles = session.exec(select(Profile).where(Profile.run_id == ok.run_id)).all()
        none_for_failed = session.exec(select(Profile).where(Profile.run_id == failed.run_id)).all()
    assert failed_run is not None and failed_run.status == "failed"
    assert none_for_failed == []
    assert len(profiles) == 1 and profiles[0].basis == "measured"
    assert profiles[0].details["roofline"]["peak_bandwidth_source"] == "test"
    table = rows_table(rows, "t")
    assert table.row_count == 2


def test_model_shape_and_instance_price(catalog: Engine, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "num_attention_heads": 9,
                "num_hidden_layers": 30,
                "num_key_value_heads": 3,
                "hidden_size": 576,
            }
        )
    )
    shape = model_shape("m", tmp_path)
    assert (shape.layers, shape.kv_heads, shape.head_dim) == (30, 3, 64)
    snapshot = load_snapshot(catalog)
    price, source = instance_price(snapshot, "aws/c7i.large/us-east-1")
    assert price > 0 and "c7i.large" in source
    with pytest.raises(UnknownNameError) as caught:
        instance_price(snapshot, "aws/c7i.larg/us-east-1")
    assert caught.value.hint and "c7i.large" in caught.value.hint


def test_the_quality_delta_is_read_from_the_artifacts_own_row() -> None:
    """A GGUF quality table holds its F16 reference (also an artifact, no delta) first."""
    from quantplan.agent.evaluate.api import QualityRow, QualityTable
    from quantplan.agent.profile import quality_delta_of

    table = QualityTable(
        model="m",
        model_sha256="0" * 64,
        eval_set="pydoc",
        tokens_per_model=100,
        notes=[],
        rows=[
            QualityRow(scheme="gguf-f16", engine="llama.cpp", artifact_id="f16", perplexity=18.5),
            QualityRow(
                scheme="gguf-q8_0",
                engine="llama.cpp",
                artifact_id="q8",
                perplexity=18.6,
                perplexity_delta_pct=0.57,
            ),
        ],
    )
    assert quality_delta_of(table, "q8") == 0.57
    assert quality_delta_of(table, "missing") is None
