"""Writing small safetensors files by hand: a header of names, dtypes, shapes and offsets, then
the raw bytes (the format's whole specification), so tests need no torch."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    """``tensors``: name -> (dtype such as "BF16", shape, raw little-endian bytes)."""
    header: dict[str, Any] = {}
    offset, payload = 0, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        payload += data
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
