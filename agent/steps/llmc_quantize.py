"""Step (llmcompressor toolchain): run an llm-compressor recipe to a compressed-tensors dir.

The request's recipe is a list of modifiers, each named by import path with its arguments (the
method's folder under ``agent/quantize/`` builds it), so this script names no method: GPTQ,
AWQ and INT8 W8A8 (SmoothQuant + GPTQ) all run the same lines.

Order matters for the user: the calibration text is tokenized and counted *before* the model is
loaded, so a too-small set is refused in seconds, not after a minute of loading.
"""

from __future__ import annotations

import importlib
import resource
import time
from typing import Any

from _stepio import StepRefusal, progress, run_step_main


def skip_pinning_without_accelerator() -> None:
    """Workaround for llm-compressor 0.13/0.14 on CPU-only hosts (AWQ's pipeline needs it).

    ``IntermediatesCache._pin_intermediate`` calls ``Tensor.pin_memory()`` unconditionally;
    without an accelerator torch raises "Cannot access accelerator device when none is
    available". Pinning only speeds host->device copies, so skipping it on a CPU-only host
    changes no result. Remove once llm-compressor checks ``torch.accelerator.is_available()``.
    """
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if torch.accelerator.is_available():
        return
    IntermediatesCache._pin_intermediate = classmethod(lambda cls, intermediate: None)


def calibration_windows(tokenizer: Any, texts: list[str], samples: int, length: int) -> list:
    """``samples`` token windows of ``length``, spread evenly over the calibration stream."""
    ids = tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    available = len(ids) // length
    if available < samples:
        raise StepRefusal(
            "calibration_too_small",
            f"the calibration text gives {len(ids)} tokens: {available} windows of {length} "
            f"tokens, fewer than the {samples} samples asked for",
            "add text, or lower --samples / --sequence-length",
        )
    stride = available / samples
    starts = [int(index * stride) * length for index in range(samples)]
    return [ids[start : start + length] for start in starts]


def build_recipe(specs: list[dict[str, Any]]) -> list[Any]:
    """The modifiers of ``specs`` (``{"modifier": "package.module:Class", "args": {...}}``)."""
    recipe = []
    for spec in specs:
        module_name, _, class_name = spec["modifier"].partition(":")
        if not module_name.startswith("llmcompressor."):
            raise StepRefusal(
                "bad_recipe",
                f"{spec['modifier']} is not an llm-compressor modifier",
                "a method's recipe names modifiers as llmcompressor.<module>:<Class>",
            )
        modifier = getattr(importlib.import_module(module_name), class_name)
        recipe.append(modifier(**spec["args"]))
    return recipe


def capture_weights_before_gptq(reference: dict[str, Any]) -> None:
    """Copy each Linear's weight into ``reference`` just before GPTQ quantizes it.

    With SmoothQuant first, the loaded weights are not what GPTQ quantizes (smoothing scales
    their input channels), so the layer error is measured against the smoothed weights, the
    error GPTQ itself introduced. Patches this step process only.
    """
    from llmcompressor.modifiers.gptq import GPTQModifier

    compress = GPTQModifier.compress_module_list

    def copying(self: Any, module_list: list[Any]) -> Any:
        for module in module_list:
            reference[self._module_names[module]] = module.weight.detach().clone()
        return compress(self, module_list)

    GPTQModifier.compress_module_list = copying


def linear_weights(model: Any, ignore: list[str]) -> dict[str, Any]:
    """A copy of every quantizable Linear's weight, the reference of the layer error."""
    import torch

    return {
        name: module.weight.detach().clone()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in ignore
    }


def layer_errors(model: Any, reference: dict[str, Any]) -> list[dict[str, Any]]:
    """Per quantized Linear: MSE and relative Frobenius error of the dequantized weight."""
    import torch
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    rows = []
    for name, module in model.named_modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None or scheme.weights is None or name not in reference:
            continue
        zero_point = getattr(module, "weight_zero_point", None)
        with torch.no_grad():
            dequantized = fake_quantize(
                module.weight.float(), module.weight_scale.float(), zero_point, scheme.weights
            )
            original = reference[name].float()
            # On a GPU the quantized module sits on the device and the reference copy on the host.
            difference = dequantized.to(original.device) - original
            mse = float(difference.pow(2).mean())
            relative = float(difference.norm() / original.norm().clamp_min(1e-12))
        rows.append({"layer": name, "mse": mse, "relative_error": relative})
    return rows


def main(request: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    progress("loading the tokenizer and counting calibration tokens")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(request["model_dir"])
    # No samples asked: the recipe computes its scales from the weights alone (FP8 dynamic).
    windows = (
        calibration_windows(
            tokenizer,
            request["calibration_texts"],
            request["num_samples"],
            request["sequence_length"],
        )
        if request["num_samples"]
        else []
    )
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.gptq import GPTQModifier
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    skip_pinning_without_accelerator()
    calibration: dict[str, Any] = {}
    if windows:
        calibration = {
            "dataset": Dataset.from_dict(
                {"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]}
            ),
            "max_seq_length": request["sequence_length"],
            "num_calibration_samples": len(windows),
            "shuffle_calibration_samples": False,
        }
    progress("loading the model")
    model = AutoModelForCausalLM.from_pretrained(request["model_dir"], dtype="auto")
    recipe = build_recipe(request["recipe"])
    measure = request["measure_layer_error"]
    # The layer error is the error the quantizer itself introduced, so its reference is the
    # weights it quantized: GPTQ's as it takes each layer (after any smoothing before it);
    # otherwise (AWQ, round-to-nearest) the weights after calibration, rescaling included.
    before_gptq: dict[str, Any] = {}
    gptq_runs = any(isinstance(modifier, GPTQModifier) for modifier in recipe)
    if measure and gptq_runs:
        capture_weights_before_gptq(before_gptq)
    samples = f"on {len(windows)} samples (minutes on a CPU)" if windows else "without data"
    progress(f"running {request['method']} {samples}")
    calibrate_started = time.monotonic()
    oneshot(model=model, recipe=recipe, processor=tokenizer, **calibration)
    calibrate_seconds = time.monotonic() - calibrate_started
    errors: list[dict[str, Any]] = []
    if measure:
        progress("measuring per-layer weight error")
        reference = before_gptq if gptq_runs else linear_weights(model, request["ignore"])
        errors = layer_errors(model, reference)
    progress("saving the compressed-tensors checkpoint")
    model.save_pretrained(request["output_dir"], save_compressed=True)
    tokenizer.save_pretrained(request["output_dir"])
    return {
        "calibration_tokens": sum(len(window) for window in windows),
        "calibrate_seconds": round(calibrate_seconds, 2),
        "total_seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "layer_errors": errors,
    }


if __name__ == "__main__":
    run_step_main(main)
