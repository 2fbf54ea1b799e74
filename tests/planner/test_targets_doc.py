"""docs/targets.md is the Targets schema rendered: a changed field fails here until the doc is
regenerated with `python scripts/gen_targets_doc.py`."""

from __future__ import annotations

from pathlib import Path

from quantplan.planner.targets import Targets
from quantplan.planner.targets_doc import render_targets_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "targets.md"


def test_targets_reference_is_current() -> None:
    assert DOC.read_text() == render_targets_reference(), (
        "docs/targets.md is stale: run `python scripts/gen_targets_doc.py`"
    )


def test_reference_lists_every_field_with_its_default() -> None:
    text = render_targets_reference()
    for section, info in Targets.model_fields.items():
        model = info.annotation
        if section == "model" or not hasattr(model, "model_fields"):
            continue
        for name in model.model_fields:
            assert f"| `{name}` |" in text, f"{section}.{name}"
    assert "| `peak_to_mean` | number | >= 1, <= 1,000 | `2.0` | `--peak-to-mean` |" in text
