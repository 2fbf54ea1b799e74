"""Step (llmcompressor toolchain): turn a GGUF file into a plain Hugging Face checkpoint.

transformers dequantizes the GGUF tensors while loading; the loaded model still carries the GGUF
quantizer marker, and ``save_pretrained`` refuses such a model ("not serializable"). The marker
describes how the weights were *read*, not how they are stored now, so it is dropped before
saving a normal safetensors checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

from _stepio import StepRefusal, progress, run_step_main


def main(request: dict[str, Any]) -> dict[str, Any]:
    gguf_path: str = request["gguf_path"]
    output_dir: str = request["output_dir"]
    progress("loading the GGUF with transformers")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, filename = os.path.split(gguf_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=filename, dtype=getattr(torch, request["dtype"])
        )
    except ValueError as error:
        raise StepRefusal(
            "unsupported_architecture", f"transformers cannot load it: {error}"
        ) from None
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    progress("saving the safetensors checkpoint")
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return {
        "architecture": type(model).__name__,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
    }


if __name__ == "__main__":
    run_step_main(main)
