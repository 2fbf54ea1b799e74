"""The fast GGUF header walk agrees with the gguf reader, and catches truncation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

STEPS = Path(__file__).resolve().parents[2] / "agent" / "steps"


@pytest.fixture(scope="module")
def facts():  # the step helpers run inside toolchains; here the core venv's gguf suffices
    sys.path.insert(0, str(STEPS))
    try:
        import _gguf_facts
        import _stepio

        yield _gguf_facts, _stepio
    finally:
        sys.path.remove(str(STEPS))


def write_gguf(path: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    writer = GGUFWriter(str(path), "llama")
    writer.add_token_list([f"tok{i}" for i in range(1000)])  # string arrays to skip
    writer.add_block_count(1)
    weights = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    packed = quantize(weights, GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", packed, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_header_walk_matches_the_reader(tmp_path: Path, facts) -> None:
    from gguf import GGUFReader

    gguf_facts, _ = facts
    path = tmp_path / "m.gguf"
    write_gguf(path)
    fast = gguf_facts.bits_per_weight(gguf_facts.tensor_infos(str(path)))
    slow = gguf_facts.bits_per_weight(GGUFReader(str(path)).tensors)
    assert fast == slow
    assert fast["matrices"] == pytest.approx(8.5)  # Q8_0: 34 bytes per 32 weights
    assert fast["weight_share_by_type"] == {"Q8_0": 1.0}


def test_truncated_file_is_refused(tmp_path: Path, facts) -> None:
    gguf_facts, stepio = facts
    path = tmp_path / "m.gguf"
    write_gguf(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(stepio.StepRefusal, match="truncated"):
        gguf_facts.open_gguf(str(path))
    path.write_bytes(data[:200])  # cut inside the metadata
    with pytest.raises(stepio.StepRefusal):
        gguf_facts.tensor_infos(str(path))
