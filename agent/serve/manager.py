"""Start, watch and stop one engine server process.

``start_server`` refuses early what cannot work (missing artifact, wrong format, hardware the
engine cannot use, port taken), then starts the engine in its own process group with its log
in a file, and waits for the health check. Any failure leaves no process behind and raises one
of the errors in :mod:`quantplan.agent.serve.errors`, classified from the engine's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import httpx
from quantplan.agent.bench.client import Endpoint
from quantplan.agent.serve.engine import ArtifactInfo, EngineServer, ServeOptions, inspect_artifact
from quantplan.agent.serve.errors import (
    EngineDiedError,
    NeverHealthyError,
    PortInUseError,
    ServeError,
    UnsupportedHardwareError,
    classify_engine_log,
    last_lines,
)
from quantplan.agent.serve.hardware import HostHardware, detect_host

from quantplan.paths import cache_dir

HEALTH_POLL_S = 0.5
STOP_GRACE_S = 20.0


def log_dir() -> Path:
    return cache_dir() / "serve-logs"


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (connections in TIME_WAIT do not count,
    since servers bind with SO_REUSEADDR as this probe does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServerHandle:
    """A running server. Use as a context manager, or call :meth:`stop`."""

    def __init__(
        self,
        engine: EngineServer,
        model: ArtifactInfo,
        process: subprocess.Popen[bytes],
        endpoint: Endpoint,
        port: int,
        log_path: Path,
    ) -> None:
        self.engine = engine
        self.model = model
        self.process = process
        self.endpoint = endpoint
        self.port = port
        self.log_path = log_path
        self.startup_s: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def failure(self, what: str) -> ServeError:
        """The error that explains why the process is gone (or misbehaving), from its log."""
        log = self.log_text()
        error_class = classify_engine_log(log) or EngineDiedError
        code = self.process.poll()
        detail = f"{what}" + (f" (exit code {code})" if code is not None else "")
        tail = last_lines(log)
        return error_class(
            f"{self.engine.name} server {detail}" + (f":\n{tail}" if tail else ""),
            hint=_HINTS.get(error_class.kind),
            log_path=self.log_path,
        )

    def raise_if_dead(self) -> None:
        if not self.alive():
            raise self.failure("died")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after ``grace_s``."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace_s)
        # Children (vLLM's engine core) may outlive a leader that exited on its own.
        _signal_group(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


_HINTS = {
    "out_of_memory": "lower --max-model-len or the KV cache space, or use a smaller scheme",
    "unsupported_hardware": "pick a scheme this hardware supports (see `quantplan plan`)",
    "kernel_missing": "the engine build lacks a kernel for this scheme; try another engine",
    "bad_input": "re-create the artifact with `quantplan quantize`",
    "engine_died": "see the log; `quantplan toolchain doctor` checks the engine install",
    "port_in_use": "pick another --port, or stop the process that holds it",
}


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _healthy(client: httpx.Client, endpoint: Endpoint, path: str) -> bool:
    try:
        return client.get(endpoint.base_url + path, headers=endpoint.headers).status_code == 200
    except httpx.HTTPError:
        return False


def resolve_toolchain_python(toolchain: str, *, install: bool = True) -> Path:
    """The interpreter of a managed toolchain, built on first use unless ``install`` is off."""
    from quantplan.agent.toolchains import ensure_toolchain

    return Path(ensure_toolchain(toolchain, install=install).python)


def engine_provenance(engine: EngineServer, python: Path) -> dict[str, str | None]:
    """Engine version and build flags, asked of the toolchain's own interpreter."""
    try:
        out = subprocess.run(
            [str(python), "-c", engine.version_probe()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, json.JSONDecodeError, IndexError):
        return {"engine_version": None, "build": None}


def start_server(
    engine: EngineServer,
    artifact: Path,
    options: ServeOptions | None = None,
    *,
    python: Path | None = None,
    hardware: HostHardware | None = None,
    logs: Path | None = None,
) -> ServerHandle:
    """Start ``engine`` on ``artifact`` and return once it answers its health check."""
    options = options or ServeOptions()
    model = inspect_artifact(artifact)
    engine.check_artifact(model)
    hardware = hardware or detect_host()
    ok, reason = engine.can_run(hardware, model)
    if not ok:
        raise UnsupportedHardwareError(
            f"{engine.name} cannot serve {model.path.name} on {hardware.describe()}: {reason}",
            hint=_HINTS["unsupported_hardware"],
        )
    if options.port is not None and not port_is_free(options.host, options.port):
        raise PortInUseError(
            f"port {options.port} on {options.host} is already in use",
            hint=_HINTS["port_in_use"],
        )
    port = options.port or free_port(options.host)
    python = python or resolve_toolchain_python(engine.toolchain)
    log_path = (logs or log_dir()) / (
        f"{engine.name}-{model.path.stem}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{port}.log"
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = engine.command(python, model, options, port)
    with log_path.open("wb") as log_file:
        log_file.write(("$ " + " ".join(command) + "\n").encode())
        log_file.flush()
        # The engine's start counts from here, whatever runs between this and the health loop.
        launched = time.monotonic()
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **engine.environment(options)},
            start_new_session=True,  # its own process group: stop() reaches every child
        )
    host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host
    endpoint = Endpoint(
        base_url=f"http://{host}:{port}",
        model=engine.served_model_name(model),
        api_key=options.api_key,
        ignore_eos_body=engine.ignore_eos_body(model),
    )
    handle = ServerHandle(engine, model, process, endpoint, port, log_path)
    try:
        _wait_healthy(handle, options.startup_timeout_s, launched)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_healthy(handle: ServerHandle, timeout_s: float, started: float) -> None:
    with httpx.Client(timeout=5.0) as client:
        while True:
            if not handle.alive():
                error = handle.failure("exited during startup")
                # A port taken between our check and the engine's bind shows up only in the log.
                if "address already in use" in handle.log_text().lower():
                    error = PortInUseError(
                        f"port {handle.port} was taken before the server could bind it",
                        hint=_HINTS["port_in_use"],
                        log_path=handle.log_path,
                    )
                raise error
            if _healthy(client, handle.endpoint, handle.engine.health_path):
                handle.startup_s = time.monotonic() - started
                return
            if time.monotonic() - started > timeout_s:
                raise NeverHealthyError(
                    f"{handle.engine.name} server did not answer {handle.engine.health_path} "
                    f"within {timeout_s:g} s",
                    hint="raise --startup-timeout, or read the log for where it hangs",
                    log_path=handle.log_path,
                )
            time.sleep(HEALTH_POLL_S)
