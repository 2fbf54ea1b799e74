"""Step (llmcompressor toolchain): turn a GGUF file into a plain Hugging Face checkpoint.

transformers dequantizes the GGUF tensors while loading; the loaded model still carries the GGUF
quantizer marker, and ``save_pretrained`` refuses such a model ("not serializable"). The marker
describes how the weights were *read*, not how they are stored now, so it is dropped before
saving a normal safetensors checkpoint.

transformers also rebuilds a GGUF's byte-level BPE ("gpt2") vocabulary as a llama-style
tokenizer with byte fallback, and takes the wrong end-of-sequence token. llama.cpp's converter
then writes a SentencePiece-style vocabulary that llama.cpp cannot use on ordinary text, so the
tokenizer type and the special tokens are restored from the GGUF's own metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
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
    restore_gguf_tokenizer_facts(gguf_path, Path(output_dir))
    return {
        "architecture": type(model).__name__,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
    }


def _gguf_value(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    part = field.parts[field.data[0]]
    return bytes(part).decode() if field.types[0].name == "STRING" else int(part[0])


def _gguf_token(reader: Any, token_id: int) -> str:
    field = reader.fields["tokenizer.ggml.tokens"]
    return bytes(field.parts[field.data[token_id]]).decode()


def _update_json(path: Path, changes: dict[str, Any]) -> None:
    if path.is_file():
        data = json.loads(path.read_text())
        data.update(changes)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False))


def restore_gguf_tokenizer_facts(gguf_path: str, output_dir: Path) -> None:
    """Make the saved tokenizer say what the GGUF says: vocabulary type and special tokens."""
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    if _gguf_value(reader, "tokenizer.ggml.model") == "gpt2":
        tokenizer_json = output_dir / "tokenizer.json"
        data = json.loads(tokenizer_json.read_text())
        data["model"]["byte_fallback"] = False
        data["decoder"] = {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        }
        tokenizer_json.write_text(json.dumps(data, ensure_ascii=False))
    special = {
        role: _gguf_value(reader, f"tokenizer.ggml.{role}_token_id") for role in ("bos", "eos")
    }
    ids = {f"{role}_token_id": value for role, value in special.items() if value is not None}
    _update_json(output_dir / "config.json", ids)
    _update_json(output_dir / "generation_config.json", ids)
    _update_json(
        output_dir / "tokenizer_config.json",
        {
            f"{role}_token": _gguf_token(reader, value)
            for role, value in special.items()
            if value is not None
        },
    )


if __name__ == "__main__":
    run_step_main(main)
