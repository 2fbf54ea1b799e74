"""The fast GGUF metadata read answers what GGUFReader answers, on good files and damaged ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

from quantplan.agent.serve.engine import _gguf_type, gguf_eos_token_id
from quantplan.agent.serve.gguf_header import _walk, metadata_int

KEYS = ("general.file_type", "tokenizer.ggml.eos_token_id", "general.alignment", "absent.key")


def _write(path: Path, extra: Callable[[GGUFWriter], None] = lambda writer: None) -> Path:
    writer = GGUFWriter(str(path), "llama")
    writer.add_file_type(15)  # MOSTLY_Q4_K_M
    writer.add_eos_token_id(2)
    writer.add_token_list(["<s>", "</s>", "héllo", ""])
    writer.add_array("some.nested", [[1, 2], [3]])
    extra(writer)
    writer.add_tensor("blk.0.attn_q.weight", np.ones((4, 32), dtype=np.float32))
    raw = np.zeros((4, 18), dtype=np.uint8)  # two Q4_0 blocks a row: 64 weights
    writer.add_tensor("blk.0.ffn.weight", raw, raw_dtype=GGMLQuantizationType.Q4_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _reader_answer(path: Path, key: str) -> object:
    try:
        field = GGUFReader(path).get_field(key)
        return None if field is None else int(field.contents())
    except Exception as error:
        return type(error)


def _fast_answer(path: Path, key: str) -> object:
    try:
        return metadata_int(path, key)
    except Exception as error:
        return type(error)


def test_a_well_formed_file_is_read_without_the_reader(tmp_path: Path) -> None:
    path = _write(tmp_path / "good.gguf")
    assert _walk(path, "general.file_type") == 15  # the walk vouched for it: no fallback
    for key in KEYS:
        assert _fast_answer(path, key) == _reader_answer(path, key), key
    assert _gguf_type(path) == "MOSTLY_Q4_K_M"
    assert gguf_eos_token_id(path) == 2


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _cut_in_the_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _big_endian_version(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4:8] = (3).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def _unknown_tensor_type(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.rfind(b"blk.0.ffn.weight") + len(b"blk.0.ffn.weight") + 4 + 16
    data[at : at + 4] = (250).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated tensor data": _truncated,
    "cut in the header": _cut_in_the_header,
    "big-endian version word": _big_endian_version,
    "unknown tensor type": _unknown_tensor_type,
    "empty file": _empty,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_file_gets_the_readers_answer(tmp_path: Path, damage: str) -> None:
    path = _write(tmp_path / "bad.gguf")
    DAMAGE[damage](path)
    for key in KEYS:
        assert _fast_answer(path, key) == _reader_answer(path, key), key


def _duplicate_key(writer: GGUFWriter) -> None:
    writer.add_key_value("GGUF.version", 1, GGUFValueType.UINT32)


def _string_file_type(writer: GGUFWriter) -> None:
    writer.add_string("tokenizer.ggml.eos_token_id", "7")  # int("7") is what the reader gives


def _float_alignment(writer: GGUFWriter) -> None:
    writer.add_float32("general.alignment", 32.0)


@pytest.mark.parametrize(
    "extra", [_duplicate_key, _string_file_type, _float_alignment], ids=lambda f: f.__name__
)
def test_odd_metadata_gets_the_readers_answer(
    tmp_path: Path, extra: Callable[[GGUFWriter], None]
) -> None:
    try:
        path = _write(tmp_path / "odd.gguf", extra)
    except (ValueError, KeyError):
        pytest.skip("this gguf writer refuses to write such a file")
    for key in KEYS:
        assert _fast_answer(path, key) == _reader_answer(path, key), key
