"""Step (llmcompressor toolchain): GPTQ, AWQ or INT8 W8A8 (SmoothQuant + GPTQ) with
llm-compressor to a compressed-tensors dir.

Order matters for the user: the calibration text is tokenized and counted *before* the model is
loaded, so a too-small set is refused in seconds, not after a minute of loading.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from _stepio import StepRefusal, progress, run_step_main


def skip_pinning_without_accelerator() -> None:
    """Workaround for llm-compressor 0.13/0.14 on CPU-only hosts (AWQ).

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


def quantization_scheme(request: dict[str, Any]) -> dict[str, Any]:
    weights: dict[str, Any] = {
        "num_bits": request["bits"],
        "type": "int",
        "symmetric": request["symmetric"],
        "strategy": "group" if request["group_size"] else "channel",
    }
    if request["group_size"]:
        weights["group_size"] = request["group_size"]
    return {"group_0": {"targets": ["Linear"], "weights": weights}}


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
    windows = calibration_windows(
        tokenizer, request["calibration_texts"], request["num_samples"], request["sequence_length"]
    )
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    dataset = Dataset.from_dict(
        {"input_ids": windows, "attention_mask": [[1] * len(window) for window in windows]}
    )
    progress("loading the model")
    model = AutoModelForCausalLM.from_pretrained(request["model_dir"], dtype="auto")
    config_groups = quantization_scheme(request)
    ignore = request["ignore"]
    measure = request["measure_layer_error"]
    smoothed: dict[str, Any] = {}
    if request["method"] == "gptq":
        recipe: Any = GPTQModifier(
            config_groups=config_groups, ignore=ignore, dampening_frac=request["dampening_frac"]
        )
    elif request["method"] == "int8":
        # llm-compressor's W8A8 recipe: INT8 per-channel weights, dynamic per-token activations.
        from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

        recipe = [
            SmoothQuantModifier(smoothing_strength=request["smoothing_strength"]),
            GPTQModifier(
                targets="Linear",
                scheme="W8A8",
                ignore=ignore,
                dampening_frac=request["dampening_frac"],
            ),
        ]
        if measure:
            capture_weights_before_gptq(smoothed)
    else:
        skip_pinning_without_accelerator()
        recipe = [
            AWQModifier(duo_scaling=request["duo_scaling"]),
            QuantizationModifier(config_groups=config_groups, ignore=ignore),
        ]
    # GPTQ's error is against the weights as loaded, so they are copied before calibrating.
    loaded = linear_weights(model, ignore) if measure and request["method"] == "gptq" else None
    progress(f"running {request['method']} on {len(windows)} samples (minutes on a CPU)")
    calibrate_started = time.monotonic()
    oneshot(
        model=model,
        dataset=dataset,
        recipe=recipe,
        processor=tokenizer,
        max_seq_length=request["sequence_length"],
        num_calibration_samples=len(windows),
        shuffle_calibration_samples=False,
    )
    calibrate_seconds = time.monotonic() - calibrate_started
    errors: list[dict[str, Any]] = []
    if measure:
        progress("measuring per-layer weight error")
        # AWQ rescales weights before quantizing, SmoothQuant too: their error is against the
        # rescaled weights, i.e. the error the quantizer itself introduced.
        if request["method"] == "int8":
            reference = smoothed
        else:
            reference = loaded if loaded is not None else linear_weights(model, ignore)
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
