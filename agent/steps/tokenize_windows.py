"""Step (llmcompressor toolchain): cut the evaluation text into token windows.

Every engine is then fed these exact token ids, so perplexity and agreement compare like with
like (the GGUF files carry the same vocabulary as the HF tokenizer they were converted from).
"""

from __future__ import annotations

from typing import Any

from _stepio import StepRefusal, run_step_main


def main(request: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(request["model_dir"])
    length, count = request["window_length"], request["num_windows"]
    windows: list[list[int]] = []
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    body = length - len(prefix)
    for document in request["documents"]:
        ids = tokenizer(document, add_special_tokens=False)["input_ids"]
        windows.extend(
            prefix + ids[start : start + body] for start in range(0, len(ids) - body + 1, body)
        )
    if len(windows) < count:
        raise StepRefusal(
            "evaluation_too_small",
            f"the evaluation text gives {len(windows)} windows of {length} tokens, "
            f"fewer than the {count} asked for",
            "lower --windows or --window-length, or give more evaluation text",
        )
    stride = len(windows) / count
    chosen = [windows[int(index * stride)] for index in range(count)]
    return {"windows": chosen, "vocab_size": len(tokenizer)}


if __name__ == "__main__":
    run_step_main(main)
