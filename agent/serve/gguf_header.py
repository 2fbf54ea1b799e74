"""One integer of a GGUF file's metadata (its file type, its end-of-sequence token), read fast.

``gguf.GGUFReader`` builds a numpy view for every metadata item before it answers anything: the
tokenizer's vocabulary alone is tens of thousands of strings, about 2 s of CPU for the default
model's 49k-token file, which ``quantplan serve`` and every llama.cpp command line paid to learn
one number. This walks the header with ``struct`` instead, taking a value only from a file that
GGUFReader reads without complaint too: it makes the reader's checks (magic, version, value and
tensor types, unique keys and tensor names, alignment, every tensor inside the file) and, on
anything it does not vouch for -- a big-endian file, a check failing, a value that is not an
integer -- hands the file to GGUFReader, so what callers get never changes.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any

_SCALARS = {  # GGUFValueType -> struct format (little-endian)
    0: "<B",  # UINT8
    1: "<b",  # INT8
    2: "<H",  # UINT16
    3: "<h",  # INT16
    4: "<I",  # UINT32
    5: "<i",  # INT32
    6: "<f",  # FLOAT32
    7: "<?",  # BOOL
    10: "<Q",  # UINT64
    11: "<q",  # INT64
    12: "<d",  # FLOAT64
}
_INTEGERS = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
_UINT32, _STRING, _ARRAY = 4, 8, 9
_READER_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")
"""Names GGUFReader gives the header's own numbers: a metadata key equal to one is refused."""


class _NotVouched(Exception):
    """The walk saw something it does not vouch for: GGUFReader decides."""


def metadata_int(path: Any, key: str) -> int | None:
    """``int(GGUFReader(path).get_field(key).contents())``, None where the key is absent.

    Raises whatever GGUFReader raises on a file it refuses (the callers catch everything).
    """
    try:
        return _walk(path, key)
    except Exception:  # _NotVouched, or anything the walk did not foresee: the reader decides
        pass
    from gguf import GGUFReader

    field = GGUFReader(path).get_field(key)
    return None if field is None else int(field.contents())


def _walk(path: Any, key: str) -> int | None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.gguf_reader import READER_SUPPORTED_VERSIONS

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size = len(data)

        def unpack(fmt: str, at: int) -> tuple[Any, ...]:
            if at + struct.calcsize(fmt) > size:
                raise _NotVouched
            return struct.unpack_from(fmt, data, at)

        def string(at: int) -> tuple[str, int]:
            (length,) = unpack("<Q", at)
            if at + 8 + length > size:
                raise _NotVouched
            return bytes(data[at + 8 : at + 8 + length]).decode("utf-8"), at + 8 + length

        def skip(kind: int, at: int) -> int:
            if kind in _SCALARS:
                return at + struct.calcsize(_SCALARS[kind])
            if kind == _STRING:
                (length,) = unpack("<Q", at)
                return at + 8 + length
            if kind == _ARRAY:
                item, count = unpack("<IQ", at)
                at += 12
                if count and item in _SCALARS:
                    return at + count * struct.calcsize(_SCALARS[item])
                if count and item not in (_STRING, _ARRAY):
                    raise _NotVouched  # an unknown item type: GGUFReader's error to raise
                for _ in range(count):
                    at = skip(item, at)
                    if at > size:
                        raise _NotVouched
                return at
            raise _NotVouched

        if bytes(data[:4]) != b"GGUF":
            raise _NotVouched
        (version,) = unpack("<I", 4)
        if version & 0xFFFF == 0 or version not in READER_SUPPORTED_VERSIONS:  # big-endian
            raise _NotVouched
        tensor_count, kv_count = unpack("<QQ", 8)
        offset = 24
        keys: set[str] = set(_READER_FIELDS)
        wanted: int | None = None
        alignment = 32  # GGUF_DEFAULT_ALIGNMENT
        for _ in range(kv_count):
            name, offset = string(offset)
            (kind,) = unpack("<I", offset)
            offset += 4
            if name in keys:
                raise _NotVouched  # a duplicate key
            keys.add(name)
            if name == key:
                if kind not in _INTEGERS:
                    raise _NotVouched  # what int() makes of it is GGUFReader's answer
                (wanted,) = unpack(_SCALARS[kind], offset)
            if name == "general.alignment":
                if kind != _UINT32:
                    raise _NotVouched
                (alignment,) = unpack("<I", offset)
                if alignment == 0 or alignment & (alignment - 1):
                    raise _NotVouched
            offset = skip(kind, offset)
            if offset > size:
                raise _NotVouched
        tensors: list[tuple[tuple[int, ...], int, int]] = []
        names: set[str] = set()
        for _ in range(tensor_count):
            name, offset = string(offset)
            if name in names:
                raise _NotVouched
            names.add(name)
            (dims,) = unpack("<I", offset)
            shape = unpack(f"<{dims}Q", offset + 4)
            raw_type, start = unpack("<IQ", offset + 4 + 8 * dims)
            offset += 4 + 8 * dims + 12
            tensors.append((shape, raw_type, start))
        data_start = offset + (-offset % alignment)
        for shape, raw_type, start in tensors:
            tensor_type = GGMLQuantizationType(raw_type)  # ValueError: not a type it knows
            block, type_size = GGML_QUANT_SIZES[tensor_type]
            elements = 1
            for dim in shape:
                elements *= dim
            if not shape or elements >= 2**63 or shape[0] % block:
                raise _NotVouched  # no rows, numpy's overflow, or a partial block
            if data_start + start + elements * type_size // block > size:
                raise _NotVouched  # a truncated file
        return wanted
