"""GGUF facts shared by the GGUF steps: validation, measured bits per weight, weight error.

Needs only numpy and the ``gguf`` package (both in the llama-cpp toolchain and the core env).
"""

from __future__ import annotations

from typing import Any

from _stepio import StepRefusal


def open_gguf(path: str) -> Any:
    """A GGUFReader over ``path``, or a refusal that says the file is not a usable GGUF."""
    import os

    from gguf import GGUFReader

    if not os.path.isfile(path):
        raise StepRefusal("bad_input", f"GGUF file {path} does not exist")
    try:
        reader = GGUFReader(path)
        end = max((tensor.data_offset + tensor.n_bytes for tensor in reader.tensors), default=0)
    except (ValueError, IndexError, KeyError, OSError, TypeError) as error:
        raise StepRefusal(
            "corrupt_gguf",
            f"{path} is not a readable GGUF file ({type(error).__name__}: {error})",
            "re-create or re-download the file; a truncated copy cannot be loaded",
        ) from None
    if not reader.tensors:
        raise StepRefusal("corrupt_gguf", f"{path} holds no tensors")
    if end > os.path.getsize(path):
        raise StepRefusal(
            "corrupt_gguf",
            f"{path} is truncated: its tensors need {end} bytes, the file has "
            f"{os.path.getsize(path)}",
            "re-create or re-download the file",
        )
    return reader


def architecture(reader: Any) -> str:
    field = reader.fields.get("general.architecture")
    if field is None:
        return "unknown"
    return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def is_quantizable(tensor: Any) -> bool:
    """2-D weight matrices: what llama.cpp quantizes (norms and biases stay F32)."""
    return tensor.name.endswith(".weight") and len(tensor.shape) >= 2


def bits_per_weight(reader: Any) -> dict[str, Any]:
    """Measured bits per weight over 2-D weights and over all tensors, and the type mix."""
    matrix_bits = matrix_count = all_bits = all_count = 0
    type_counts: dict[str, int] = {}
    for tensor in reader.tensors:
        all_bits += 8 * int(tensor.n_bytes)
        all_count += int(tensor.n_elements)
        if is_quantizable(tensor):
            matrix_bits += 8 * int(tensor.n_bytes)
            matrix_count += int(tensor.n_elements)
            kind = tensor.tensor_type.name
            type_counts[kind] = type_counts.get(kind, 0) + int(tensor.n_elements)
    return {
        "matrices": matrix_bits / matrix_count if matrix_count else 0.0,
        "all_tensors": all_bits / all_count if all_count else 0.0,
        "weight_share_by_type": {
            kind: round(count / matrix_count, 4) for kind, count in sorted(type_counts.items())
        },
    }


def layer_errors(reference: Any, quantized: Any) -> list[dict[str, Any]]:
    """Per 2-D tensor: MSE and relative Frobenius error of the dequantized weights vs F16."""
    import numpy as np
    from gguf.quants import dequantize

    originals = {tensor.name: tensor for tensor in reference.tensors if is_quantizable(tensor)}
    rows = []
    for tensor in quantized.tensors:
        if tensor.name not in originals:
            continue
        base = originals[tensor.name]
        original = dequantize(base.data, base.tensor_type).astype(np.float32)
        approximate = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        difference = approximate.reshape(original.shape) - original
        rows.append(
            {
                "layer": tensor.name,
                "type": tensor.tensor_type.name,
                "mse": float(np.mean(difference * difference)),
                "relative_error": float(
                    np.linalg.norm(difference) / max(float(np.linalg.norm(original)), 1e-12)
                ),
            }
        )
    return rows
