"""Bad input is refused with a clear message, before heavy work, leaving nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from quantplan.agent.artifacts import ArtifactStore, ArtifactStoreError
from quantplan.agent.model_source import ModelSourceError, inspect_model_dir, resolve_model
from quantplan.agent.quantize import quantize
from quantplan.agent.quantize.base import QuantizeRefusal
from quantplan.agent.quantize.calibration import CalibrationError
from quantplan.agent.toolchains import StepError

LLAMA_CONFIG = {
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
}


def _fake_checkpoint(directory: Path, **config: object) -> Path:
    """Config and a weight file: enough for the checks that run before any model loads."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({**LLAMA_CONFIG, **config}))
    (directory / "model.safetensors").write_bytes(b"\0" * 64)
    return directory


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="does not exist") as caught:
        resolve_model(str(tmp_path / "nope"))
    assert "default" in (caught.value.hint or "")


def test_unreadable_model_config(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").mkdir()  # a directory where the file should be: cannot be read
    with pytest.raises(ModelSourceError, match="cannot read"):
        inspect_model_dir(model)


def test_dir_without_config_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"no config\.json"):
        inspect_model_dir(tmp_path)


def test_unsupported_architecture(tmp_path: Path) -> None:
    model = _fake_checkpoint(tmp_path / "m", model_type="gpt2")
    with pytest.raises(ModelSourceError, match="unsupported architecture 'gpt2'") as caught:
        quantize(str(model), "gptq")
    assert "llama" in (caught.value.hint or "")


def test_remote_code_is_refused(tmp_path: Path) -> None:
    model = _fake_checkpoint(tmp_path / "m", auto_map={"AutoModel": "x.Y"})
    with pytest.raises(ModelSourceError, match="remote code"):
        quantize(str(model), "awq")


def test_group_size_that_does_not_divide_is_refused_before_loading(tmp_path: Path) -> None:
    model = _fake_checkpoint(tmp_path / "m")
    started = time.monotonic()
    with pytest.raises(QuantizeRefusal, match="group size 128 does not divide") as caught:
        quantize(str(model), "gptq", {"group_size": 128})
    assert time.monotonic() - started < 5
    assert "--group-size 64" in (caught.value.hint or "")


@pytest.mark.parametrize("content", ["", "tiny text"])
def test_empty_or_small_calibration_is_refused_before_loading(tmp_path: Path, content: str) -> None:
    model = _fake_checkpoint(tmp_path / "m")
    calibration = tmp_path / "calibration.txt"
    calibration.write_text(content)
    options = {"calibration": {"source": str(calibration), "num_samples": 8}}
    with pytest.raises(CalibrationError, match=r"empty|fewer than"):
        quantize(str(model), "gptq", options, store=ArtifactStore(str(tmp_path / "store")))
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").iterdir())


@pytest.mark.toolchain
@pytest.mark.slow
def test_truncated_gguf_is_refused_by_the_validation_child(tmp_path: Path) -> None:
    from quantplan.agent.evaluate.engines import llamacpp_scores

    store = ArtifactStore()
    q8 = quantize("default", "gguf", {"type": "Q8_0"}, store=store)
    original = store.local_dir(q8) / q8.main_file
    truncated = tmp_path / "truncated.gguf"
    with original.open("rb") as source, truncated.open("wb") as sink:
        sink.write(source.read(original.stat().st_size // 2))
    with pytest.raises(StepError) as caught:
        llamacpp_scores(original, [truncated], [[1, 2, 3, 4]])
    assert caught.value.kind == "corrupt_gguf"
    assert "truncated" in str(caught.value)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(StepError, match="not a readable GGUF"):
        llamacpp_scores(original, [garbage], [[1, 2, 3, 4]])


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root")
def test_disk_full_store_gives_a_clear_error_and_keeps_nothing(tmp_path: Path) -> None:
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        model = _fake_checkpoint(tmp_path / "m")
        (model / "model.safetensors").write_bytes(b"\0" * (16 << 20))  # 16 MB > 8 MB disk
        store = ArtifactStore(str(mountpoint / "artifacts"))
        with pytest.raises(ArtifactStoreError, match="no space left") as caught:
            quantize(str(model), "gguf", {"type": "Q8_0"}, store=store)
        assert "QUANTPLAN_ARTIFACTS" in (caught.value.hint or "")
        assert list((mountpoint / "artifacts").iterdir()) == []
        # Running out mid-write (a file bigger than the disk) is mapped the same way.
        staging = store.staging_dir("0" * 24)  # ids are the store's own form: 24 hex digits
        with pytest.raises(OSError) as full:
            (staging / "big.bin").write_bytes(b"\0" * (16 << 20))
        from quantplan.agent.artifacts import store_write_error

        assert "no space left" in str(store_write_error(full.value, store.url))
        store.discard(staging)
        assert list((mountpoint / "artifacts").iterdir()) == []
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
