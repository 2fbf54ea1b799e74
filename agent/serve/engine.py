"""The one small interface every serving engine implements, and what an artifact is.

An engine says up front whether it can serve an artifact on this hardware and why not
(``can_run``), checks the artifact's format before anything starts (``check_artifact``), and
builds the command line of its OpenAI-compatible server. The manager does everything else.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.serve.errors import InvalidArtifactError
from quantplan.agent.serve.gguf_header import metadata_int
from quantplan.agent.serve.host import HostHardware

GGUF_MAGIC = b"GGUF"


class ArtifactInfo(BaseModel):
    """What the files of an artifact say about themselves (no weights are loaded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    format: Literal["hf", "gguf"]
    quant_method: str = Field(
        description="none (16-bit), gptq, awq, compressed-tensors, or the GGUF file type"
    )
    weight_bits: int | None = Field(default=None, description="Quantized weight bits, if known")
    symmetric: bool | None = Field(default=None, description="Symmetric quantization, if known")
    activations: str | None = Field(
        default=None,
        description="Quantized activations as type and bits ('int8' for INT8 W8A8, 'float8' "
        "for FP8 W8A8); None: 16-bit activations",
    )
    size_bytes: int = Field(ge=0, description="Bytes on disk (weights + metadata)")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _gguf_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    files = sorted(path.glob("*.gguf"))
    return files[0] if len(files) == 1 else None


def inspect_artifact(path: Path) -> ArtifactInfo:
    """Describe a model directory or GGUF file, or say clearly why it is not one."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidArtifactError(
            f"artifact {path} does not exist",
            hint="pass a model directory (config.json + safetensors) or a .gguf file",
        )
    gguf = _gguf_file(path)
    if gguf is not None and (path.is_file() or not (path / "config.json").exists()):
        with gguf.open("rb") as handle:
            magic = handle.read(4)
        if magic != GGUF_MAGIC:
            raise InvalidArtifactError(
                f"{gguf} is not a GGUF file (magic {magic!r}, expected {GGUF_MAGIC!r})",
                hint="the file is truncated or another format; re-create it with "
                "`quantplan quantize --method gguf`",
            )
        return ArtifactInfo(
            path=gguf, format="gguf", quant_method=_gguf_type(gguf), size_bytes=_size(gguf)
        )
    config_path = path / "config.json"
    if not path.is_dir() or not config_path.exists():
        raise InvalidArtifactError(
            f"{path} is neither a GGUF file nor a Hugging Face model directory",
            hint="a model directory holds config.json and *.safetensors",
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidArtifactError(f"{config_path} is not valid JSON: {error}") from error
    qconfig = config.get("quantization_config")
    method, bits, symmetric = _hf_quantization(qconfig)
    return ArtifactInfo(
        path=path,
        format="hf",
        quant_method=method,
        weight_bits=bits,
        activations=_quantized_activations(qconfig),
        symmetric=symmetric,
        size_bytes=_size(path),
    )


def _hf_quantization(qconfig: dict | None) -> tuple[str, int | None, bool | None]:
    if not qconfig:
        return "none", None, None
    method = str(qconfig.get("quant_method", "unknown"))
    if method == "compressed-tensors":
        for group in (qconfig.get("config_groups") or {}).values():
            weights = group.get("weights") or {}
            if weights.get("num_bits") is not None:
                return method, int(weights["num_bits"]), weights.get("symmetric")
        return method, None, None
    bits = qconfig.get("bits") or qconfig.get("w_bit")
    symmetric = qconfig.get("sym")
    if symmetric is None and "zero_point" in qconfig:
        symmetric = not qconfig["zero_point"]
    return method, int(bits) if bits else None, symmetric


def _quantized_activations(qconfig: dict | None) -> str | None:
    """compressed-tensors' input activations as 'int8' / 'float8' (W8A8); None: weight-only."""
    if not qconfig or qconfig.get("quant_method") != "compressed-tensors":
        return None
    for group in (qconfig.get("config_groups") or {}).values():
        activations = group.get("input_activations") or {}
        if activations.get("num_bits") is not None:
            return f"{activations.get('type', 'int')}{int(activations['num_bits'])}"
    return None


def gguf_eos_token_id(path: Path) -> int | None:
    """The end-of-sequence token id from a GGUF's tokenizer metadata, if it has one."""
    try:
        return metadata_int(path, "tokenizer.ggml.eos_token_id")
    except Exception:  # unreadable metadata: the engine reports the file itself
        return None


def _gguf_type(path: Path) -> str:
    """The GGUF file type name (e.g. MOSTLY_Q4_K_M) from its metadata, 'gguf' if unreadable."""
    try:
        from gguf import LlamaFileType

        file_type = metadata_int(path, "general.file_type")
        if file_type is None:
            return "gguf"
        return LlamaFileType(file_type).name
    except Exception:  # a damaged header is for the engine to report; the format is known
        return "gguf"


class ServeOptions(BaseModel):
    """How to run a server; every engine honours these."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Bind address; never 0.0.0.0 unless asked")
    port: int | None = Field(default=None, ge=1, le=65535, description="None = a free port")
    api_key: str | None = Field(
        default=None,
        description="Require this bearer token on /v1 (passed to the engine in its environment)",
        repr=False,  # kept out of reprs, tracebacks and log lines that show the options
    )
    startup_timeout_s: float = Field(default=300.0, gt=0)
    threads: int | None = Field(default=None, ge=1, description="CPU threads for the engine")
    max_model_len: int = Field(default=2048, ge=64, description="Context length to allocate")
    served_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:+/-]{1,200}$",  # naming.SERVED_NAME_PATTERN
        description="Model name clients send; None = <model>-<scheme> from the artifact",
    )
    kv_cache_gib: float = Field(default=2.0, gt=0, description="vLLM CPU KV cache space")
    prefix_caching: bool | None = Field(
        default=None,
        description="Reuse KV cache across requests sharing a prefix (None = engine default). "
        "Benchmarks turn it off so every request pays its own prefill",
    )
    gpu_layers: int = Field(default=-1, description="llama.cpp layers on the GPU (-1 = all)")
    parallel_slots: int | None = Field(
        default=None,
        ge=1,
        le=512,
        description="llama-server's parallel slots (requests batched together); each slot gets "
        "max_model_len tokens of context. None = the engine's default",
    )
    batch_size: int | None = Field(
        default=None, ge=1, description="llama-server's logical batch (-b); None = its default"
    )
    ubatch_size: int | None = Field(
        default=None, ge=1, description="llama-server's physical batch (-ub); None = its default"
    )
    extra_args: list[str] = Field(default_factory=list, description="Passed to the engine as-is")


class EngineServer(ABC):
    """One serving engine. Subclasses are stateless; the manager owns the process.

    Each engine is a folder under ``agent/serve/`` that registers its class in
    ``serve/registry.py``; nothing else in the agent names it.
    """

    name: ClassVar[str]
    # The catalog's name for what this server runs (catalog/registry.py ENGINES): the engine
    # that profiles and support rows measured with this server are filed under.
    catalog_engine: ClassVar[str]
    # The managed environment the server runs from (agent/toolchains/specs.py).
    toolchain: ClassVar[str]
    # Where the engine itself is built or installed: the toolchain spec, or a native build.
    build_recipe: ClassVar[str]
    # Artifact formats (ArtifactInfo.format) this engine is the default server for.
    default_for_formats: ClassVar[tuple[str, ...]] = ()
    health_path: ClassVar[str] = "/v1/models"
    # The environment variable the server reads its API key from. Keys never go on the
    # command line: /proc/PID/cmdline is readable by every local user. None: no key possible.
    api_key_variable: ClassVar[str | None] = None
    # Inherited variables the server would obey over its command line (matched ignoring case),
    # removed from its environment so a stray HOST or PORT cannot move the server.
    ignored_environment: ClassVar[tuple[str, ...]] = ()
    # The same for whole families of variables (matched by prefix, ignoring case).
    ignored_environment_prefixes: ClassVar[tuple[str, ...]] = ()
    # A native server binary, not a program of the toolchain's Python: serving needs the
    # binary's build, not the toolchain's environment (which a GPU image may never get).
    native_binary: ClassVar[bool] = False
    # Whether a CUDA build can keep only the first N layers on the GPUs (``gpu_layers``).
    partial_offload: ClassVar[bool] = False

    def __init__(self, *, cuda: bool = False) -> None:
        # A CUDA build of the engine rather than its CPU build (where the engine has both).
        self.cuda = cuda

    @abstractmethod
    def can_run(self, hardware: HostHardware, model: ArtifactInfo) -> tuple[bool, str]:
        """Whether this engine serves ``model`` on ``hardware``; the reason either way."""

    @abstractmethod
    def command(
        self, python: Path, model: ArtifactInfo, options: ServeOptions, port: int
    ) -> list[str]:
        """The server's command line."""

    def environment(self, options: ServeOptions) -> dict[str, str]:
        """Extra environment variables for the server process."""
        return {}

    def served_model_name(self, model: ArtifactInfo, options: ServeOptions | None = None) -> str:
        """The ``model`` field clients must send: ``options.served_name`` when given, else
        ``<model>-<scheme>`` from the artifact's manifest (see serve/naming.py)."""
        from quantplan.agent.serve.naming import default_served_name

        if options is not None and options.served_name:
            return options.served_name
        return default_served_name(model.path, model.format)

    def ignore_eos_body(self, model: ArtifactInfo) -> dict[str, object]:
        """Request fields that make this engine generate past EOS (none if it knows ignore_eos)."""
        return {}

    def version_probe(self) -> str:
        """Python source printing the engine's version, run with the toolchain interpreter."""
        return "print('unknown')"

    def provenance(self, python: Path) -> dict[str, str | None]:
        """Engine version and build flags: ``version_probe`` run with the toolchain's
        interpreter (a native engine overrides this to ask its binary)."""
        import subprocess

        try:
            out = subprocess.run(
                [str(python), "-c", self.version_probe()],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
            return json.loads(out.strip().splitlines()[-1])
        except (subprocess.SubprocessError, OSError, json.JSONDecodeError, IndexError):
            return {"engine_version": None, "build": None}

    @abstractmethod
    def check_artifact(self, model: ArtifactInfo) -> None:
        """Raise InvalidArtifactError if the engine cannot load this format at all."""
