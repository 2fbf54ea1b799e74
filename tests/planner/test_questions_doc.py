"""docs/questions.md holds every question of its generator with the command it ran and that
command's exit status; refresh it with `python scripts/gen_questions_doc.py`."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    """scripts/gen_questions_doc.py, a script rather than a package module."""
    spec = importlib.util.spec_from_file_location(
        "gen_questions", ROOT / "scripts/gen_questions_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_question_is_answered_with_its_command_and_status() -> None:
    module = _generator()
    text = (ROOT / "docs" / "questions.md").read_text()
    for question, _why, args in module.QUESTIONS:
        assert question in text
        block = text.split(f"$ quantplan plan {args}\n", 1)[1].split("```", 1)[0]
        status = re.search(r"\$ echo \$\?\n(\d+)\n", block)
        assert status is not None and status.group(1) in {"0", "3"}, question
        assert "Traceback" not in block and "assumed:" in block


def test_the_answers_are_what_this_checkout_prints() -> None:
    """The document is the planner's current output, not an older one: a planner or seed
    change that alters an answer must regenerate it (the five plans run in about 5 s)."""
    committed = (ROOT / "docs" / "questions.md").read_text()
    assert _generator().render() == committed, "run: python scripts/gen_questions_doc.py"
