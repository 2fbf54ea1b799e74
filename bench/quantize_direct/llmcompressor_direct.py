"""The library called directly: GPTQ or AWQ with llm-compressor, as its examples do it.

Run with the llmcompressor toolchain's interpreter: ``python llmcompressor_direct.py
METHOD MODEL_DIR OUTPUT_DIR SAMPLES LENGTH``. Same calibration text (pydoc topics, calibration
side), same windows, same recipe as quantplan; no quantplan code involved.
"""

from __future__ import annotations

import hashlib
import sys
from pydoc_data.topics import topics

import torch
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.gptq import GPTQModifier
from llmcompressor.modifiers.quantization import QuantizationModifier
from llmcompressor.modifiers.transform.awq import AWQModifier
from llmcompressor.pipelines.cache import IntermediatesCache
from transformers import AutoModelForCausalLM, AutoTokenizer


def calibration_documents() -> list[str]:
    unique = dict.fromkeys(topics[name].strip() for name in sorted(topics))
    return [t for t in unique if int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) % 5 != 0]


def main() -> None:
    method, model_dir, output_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    samples, length = int(sys.argv[4]), int(sys.argv[5])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer("\n\n".join(calibration_documents()), add_special_tokens=False)["input_ids"]
    available = len(ids) // length
    starts = [int(i * available / samples) * length for i in range(samples)]
    windows = [ids[s : s + length] for s in starts]
    dataset = Dataset.from_dict(
        {"input_ids": windows, "attention_mask": [[1] * length for _ in windows]}
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    weights = {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 64}
    if method == "gptq":
        groups = {"group_0": {"targets": ["Linear"], "weights": {**weights, "symmetric": True}}}
        recipe = GPTQModifier(config_groups=groups, ignore=["lm_head"], dampening_frac=0.01)
    else:
        if not torch.accelerator.is_available():  # the same CPU pinning workaround
            IntermediatesCache._pin_intermediate = classmethod(lambda cls, value: None)
        groups = {"group_0": {"targets": ["Linear"], "weights": {**weights, "symmetric": False}}}
        recipe = [
            AWQModifier(duo_scaling=True),
            QuantizationModifier(config_groups=groups, ignore=["lm_head"]),
        ]
    torch.manual_seed(0)
    oneshot(
        model=model,
        dataset=dataset,
        recipe=recipe,
        processor=tokenizer,
        max_seq_length=length,
        num_calibration_samples=samples,
        shuffle_calibration_samples=False,
    )
    model.save_pretrained(output_dir, save_compressed=True)
    tokenizer.save_pretrained(output_dir)


if __name__ == "__main__":
    main()
