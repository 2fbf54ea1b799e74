"""The benchmark workload: the same prompts and token counts for every engine.

Prompts are cut from the evaluation side of the default text split (the standard library's
``pydoc_data.topics``, held out from calibration; see ``quantplan.agent.quantize.calibration``),
in a fixed order, so two runs with the same parameters send the same text. Each prompt opens with
a tag naming its run and its place in it, so no prompt shares a prefix with another, in this run
or an earlier one against the same server: a prefix cache (vLLM's, llama-server's slots) never
answers a benchmark's prompt, and every level pays for its own prefills. Prompt length is set in
characters; the server's own token count (usage) is what the metrics report.
"""

from __future__ import annotations

import random
import secrets

from pydantic import BaseModel, ConfigDict, Field

# English prose averages about four characters per token for Llama-style BPE vocabularies.
CHARS_PER_TOKEN = 4


class Workload(BaseModel):
    """What each request asks for."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: int = Field(default=128, ge=1, le=32768, description="Target prompt length")
    output_tokens: int = Field(default=64, ge=1, le=32768, description="Tokens to generate")
    ignore_eos: bool = Field(
        default=True,
        description="Ask the engine to keep generating past end-of-sequence, so every request "
        "produces exactly output_tokens (engines that do not know the flag ignore it)",
    )
    temperature: float = Field(default=0.0, ge=0)
    seed: int = Field(default=0, description="Seed for prompt order and Poisson arrivals")


def _prose_paragraphs() -> list[str]:
    from quantplan.agent.quantize.calibration import default_split

    paragraphs: list[str] = []
    for document in default_split("evaluation").documents:
        for block in document.split("\n\n"):
            text = " ".join(block.split())
            if len(text) >= 80:
                paragraphs.append(text)
    return paragraphs


def run_tag() -> str:
    """A fresh tag for one run's prompts (six hex digits)."""
    return secrets.token_hex(3)


def make_prompts(workload: Workload, count: int, *, run: str | None = None) -> list[str]:
    """``count`` prompts of about ``workload.input_tokens`` tokens each: ``"[RUN-I] "`` and
    text that depends on the seed alone. ``run`` defaults to a fresh :func:`run_tag`."""
    if count < 0:
        raise ValueError("count must be >= 0")
    run = run_tag() if run is None else run
    paragraphs = _prose_paragraphs()
    random.Random(workload.seed).shuffle(paragraphs)
    target_chars = workload.input_tokens * CHARS_PER_TOKEN
    prompts: list[str] = []
    cursor = 0
    while len(prompts) < count:
        tag = f"[{run}-{len(prompts)}] "
        pieces: list[str] = []
        size = len(tag)
        while size < target_chars:
            piece = paragraphs[cursor % len(paragraphs)]
            cursor += 1
            pieces.append(piece)
            size += len(piece) + 1
        prompts.append((tag + " ".join(pieces))[:target_chars])
    return prompts
