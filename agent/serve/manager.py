"""Start, watch and stop one engine server process.

``start_server`` refuses early what cannot work (missing artifact, wrong format, hardware the
engine cannot use, port taken), then starts the engine in its own process group with its log
in a file, and waits for the health check. Any failure leaves no process behind and raises one
of the errors in :mod:`quantplan.agent.serve.errors`, classified from the engine's log.

The API key reaches the engine through its environment (``EngineServer.api_key_variable``),
never its command line, which any local user can read in ``/proc/PID/cmdline``; logs are
created readable by their owner only, and error text has the key redacted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import httpx

from quantplan.agent.benchmark.client import Endpoint
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
from quantplan.agent.serve.host import HostHardware, detect_host
from quantplan.agent.toolchains.process import (
    STOP_GRACE_S,
    command_secrets,
    redact,
    redact_command,
    start_in_group,
    stop_group,
)
from quantplan.paths import cache_dir

HEALTH_POLL_S = 0.5


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
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.model = model
        self.process = process
        self.endpoint = endpoint
        self.port = port
        self.log_path = log_path
        # Redacted from any log text shown: an engine may echo its arguments or settings.
        self.secrets = secrets
        self.startup_s: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        """The engine's log, with the secrets redacted should the engine have printed them."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return redact(text, self.secrets)

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
        stop_group(self.process, grace_s)

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


def engine_environment(engine: EngineServer, options: ServeOptions) -> dict[str, str]:
    """The server's environment: ours, less what the engine would obey over its command line,
    plus its own variables and the API key (only when one is asked for)."""
    dropped = {name.lower() for name in engine.ignored_environment}
    if engine.api_key_variable:
        dropped.add(engine.api_key_variable.lower())
    prefixes = tuple(prefix.lower() for prefix in engine.ignored_environment_prefixes)
    environment = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in dropped and not (prefixes and k.lower().startswith(prefixes))
    }
    environment.update(engine.environment(options))
    if options.api_key:
        if not engine.api_key_variable:
            raise ServeError(
                f"{engine.name} cannot take an API key without showing it on its command line",
                hint="serve without --api-key behind a proxy that checks it",
            )
        environment[engine.api_key_variable] = options.api_key
    return environment


def _create_private_log(path: Path) -> int:
    """A new log file only its owner can read (a descriptor); engines may print secrets."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)  # also when an older version made it world-readable
    # O_EXCL: an existing file (same engine, model, second and port) keeps its old mode when
    # reopened, so it is replaced rather than truncated.
    path.unlink(missing_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _healthy(client: httpx.Client, endpoint: Endpoint, path: str) -> bool:
    try:
        return client.get(endpoint.base_url + path, headers=endpoint.headers).status_code == 200
    except httpx.HTTPError:
        return False


def resolve_toolchain_python(toolchain: str, *, install: bool = True) -> Path:
    """The interpreter of a managed toolchain, built on first use unless ``install`` is off."""
    from quantplan.agent.toolchains import ensure_toolchain

    return Path(ensure_toolchain(toolchain, install=install).python)


def engine_interpreter(engine: EngineServer, *, install: bool = True) -> Path:
    """The interpreter ``engine``'s command is given: its toolchain's, built on first use unless
    ``install`` is off; for a native server binary, which runs under none, this process's own
    (so serving it never builds a Python environment it does not use)."""
    if engine.native_binary:
        return Path(sys.executable)
    return resolve_toolchain_python(engine.toolchain, install=install)


def engine_provenance(engine: EngineServer, python: Path) -> dict[str, str | None]:
    """Engine version and build flags, asked of the toolchain (or the engine's binary)."""
    return engine.provenance(python)


def start_server(
    engine: EngineServer,
    artifact: Path,
    options: ServeOptions | None = None,
    *,
    python: Path | None = None,
    hardware: HostHardware | None = None,
    logs: Path | None = None,
    on_launch: Callable[[int], None] | None = None,
) -> ServerHandle:
    """Start ``engine`` on ``artifact`` and return once it answers its health check.

    ``on_launch`` hears the server's pid (= its process group) as soon as it exists, before the
    health wait: a node agent notes it there, so a server whose agent dies while it starts can
    still be found and stopped."""
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
    python = python or engine_interpreter(engine)
    log_path = (logs or log_dir()) / (
        f"{engine.name}-{model.path.stem}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{port}.log"
    )
    command = engine.command(python, model, options, port)
    environment = engine_environment(engine, options)
    secrets = tuple(filter(None, [options.api_key, *command_secrets(command)]))
    with os.fdopen(_create_private_log(log_path), "wb") as log_file:
        log_file.write(f"$ {redact_command(command, secrets)}\n".encode())
        log_file.flush()
        # The engine's start counts from here, whatever runs between this and the health loop.
        launched = time.monotonic()
        process = start_in_group(  # its own process group: stop() reaches every child
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
        )
    host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host
    endpoint = Endpoint(
        base_url=f"http://{host}:{port}",
        model=engine.served_model_name(model, options),
        api_key=options.api_key,
        ignore_eos_body=engine.ignore_eos_body(model),
    )
    handle = ServerHandle(engine, model, process, endpoint, port, log_path, secrets)
    try:
        if on_launch is not None:
            on_launch(process.pid)
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
                # ("couldn't bind HTTP server socket": llama-server's words for it.)
                log = handle.log_text().lower()
                if "address already in use" in log or "couldn't bind http server socket" in log:
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
