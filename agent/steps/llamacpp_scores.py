"""Step (llama-cpp toolchain): quality of GGUF files vs a reference GGUF, with llama.cpp logits.

All models are loaded at once (small here) and fed the same token windows; for each window the
reference's full next-token distribution is computed once and compared with each candidate's:
exact KL divergence over the whole vocabulary, top-1 agreement, and each model's perplexity.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from _gguf_facts import open_gguf
from _stepio import progress, run_step_main


def log_softmax(logits: Any) -> Any:
    import numpy as np

    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def window_logprobs(llm: Any, window: list[int]) -> Any:
    """Log-probabilities (positions 0..n-2 predicting tokens 1..n-1), float64."""
    import numpy as np

    llm.reset()
    llm.eval(window)
    logits = np.asarray(llm.scores[: len(window) - 1], dtype=np.float64)
    return log_softmax(logits)


def main(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from llama_cpp import Llama

    paths = [request["reference_path"], *request["candidate_paths"]]
    for path in paths:
        open_gguf(path)  # a truncated file is refused before llama.cpp touches it
    windows = request["windows"]
    context = max(len(window) for window in windows)
    started = time.monotonic()
    models = [
        Llama(
            model_path=path,
            n_ctx=context,
            n_batch=context,
            logits_all=True,
            n_threads=request["threads"],
            verbose=False,
        )
        for path in paths
    ]
    totals = [{"nll": 0.0, "kl": 0.0, "top1": 0, "tokens": 0} for _ in paths]
    for number, window in enumerate(windows, start=1):
        progress(f"window {number}/{len(windows)}", number - 1, len(windows))
        targets = np.asarray(window[1:])
        reference = window_logprobs(models[0], window)
        reference_top1 = reference.argmax(axis=-1)
        reference_probs = np.exp(reference)
        for index, llm in enumerate(models):
            logprobs = reference if index == 0 else window_logprobs(llm, window)
            total = totals[index]
            total["nll"] += float(-logprobs[np.arange(len(targets)), targets].sum())
            total["kl"] += float((reference_probs * (reference - logprobs)).sum())
            total["top1"] += int((logprobs.argmax(axis=-1) == reference_top1).sum())
            total["tokens"] += len(targets)
    results = [
        {
            "path": path,
            "perplexity": float(np.exp(total["nll"] / total["tokens"])),
            "mean_nll": total["nll"] / total["tokens"],
            "kl_divergence": total["kl"] / total["tokens"],
            "top1_agreement": total["top1"] / total["tokens"],
            "tokens": total["tokens"],
        }
        for path, total in zip(paths, totals, strict=True)
    ]
    return {
        "results": results,
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    run_step_main(main)
