"""llama.cpp for GGUF files: its own ``llama-server`` (the engine), and llama-cpp-python's server.

``llama-server`` (engine ``llama.cpp``) has parallel slots and continuous batching: requests
in flight share each forward pass. It is built from the llama.cpp tree vendored in the pinned
llama-cpp-python sdist (``toolchains/llama_server.py``). llama-cpp-python's server (engine
``llama-cpp-python``) answers one request at a time; it stays for side-by-side benchmarks, and
the Python bindings stay for quantization and logits.

The build flags decide what runs: on these machines llama.cpp is built with AMX off
(``GGML_NATIVE=OFF``, AVX-512 on), because the CPUs advertise AMX that the VM does not allow.
A CUDA build offloads all layers with ``gpu_layers=-1``, or the first N with ``gpu_layers=N``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import ClassVar

from quantplan.agent.serve.engine import (
    ArtifactInfo,
    EngineServer,
    ServeOptions,
    gguf_eos_token_id,
)
from quantplan.agent.serve.errors import InvalidArtifactError
from quantplan.agent.serve.host import HostHardware
from quantplan.errors import QuantplanError

# The managed CPU build enables these instruction sets; a CPU without them would SIGILL.
CPU_BUILD_FLAGS = ("avx2", "fma", "f16c", "avx512f")
# Parallel slots when the plan does not say (llama-server's own default is 4 with a unified
# cache); on the 2-core CPU machine throughput still grew from 4 to 8 concurrent requests.
DEFAULT_PARALLEL_SLOTS = 4
# "All layers" for -ngl: llama.cpp caps it at the model's layer count plus the output layer.
ALL_LAYERS = 999


class GgufServer(EngineServer):
    """A llama.cpp server of GGUF files: what both servers share is which files and hosts they
    take (the managed build's instruction sets, or a CUDA GPU)."""

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


class LlamaServer(GgufServer):
    """llama.cpp's ``llama-server``: N parallel slots, continuous batching, ``/metrics``."""

    name: ClassVar[str] = "llama.cpp"
    catalog_engine: ClassVar[str] = "llama.cpp"
    toolchain: ClassVar[str] = "llama-cpp"
    build_recipe: ClassVar[str] = (
        "agent/toolchains/llama_server.py: llama-server built from the llama.cpp tree of the "
        "llama-cpp toolchain's pinned sdist"
    )
    default_for_formats: ClassVar[tuple[str, ...]] = ("gguf",)
    # Public (no key needed); 503 while the model loads, 200 once it can answer.
    health_path: ClassVar[str] = "/health"
    # common/arg.cpp: --api-key falls back to LLAMA_API_KEY.
    api_key_variable: ClassVar[str | None] = "LLAMA_API_KEY"
    # Every option has an LLAMA_ARG_* variable (common/arg.cpp); one we do not pass, such as
    # LLAMA_ARG_HF_REPO or LLAMA_ARG_MODEL_URL, would change what the server loads or fetches.
    ignored_environment_prefixes: ClassVar[tuple[str, ...]] = ("LLAMA_ARG_",)
    native_binary: ClassVar[bool] = True
    partial_offload: ClassVar[bool] = True

    def __init__(self, *, cuda: bool = False, binary: Path | None = None) -> None:
        super().__init__(cuda=cuda)
        self._binary = binary

    def binary(self, *, install: bool = True) -> Path:
        """The llama-server executable: the one given, or the managed build for this host."""
        if self._binary is None:
            from quantplan.agent.toolchains.llama_server import (
                detect_cuda_architecture,
                ensure_llama_server,
            )

            architecture = detect_cuda_architecture() if self.cuda else None
            if self.cuda and architecture is None:
                raise InvalidArtifactError(
                    "a CUDA llama-server needs nvidia-smi and nvcc, and neither answered",
                    hint="install the CUDA toolkit, or serve on CPU",
                )
            self._binary = ensure_llama_server(architecture, install=install).server
        return self._binary

    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        # ``python`` goes unused: the server is a native binary (``native_binary``).
        slots = options.parallel_slots or DEFAULT_PARALLEL_SLOTS
        layers = options.gpu_layers if options.gpu_layers >= 0 else ALL_LAYERS
        command = [
            str(self.binary()),
            "--model",
            str(model.path),
            "--alias",
            self.served_model_name(model, options),
            "--host",
            options.host,
            "--port",
            str(port),
            # -c is the whole cache; each of the -np slots gets c / np tokens of context.
            "--ctx-size",
            str(slots * options.max_model_len),
            "--parallel",
            str(slots),
            "--cont-batching",
            "--n-gpu-layers",
            str(layers if self.cuda else 0),
            "--metrics",
        ]
        if options.threads:
            # -tb: prompt processing too; by default it would use every core of the host.
            command += ["--threads", str(options.threads)]
            command += ["--threads-batch", str(options.threads)]
        if options.batch_size:
            command += ["--batch-size", str(options.batch_size)]
        if options.ubatch_size:
            command += ["--ubatch-size", str(options.ubatch_size)]
        if options.prefix_caching is False:
            # A slot reuses the cached prefix of its last prompt (cache_prompt, on by default):
            # llama-server's prefix cache. Off, every request pays its whole prefill.
            command += ["--no-cache-prompt"]
        return command + list(options.extra_args)

    def provenance(self, python: Path) -> dict[str, str | None]:
        """Version and build flags, from the binary itself (``--version``)."""
        try:
            result = subprocess.run(
                [str(self.binary(install=False)), "--version"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError, QuantplanError):
            return {"engine_version": None, "build": None}
        lines = (result.stdout + result.stderr).strip().splitlines()
        version = next((line for line in lines if line.startswith("version")), None)
        build = next((line for line in lines if line.startswith("built with")), None)
        return {"engine_version": version, "build": ("llama-server " + (build or "")).strip()}


class LlamaCppServer(GgufServer):
    """llama-cpp-python's server: one request at a time (kept for side-by-side benchmarks)."""

    name: ClassVar[str] = "llama-cpp-python"
    # Its measurements are llama.cpp's: the same kernels, one request at a time.
    catalog_engine: ClassVar[str] = "llama.cpp"
    toolchain: ClassVar[str] = "llama-cpp"
    build_recipe: ClassVar[str] = "agent/toolchains/specs.py: the llama-cpp toolchain (sdist)"
    # llama-cpp-python's server settings are pydantic-settings models with no prefix: API_KEY
    # sets ``api_key``. Its __main__ also lets HOST and PORT override --host and --port, and
    # CONFIG_FILE replace the command line altogether (llama_cpp/server/__main__.py, 0.3.36).
    api_key_variable: ClassVar[str | None] = "API_KEY"
    ignored_environment: ClassVar[tuple[str, ...]] = ("HOST", "PORT", "CONFIG_FILE")

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
            self.served_model_name(model, options),
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
