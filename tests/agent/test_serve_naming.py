"""Served model names: ``<model>-<scheme>`` from the artifact's manifest for both engines, the
path's own name without one, and ``--served-name`` over both."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantplan.agent.artifacts import ArtifactManifest
from quantplan.agent.serve import get_engine
from quantplan.agent.serve.engine import ArtifactInfo, ServeOptions
from quantplan.agent.serve.llamacpp.server import LlamaServer
from quantplan.agent.serve.naming import default_served_name


def _write_manifest(directory: Path, method: str, scheme: str) -> None:
    manifest = ArtifactManifest(
        artifact_id="03ddbc9186a6" + "0" * 12,
        kind="gguf" if method == "gguf" else "compressed-tensors",
        method=method,  # type: ignore[arg-type]
        scheme=scheme,
        parameters={},
        source_model="SmolLM2-135M-Instruct",
        source_model_sha256="0" * 64,
        toolchain="test",
        toolchain_key="test",
        tool_versions={},
        files=(),
        total_bytes=0,
        source_weight_bytes=1,
        quantize_seconds=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    (directory / "manifest.json").write_text(manifest.model_dump_json())


@pytest.mark.parametrize(
    ("engine", "method", "scheme", "flag"),
    [
        ("vllm", "gptq", "gptq-w4a16-g64", "--served-model-name"),
        ("llama.cpp", "gguf", "gguf-q4_k_m", "--alias"),
    ],
)
def test_artifacts_are_served_as_model_and_scheme(
    tmp_path: Path, engine: str, method: str, scheme: str, flag: str
) -> None:
    artifact = tmp_path / ("03ddbc9186a6" + "0" * 12)
    artifact.mkdir()
    _write_manifest(artifact, method, scheme)
    path = artifact / "model.gguf" if method == "gguf" else artifact
    if method == "gguf":
        path.write_bytes(b"GGUF")
    info = ArtifactInfo(
        path=path, format="gguf" if method == "gguf" else "hf", quant_method=method, size_bytes=4
    )
    server = get_engine(engine)
    if isinstance(server, LlamaServer):
        # The command only names the binary: given one, nothing is built (the managed build
        # takes minutes on a fresh machine and belongs to the toolchain tests).
        server = LlamaServer(binary=tmp_path / "llama-server")
    command = server.command(Path("/usr/bin/python3"), info, ServeOptions(), 8000)
    assert command[command.index(flag) + 1] == f"SmolLM2-135M-Instruct-{scheme}"
    named = ServeOptions(served_name="my-model")
    assert server.served_model_name(info, named) == "my-model"


def test_paths_without_a_manifest_keep_their_name(tmp_path: Path) -> None:
    assert default_served_name(tmp_path / "Qwen2.5-0.5B.Q8_0.gguf", "gguf") == "Qwen2.5-0.5B.Q8_0"
    (tmp_path / "my-checkpoint").mkdir()
    assert default_served_name(tmp_path / "my-checkpoint", "hf") == "my-checkpoint"
    (tmp_path / "my-checkpoint" / "manifest.json").write_text("{not json")
    assert default_served_name(tmp_path / "my-checkpoint", "hf") == "my-checkpoint"


def test_served_name_is_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ServeOptions(served_name="two words")


def test_a_bad_served_name_is_one_line_through_the_cli(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "quantplan", "serve", str(tmp_path), "--engine", "vllm",
         "--served-name", "two words"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"},
        check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--served-name 'two words' is not a model name" in result.stderr.splitlines()[0]
