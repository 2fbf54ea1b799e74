"""Calibration and evaluation text: where it comes from, how it is split, and whether it suffices.

The default corpus is offline and on every Python install: the standard library's
``pydoc_data.topics`` (79 reference topics, about 465 KB of English prose). Topics are assigned
to the calibration or the evaluation side by a hash of their text, so the two sides never share a
document, whatever sample counts are asked for. User data is a ``.txt`` file (documents separated
by blank lines) or a ``.jsonl`` file (one ``{"text": ...}`` object per line).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.errors import QuantplanError

DEFAULT_CORPUS = "pydoc-topics"
# One topic in five (by name hash) is held out for evaluation; the rest calibrates.
EVAL_SHARE_MODULUS = 5


class CalibrationError(QuantplanError):
    """The calibration or evaluation text is missing, empty, overlapping or too small."""


class TextSet(BaseModel):
    """A list of documents with a stable fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Where the documents came from, e.g. 'pydoc-topics:calibration'.")
    documents: tuple[str, ...] = Field(description="Plain-text documents, in a stable order.")

    @property
    def characters(self) -> int:
        return sum(len(document) for document in self.documents)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for document in self.documents:
            digest.update(hashlib.sha256(document.encode()).digest())
        return digest.hexdigest()[:16]


class CalibrationSettings(BaseModel):
    """How many calibration samples of how many tokens, taken from which text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        default=DEFAULT_CORPUS,
        description="'pydoc-topics' (offline default) or a path to a .txt or .jsonl file.",
    )
    num_samples: int = Field(default=64, ge=1, le=4096, description="Calibration samples.")
    sequence_length: int = Field(default=256, ge=16, le=8192, description="Tokens per sample.")


def _is_eval_document(text: str) -> bool:
    # By content, not topic name: a few topics share one text, and must land on one side.
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % EVAL_SHARE_MODULUS == 0


def default_split(side: Literal["calibration", "evaluation"]) -> TextSet:
    """One side of the pydoc topics corpus; the sides are disjoint by construction."""
    from pydoc_data.topics import topics

    want_eval = side == "evaluation"
    unique = dict.fromkeys(topics[name].strip() for name in sorted(topics))
    documents = tuple(text for text in unique if _is_eval_document(text) == want_eval)
    return TextSet(name=f"{DEFAULT_CORPUS}:{side}", documents=documents)


def load_text_file(path: Path) -> TextSet:
    """Documents from a user .txt (blank-line separated) or .jsonl ({"text": ...}) file."""
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CalibrationError(
            f"cannot read {path}: {error}", hint="use a UTF-8 .txt or .jsonl file"
        ) from None
    if path.suffix == ".jsonl":
        documents = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise CalibrationError(
                    f"{path}:{number} is not a JSON object with a 'text' field",
                    hint='write one {"text": "..."} object per line',
                ) from None
            if isinstance(text, str) and text.strip():
                documents.append(text.strip())
    elif path.suffix in {".txt", ".md", ""}:
        documents = [block.strip() for block in raw.split("\n\n") if block.strip()]
    else:
        raise CalibrationError(
            f"unsupported calibration file type {path.suffix!r}", hint="use .txt or .jsonl"
        )
    return TextSet(name=str(path), documents=tuple(documents))


def calibration_text(settings: CalibrationSettings, evaluation: TextSet) -> TextSet:
    """The calibration documents for ``settings``, checked before any model is loaded.

    Refuses an empty set, one that overlaps the evaluation set, and one that cannot possibly
    yield ``num_samples * sequence_length`` tokens: a token covers at least one character, so
    fewer characters than tokens needed is a certain failure. The exact token count is checked
    again after tokenization, still before the model loads.
    """
    if settings.source == DEFAULT_CORPUS:
        text = default_split("calibration")
    else:
        text = load_text_file(Path(settings.source).expanduser())
    if not text.documents:
        raise CalibrationError(
            f"calibration set {text.name} is empty", hint="give a file with some text in it"
        )
    shared = set(text.documents) & set(evaluation.documents)
    if shared:
        raise CalibrationError(
            f"{len(shared)} document(s) appear in both the calibration and evaluation sets",
            hint="calibrate and evaluate on different text, or quality numbers are optimistic",
        )
    needed = settings.num_samples * settings.sequence_length
    if text.characters < needed:
        raise CalibrationError(
            f"calibration set {text.name} has {text.characters} characters, fewer than the "
            f"{needed} tokens asked for ({settings.num_samples} samples x "
            f"{settings.sequence_length} tokens)",
            hint="add text, or lower --samples / --sequence-length",
        )
    return text
