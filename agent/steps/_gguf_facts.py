"""GGUF facts shared by the GGUF steps: validation, measured bits per weight, weight error.

Needs only numpy and the ``gguf`` package (both in the llama-cpp toolchain and the core env).
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class TensorInfo(NamedTuple):
    name: str
    shape: tuple[int, ...]
    tensor_type: Any  # gguf.GGMLQuantizationType
    n_elements: int
    n_bytes: int


def tensor_infos(path: str) -> list[TensorInfo]:
    """Tensor names, shapes, types and sizes from the GGUF header alone.

    GGUFReader builds a numpy view for every metadata item (the tokenizer alone holds about
    100k strings), which takes seconds; this walks the header with struct and skips values.
    """
    import mmap
    import struct

    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"GGUF":
            raise StepRefusal("corrupt_gguf", f"{path} does not start with the GGUF magic")
        _version, tensor_count, kv_count = struct.unpack_from("<IQQ", data, 4)
        offset = 24

        def read_string(at: int) -> tuple[str, int]:
            (length,) = struct.unpack_from("<Q", data, at)
            return bytes(data[at + 8 : at + 8 + length]).decode("utf-8", "replace"), at + 8 + length

        def skip_value(kind: int, at: int) -> int:
            if kind in _SCALAR_SIZES:
                return at + _SCALAR_SIZES[kind]
            if kind == _STRING:
                (length,) = struct.unpack_from("<Q", data, at)
                return at + 8 + length
            if kind == _ARRAY:
                element, count = struct.unpack_from("<IQ", data, at)
                at += 12
                if element in _SCALAR_SIZES:
                    return at + count * _SCALAR_SIZES[element]
                for _ in range(count):
                    at = skip_value(element, at)
                return at
            raise StepRefusal("corrupt_gguf", f"{path}: unknown metadata type {kind}")

        try:
            for _ in range(kv_count):
                _key, offset = read_string(offset)
                (kind,) = struct.unpack_from("<I", data, offset)
                offset = skip_value(kind, offset + 4)
            infos = []
            for _ in range(tensor_count):
                name, offset = read_string(offset)
                (dims,) = struct.unpack_from("<I", data, offset)
                shape = struct.unpack_from(f"<{dims}Q", data, offset + 4)
                kind, _start = struct.unpack_from("<IQ", data, offset + 4 + 8 * dims)
                offset += 4 + 8 * dims + 12
                tensor_type = GGMLQuantizationType(kind)
                block, size = GGML_QUANT_SIZES[tensor_type]
                count = 1
                for dim in shape:
                    count *= dim
                infos.append(TensorInfo(name, shape, tensor_type, count, count // block * size))
        except (struct.error, ValueError, KeyError) as error:
            raise StepRefusal("corrupt_gguf", f"{path} has a malformed header: {error}") from None
    return infos


def is_quantizable(tensor: Any) -> bool:
    """2-D weight matrices: what llama.cpp quantizes (norms and biases stay F32)."""
    return tensor.name.endswith(".weight") and len(tensor.shape) >= 2


def bits_per_weight(tensors: Any) -> dict[str, Any]:
    """Measured bits per weight over 2-D weights and over all tensors, and the type mix."""
    matrix_bits = matrix_count = all_bits = all_count = 0
    type_counts: dict[str, int] = {}
    for tensor in tensors:
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
