"""Fixtures for the cluster tests: measurement reports to send, and database URLs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from ray_fixtures import RayTestCluster, start_test_cluster, stop_test_cluster

from quantplan.catalog.records import ProfileRecord
from quantplan.catalog.reports import MeasurementReport, RunInfo


def benchmark_report(run_id: str | None = None, tokens_per_s: float = 42.0) -> MeasurementReport:
    """A succeeded benchmark run of the default model with one measured profile row."""
    run_id = run_id or f"test-{uuid.uuid4().hex[:12]}"
    return MeasurementReport(
        run=RunInfo(
            run_id=run_id,
            kind="benchmark",
            status="succeeded",
            started_at=datetime.now(UTC),
            hardware="2 vCPU Xeon (test host)",
            tool_versions={"quantplan": "0.1.0"},
        ),
        profiles=(
            ProfileRecord(
                model="SmolLM2-135M-Instruct",
                scheme="bf16",
                engine="vllm",
                hardware="Xeon-SapphireRapids",
                input_tokens=128,
                output_tokens=64,
                concurrency=1,
                output_tokens_per_s=tokens_per_s,
                basis="measured",
                source=f"cluster test {run_id}",
            ),
        ),
    )


@pytest.fixture
def make_report():
    return benchmark_report


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayTestCluster]:
    test_cluster = start_test_cluster(tmp_path_factory.mktemp("raycluster"))
    try:
        yield test_cluster
    finally:
        stop_test_cluster(test_cluster)
