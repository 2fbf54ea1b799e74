"""Rewrite docs/targets.md from the Targets schema (run after changing planner/targets.py)."""

from __future__ import annotations

from pathlib import Path

from quantplan.planner.targets_doc import render_targets_reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "targets.md"

if __name__ == "__main__":
    DOC.write_text(render_targets_reference())
    print(f"wrote {DOC}")
