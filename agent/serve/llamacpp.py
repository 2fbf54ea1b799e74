"""llama.cpp through llama-cpp-python's OpenAI-compatible server, for GGUF files.

The build flags decide what runs: on these machines the library is built with AMX off
(``GGML_NATIVE=OFF``, AVX-512 on), because the CPUs advertise AMX that the VM does not allow.
A CUDA build offloads all layers with ``gpu_layers=-1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from quantplan.agent.serve.engine import (
    ArtifactInfo,
    EngineServer,
    ServeOptions,
    gguf_eos_token_id,
)
from quantplan.agent.serve.errors import InvalidArtifactError
from quantplan.agent.serve.hardware import HostHardware

# The managed CPU build enables these instruction sets; a CPU without them would SIGILL.
CPU_BUILD_FLAGS = ("avx2", "fma", "f16c", "avx512f")


class LlamaCppServer(EngineServer):
    name: ClassVar[str] = "llama.cpp"
    toolchain: ClassVar[str] = "llama-cpp"
    # llama-cpp-python's server settings are pydantic-settings models with no prefix: API_KEY
    # sets ``api_key``. Its __main__ also lets HOST and PORT override --host and --port, and
    # CONFIG_FILE replace the command line altogether (llama_cpp/server/__main__.py, 0.3.36).
    api_key_variable: ClassVar[str | None] = "API_KEY"
    ignored_environment: ClassVar[tuple[str, ...]] = ("HOST", "PORT", "CONFIG_FILE")

    def __init__(self, *, cuda: bool = False) -> None:
        self.cuda = cuda

    def can_run(self, hardware: HostHardware, model: ArtifactInfo) -> tuple[bool, str]:
        if model.format != "gguf":
            return (
                False,
                "llama.cpp serves GGUF files; convert with `quantplan quantize --method gguf`",
            )
        if self.cuda:
            if hardware.device_kind != "gpu":
                return False, "this llama.cpp build offloads to CUDA, and no GPU is visible"
            return True, f"{model.quant_method} on llama.cpp CUDA ({hardware.gpu_name})"
        missing = [f for f in CPU_BUILD_FLAGS if f not in hardware.cpu_flags]
        if missing:
            return False, f"the llama-cpp CPU build uses {', '.join(missing)}; this CPU lacks it"
        return True, f"{model.quant_method} on llama.cpp CPU (AVX-512, AMX off)"

    def check_artifact(self, model: ArtifactInfo) -> None:
        if model.format != "gguf":
            raise InvalidArtifactError(
                f"{model.path} is a Hugging Face checkpoint; llama.cpp serves GGUF files",
                hint="convert it with `quantplan quantize --method gguf`, or use --engine vllm",
            )

    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        command = [
            str(python),
            "-m",
            "llama_cpp.server",
            "--model",
            str(model.path),
            "--model_alias",
            self.served_model_name(model),
            "--host",
            options.host,
            "--port",
            str(port),
            "--n_ctx",
            str(options.max_model_len),
            "--n_gpu_layers",
            str(options.gpu_layers if self.cuda else 0),
            # The server runs one request at a time; by default a new request cuts the stream
            # in flight short, which would turn concurrency into truncated answers. Queue instead.
            "--interrupt_requests",
            "false",
        ]
        if options.threads:
            command += ["--n_threads", str(options.threads)]
        return command + list(options.extra_args)

    def ignore_eos_body(self, model: ArtifactInfo) -> dict[str, object]:
        # llama-cpp-python's server drops unknown fields such as ignore_eos; a -100 logit bias
        # on the EOS token makes it generate the asked number of tokens, as vLLM does.
        eos = gguf_eos_token_id(model.path)
        return {"logit_bias": {str(eos): -100.0}} if eos is not None else {}

    def version_probe(self) -> str:
        return (
            "import json, llama_cpp\n"
            "info = llama_cpp.llama_print_system_info().decode(errors='replace')\n"
            "print(json.dumps({'engine_version': llama_cpp.__version__,"
            " 'build': ' '.join(info.split())}))"
        )
