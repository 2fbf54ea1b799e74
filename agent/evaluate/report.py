"""Turn a quality table into a catalog report (basis ``measured``, full provenance)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from quantplan.agent.evaluate.api import QualityTable
from quantplan.agent.toolchains.steps import without_stderr_tail


def quality_report(
    table: QualityTable,
    *,
    started_at: datetime,
    hardware: str,
    tool_versions: dict[str, str],
    known_schemes: set[str],
    run_id: str | None = None,
) -> tuple[Any, list[str]]:
    """A MeasurementReport of the table's measured rows, and the schemes left out (unknown to
    the catalog, or rows without numbers)."""
    from quantplan.catalog.records import QualityRecord
    from quantplan.catalog.reports import MeasurementReport, RunInfo

    run_id = run_id or f"evaluate-{uuid.uuid4().hex[:16]}"
    records = []
    skipped = []
    for row in table.rows:
        if row.error is not None or row.perplexity is None:
            reason = without_stderr_tail(row.error) if row.error else "no numbers"
            skipped.append(f"{row.scheme} ({reason})")
            continue
        if row.scheme not in known_schemes:
            skipped.append(f"{row.scheme} (scheme not in the catalog)")
            continue
        records.append(
            QualityRecord(
                model=table.model,
                scheme=row.scheme,
                eval_set=table.eval_set,
                perplexity=row.perplexity,
                baseline_perplexity=row.baseline_perplexity,
                perplexity_delta_pct=row.perplexity_delta_pct,
                kl_divergence=row.kl_divergence,
                top1_agreement=row.top1_agreement,
                bits_per_weight=row.bits_per_weight,
                compression_ratio=row.compression_ratio,
                engine=row.engine,
                basis="measured",
                source=f"quantplan evaluate, run {run_id}",
                run_id=run_id,
                notes=" ".join(table.notes),
                details={
                    "artifact_id": row.artifact_id,
                    "model_sha256": table.model_sha256,
                    "kl_method": row.kl_method,
                    "size_bytes": row.size_bytes,
                    "layer_error": row.layer_error,
                    "tokens": table.tokens_per_model,
                },
            )
        )
    run = RunInfo(
        run_id=run_id,
        kind="evaluate",
        status="succeeded",
        started_at=started_at,
        hardware=hardware,
        tool_versions=tool_versions,
    )
    return MeasurementReport(run=run, quality=tuple(records)), skipped
