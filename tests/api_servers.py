"""Starting a real `quantplan api` for tests and benches of the wire."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))


def start_api(*args: str, timeout: float = 90) -> tuple[subprocess.Popen[str], str]:
    """A started ``quantplan api ARGS`` on a free port and its base URL, once /healthz answers.
    The caller stops it (terminate, or a signal)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [QUANTPLAN, "api", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(f"server did not start: {server.stderr.read()}") from None
            time.sleep(0.2)
