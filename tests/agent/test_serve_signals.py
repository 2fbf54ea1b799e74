"""``quantplan serve`` under the signals that stop services, and the API key's secrecy.

systemd, Kubernetes and Ray stop a service with SIGTERM; a closed terminal sends SIGHUP;
Ctrl-C sends SIGINT. Each must stop the engine and its whole process group, free its port, and
exit 128 + signum with one line on stderr. The key must reach the engine through its
environment only: never its command line (``/proc/PID/cmdline`` is world-readable), never
the log, which only its owner may read.

The CLI has no seam for a stand-in engine, so the stub tests run the real CLI entry point
(``quantplan.cli.main``) from a small launcher that swaps the engine lookup for the stub and
the toolchain interpreter for this one. The real llama.cpp test runs the installed script.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from stub_engine import API_KEY_VARIABLE, CPU, STUB, StubEngine

from quantplan.agent.serve import LlamaCppServer, VllmServer
from quantplan.agent.serve.engine import ServeOptions, inspect_artifact
from quantplan.agent.serve.errors import EngineDiedError
from quantplan.agent.serve.manager import engine_environment, port_is_free, start_server
from quantplan.agent.toolchains.process import command_secrets, redact_command

TESTS = Path(__file__).resolve().parent
QUANTPLAN = Path(sys.executable).with_name("quantplan")
KEY = "sk-test-0f9e8d7c6b5a4"
READY = re.compile(r"endpoint: http://127\.0\.0\.1:(\d+)/v1")
LOG = re.compile(r"log: (\S+\.log)")
LAUNCHER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(TESTS)!r})
import quantplan.agent.cli_serve as cli_serve
import quantplan.agent.serve.manager as manager
from stub_engine import StubEngine
cli_serve._engine_for = lambda engine, artifact: StubEngine()
manager.resolve_toolchain_python = lambda toolchain, install=True: Path(sys.executable)
from quantplan.cli import main
sys.argv = ["quantplan", *sys.argv[1:]]
main()
"""


class Served:
    """A running ``quantplan serve`` and the engine it started."""

    def __init__(self, process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.process = process
        self.stdout = stdout
        self.stderr = stderr
        self.port = 0
        self.log_path = Path()
        self.engine = psutil.Process(process.pid)  # replaced once ready

    def wait_ready(self, timeout_s: float, engine_marker: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"quantplan serve exited early:\n{self.stderr.read_text()}")
            text = self.stdout.read_text()
            ready, log = READY.search(text), LOG.search(text)
            if ready and log:
                self.port, self.log_path = int(ready.group(1)), Path(log.group(1))
                children = psutil.Process(self.process.pid).children()
                self.engine = next(
                    child for child in children if engine_marker in " ".join(child.cmdline())
                )
                return
            time.sleep(0.2)
        pytest.fail(f"quantplan serve was not ready within {timeout_s} s")

    def kill(self) -> None:
        """Test cleanup only, should an assertion fail with processes still running: the
        engine (found also when it never became ready) runs in a session of its own."""
        try:
            leftovers = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            leftovers = []
        for process in [*leftovers, self.engine]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.kill()
        self.process.wait(10)


def signals_at_their_defaults() -> None:
    """Runs in each started process before it executes. A suite run under ``nohup`` hands its
    children an ignored SIGHUP, and one started in the background of a non-interactive shell
    an ignored SIGINT (Python then installs no KeyboardInterrupt handler); these tests are
    about a service started the usual way (``quantplan`` keeps an ignored signal ignored, as
    whoever started it asked)."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def launch(command: list[str], tmp_path: Path, env: dict[str, str]) -> Served:
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    environment = {**os.environ, **env}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # as a service manager starts it; the test kills it whole
            preexec_fn=signals_at_their_defaults,
        )
    return Served(process, stdout, stderr)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (directory / "model.safetensors").write_bytes(b"\0" * 16)
    return directory


@pytest.fixture
def stub_serve(model_dir: Path, tmp_path: Path) -> Iterator[Served]:
    served = launch(
        [sys.executable, "-c", LAUNCHER, "serve", str(model_dir), "--startup-timeout", "30"],
        tmp_path,
        {"QUANTPLAN_API_KEY": KEY, "QUANTPLAN_CACHE_DIR": str(tmp_path / "cache")},
    )
    try:
        served.wait_ready(60, str(STUB))
        yield served
    finally:
        if served.process.poll() is None:
            served.kill()


def assert_stopped(served: Served, signum: signal.Signals, started: float) -> None:
    """quantplan exited promptly with 128 + signum, one line, and left nothing behind."""
    returncode = served.process.wait(timeout=30)
    elapsed = time.monotonic() - started
    expected = 130 if signum == signal.SIGINT else 128 + signum
    stderr = served.stderr.read_text()
    assert returncode == expected, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [f"quantplan: stopped by {signum.name}; child processes stopped"]
    assert elapsed < 25, f"took {elapsed:.1f} s to stop"
    assert not served.engine.is_running() or served.engine.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(ProcessLookupError):  # the engine's whole group is gone
        os.killpg(served.engine.pid, 0)
    assert port_is_free("127.0.0.1", served.port)


def assert_key_kept_secret(served: Served, variable: str) -> None:
    cmdline = Path(f"/proc/{served.engine.pid}/cmdline").read_bytes()
    assert KEY.encode() not in cmdline
    environ = Path(f"/proc/{served.engine.pid}/environ").read_bytes().split(b"\0")
    assert f"{variable}={KEY}".encode() in environ
    mode = stat.S_IMODE(served.log_path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(served.log_path.parent.stat().st_mode) == 0o700
    assert KEY not in served.log_path.read_text(errors="replace")
    assert KEY not in served.stdout.read_text() + served.stderr.read_text()
    base = f"http://127.0.0.1:{served.port}/v1/models"
    assert httpx.get(base, timeout=10).status_code == 401  # the engine did get the key
    authorized = httpx.get(base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert authorized.status_code == 200


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name
)
def test_serve_stops_the_engine_and_its_group_on_signal(
    stub_serve: Served, signum: signal.Signals
) -> None:
    started = time.monotonic()
    stub_serve.process.send_signal(signum)
    assert_stopped(stub_serve, signum, started)


def test_api_key_reaches_the_engine_by_environment_only(stub_serve: Served) -> None:
    assert_key_kept_secret(stub_serve, API_KEY_VARIABLE)


def test_engine_death_message_shows_the_command_line_without_secrets(
    model_dir: Path, tmp_path: Path
) -> None:
    # The stub refuses the unknown flag and echoes it, as engines echo a bad command line.
    options = ServeOptions(api_key=KEY, extra_args=["--hf-token", "hf_secret_value_123"])
    with pytest.raises(EngineDiedError) as caught:
        start_server(
            StubEngine(),
            model_dir,
            options,
            python=Path(sys.executable),
            hardware=CPU,
            logs=tmp_path / "logs",
        )
    message = str(caught.value)
    assert f"{STUB} --port" in message and "--hf-token ***" in message
    assert "hf_secret_value_123" not in message and KEY not in message


def test_secret_flags_are_redacted_and_look_alikes_are_not() -> None:
    command = ["python", "--api-key", "a1", "--hf-token=t2", "--api_key", "--model", "m"]
    command += ["--max-num-batched-tokens", "2048", "--ssl-keyfile", "key.pem", KEY]
    assert command_secrets(command) == ["a1", "t2"]
    assert redact_command(command, [KEY]) == (
        "python --api-key *** --hf-token=*** --api_key --model m "
        "--max-num-batched-tokens 2048 --ssl-keyfile key.pem ***"
    )


def test_engines_take_the_key_from_their_environment_and_drop_stray_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    # A user's shell may hold any of these: llama-cpp-python obeys HOST and PORT over --host
    # and --port, and either engine would demand a key that the health check does not send.
    stray = {"HOST": "0.0.0.0", "port": "1", "api_key": "x", "VLLM_API_KEY": "y"}
    for name, value in stray.items():
        monkeypatch.setenv(name, value)
    cases = (
        (LlamaCppServer(), gguf, "API_KEY", {"host", "port", "api_key"}),
        (VllmServer(), hf, "VLLM_API_KEY", {"vllm_api_key"}),
    )
    for engine, artifact, variable, never_inherited in cases:
        model = inspect_artifact(artifact)
        command = engine.command(Path(sys.executable), model, ServeOptions(api_key=KEY), 8000)
        assert KEY not in " ".join(command)
        assert engine_environment(engine, ServeOptions(api_key=KEY))[variable] == KEY
        inherited = {name.lower() for name in engine_environment(engine, ServeOptions())}
        assert not inherited & never_inherited, engine.name


@pytest.mark.engine
@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.integration
def test_real_llama_cpp_serve_keeps_the_key_secret_and_stops_on_sigterm(tmp_path: Path) -> None:
    from quantplan.agent.model_source import default_gguf
    from quantplan.agent.toolchains import ensure_toolchain

    ensure_toolchain("llama-cpp")
    gguf = default_gguf()
    served = launch(
        [str(QUANTPLAN), "serve", str(gguf), "--threads", "1", "--max-model-len", "512"],
        tmp_path,
        # A stray HOST or PORT (llama-cpp-python obeys them) or LLAMA_ARG_HOST/PORT (llama-server
        # reads them for options it is not given) must not move the server.
        {
            "QUANTPLAN_API_KEY": KEY,
            "HOST": "0.0.0.0",
            "PORT": "1",
            "LLAMA_ARG_HOST": "0.0.0.0",
            "LLAMA_ARG_PORT": "1",
        },
    )
    try:
        served.wait_ready(180, "llama-server")
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in served.engine.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {("127.0.0.1", served.port)}
        assert_key_kept_secret(served, "LLAMA_API_KEY")
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert_stopped(served, signal.SIGTERM, started)
    finally:
        if served.process.poll() is None:
            served.kill()


# A long command as quantize, evaluate or a toolchain build run one: a child in its own group
# (run_logged) whose grandchild would outlive a plain kill of the child.
LONG_COMMAND = """
import signal, sys
from pathlib import Path
from quantplan.agent.toolchains.process import run_logged, stop_children_on_signals
if sys.argv[2] == "nohup":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
with stop_children_on_signals(grace_s=2):
    run_logged(["sh", "-c", "sleep 300 & echo started; wait"], Path(sys.argv[1]), what="work")
"""


def _wait_for_grandchild(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        descendants = psutil.Process(process.pid).children(recursive=True)
        if any(p.name() == "sleep" for p in descendants):
            return descendants
        time.sleep(0.1)
    pytest.fail("the long command did not start its children")


@pytest.mark.parametrize("ignored", [False, True], ids=["sighup", "sighup-under-nohup"])
def test_long_command_stops_its_grandchildren_unless_the_signal_was_ignored(
    tmp_path: Path, ignored: bool
) -> None:
    command = [sys.executable, "-c", LONG_COMMAND, str(tmp_path / "work.log")]
    process = subprocess.Popen(
        [*command, "nohup" if ignored else "-"],
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=signals_at_their_defaults,
    )
    descendants: list[psutil.Process] = []
    try:
        descendants = _wait_for_grandchild(process)
        process.send_signal(signal.SIGHUP)
        if ignored:
            with pytest.raises(subprocess.TimeoutExpired):
                process.wait(timeout=2)
            assert all(p.is_running() for p in descendants)
            return
        assert process.wait(timeout=20) == 128 + signal.SIGHUP
        assert process.stderr is not None
        assert process.stderr.read().decode().strip() == (
            "quantplan: stopped by SIGHUP; child processes stopped"
        )
        psutil.wait_procs(descendants, timeout=5)
        assert not any(p.is_running() for p in descendants)
    finally:
        process.kill()
        for leftover in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        process.wait(10)
