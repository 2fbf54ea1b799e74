"""Measured bits per weight of compressed-tensors checkpoints, read from safetensors headers.

A safetensors file starts with an 8-byte little-endian header length and a JSON header listing
every tensor's dtype, shape and byte range, so sizes are known without loading any tensor (and
without torch in the core process).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

# Parts of one quantized weight in compressed-tensors' pack-quantized format.
QUANTIZED_PARTS = ("weight_packed", "weight_scale", "weight_zero_point", "weight_g_idx")
# The int-quantized / float-quantized formats (W8A8) store the 8-bit values unpacked as
# ``weight``, beside the same scale parts.
UNPACKED_QUANTIZED_DTYPES = ("I8", "F8_E4M3")


def safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def _tensor_bytes(entry: dict[str, Any]) -> int:
    start, end = entry["data_offsets"]
    return end - start


def compressed_bits_per_weight(directory: Path) -> dict[str, float]:
    """Bits per weight of the quantized Linear layers, and of the whole checkpoint.

    ``quantized_layers``: stored bits (packed values, scales, zero points) divided by the
    number of original weights of those layers (from ``weight_shape``). ``all_weights``:
    every stored byte divided by every original parameter, embeddings and norms included.
    """
    quantized_bits = quantized_count = total_bits = total_count = 0
    for file in sorted(directory.glob("*.safetensors")):
        header = safetensors_header(file)
        layers: dict[str, dict[str, Any]] = {}
        for name, entry in header.items():
            prefix, _, part = name.rpartition(".")
            layers.setdefault(prefix, {})[part] = entry
        for prefix, parts in layers.items():
            unpacked = (
                "weight_scale" in parts
                and parts.get("weight", {}).get("dtype") in UNPACKED_QUANTIZED_DTYPES
            )
            if "weight_packed" in parts or unpacked:
                names: tuple[str, ...]
                if unpacked:
                    count = math.prod(parts["weight"]["shape"])
                    names = ("weight", *QUANTIZED_PARTS)
                else:
                    shape_entry = parts.get("weight_shape")
                    count = _shape_from_weight_shape(file, shape_entry) if shape_entry else 0
                    names = QUANTIZED_PARTS
                stored = sum(_tensor_bytes(parts[p]) for p in names if p in parts)
                quantized_bits += 8 * stored
                quantized_count += count
                total_bits += 8 * stored
                total_count += count
            else:
                for part, entry in parts.items():
                    if part == "weight_shape":
                        continue
                    total_bits += 8 * _tensor_bytes(entry)
                    total_count += math.prod(entry["shape"])
            del prefix
    result = {"all_weights": total_bits / total_count if total_count else 0.0}
    if quantized_count:
        result["quantized_layers"] = quantized_bits / quantized_count
    return result


def _shape_from_weight_shape(file: Path, entry: dict[str, Any]) -> int:
    """``weight_shape`` is a tiny int tensor holding the original (rows, columns)."""
    dtype_size = {"I64": 8, "I32": 4, "I16": 2, "I8": 1}[entry["dtype"]]
    start, end = entry["data_offsets"]
    with file.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        handle.seek(8 + length + start)
        raw = handle.read(end - start)
    code = {8: "q", 4: "i", 2: "h", 1: "b"}[dtype_size]
    values = struct.unpack(f"<{len(raw) // dtype_size}{code}", raw)
    return math.prod(values)
