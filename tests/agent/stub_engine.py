"""A stand-in engine for unit-level tests: it runs tests/agent/serving_stub.py, a real server."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from quantplan.agent.serve.engine import ArtifactInfo, EngineServer, ServeOptions
from quantplan.agent.serve.host import HostHardware

STUB = Path(__file__).with_name("serving_stub.py")
API_KEY_VARIABLE = "QUANTPLAN_STUB_API_KEY"  # read by serving_stub.py, as engines read theirs
CPU = HostHardware(
    device_kind="cpu", cpu_flags=frozenset({"avx2", "avx512f"}), logical_cpus=2, memory_gb=8
)
OLD_CPU = HostHardware(
    device_kind="cpu", cpu_flags=frozenset({"avx2"}), logical_cpus=2, memory_gb=8
)


class StubEngine(EngineServer):
    name: ClassVar[str] = "stub"
    toolchain: ClassVar[str] = "none"
    api_key_variable: ClassVar[str | None] = API_KEY_VARIABLE

    def __init__(self, mode: str = "healthy", token_delay: float = 0.01) -> None:
        self.mode = mode
        self.token_delay = token_delay

    def can_run(self, hardware: HostHardware, model: ArtifactInfo) -> tuple[bool, str]:
        return True, "the stub runs anywhere"

    def check_artifact(self, model: ArtifactInfo) -> None:
        return None

    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        command = [str(python), str(STUB), "--port", str(port), "--host", options.host]
        command += ["--mode", self.mode, "--token-delay", str(self.token_delay)]
        return command + list(options.extra_args)
