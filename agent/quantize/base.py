"""The one small interface every quantization method implements.

A quantizer is declared by a strict pydantic config (``config_type``), says up front whether it
can run on given hardware for a given model (``can_run``) and refuses impossible parameters
before anything heavy starts (``check``). ``quantize`` produces the artifact files in a staging
directory; the orchestration in ``api.py`` owns caching, the store and the manifest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.artifacts import ArtifactManifest, ArtifactStore
from quantplan.agent.model_source import ModelSource
from quantplan.agent.serve.host import HostHardware
from quantplan.agent.toolchains.steps import StepProgress
from quantplan.errors import QuantplanError


class QuantizeRefusal(QuantplanError):
    """The method cannot run with these parameters, on this model or hardware."""


class QuantizerConfig(BaseModel):
    """Base of every method's config: strict, hashable into the artifact id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measure_layer_error: bool = Field(
        default=True,
        description="Dequantize every quantized weight and compare it with its 16-bit original "
        "(seconds of extra work; the quantized weights are the same either way).",
    )


class QuantizeOutcome(BaseModel):
    """What a quantizer reports after writing its files into the staging directory."""

    model_config = ConfigDict(extra="forbid")

    scheme: str = Field(description="Catalog scheme name of the result.")
    kind: Literal["compressed-tensors", "gguf"]
    main_file: str | None = None
    bits_per_weight: float | None = None
    quantize_seconds: float = Field(ge=0)
    peak_memory_mb: float | None = None
    calibration: dict[str, Any] | None = None
    layer_errors: list[dict[str, Any]] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


ProgressCallback = Callable[[StepProgress], None] | None


class Quantizer(ABC):
    """A quantization method behind one interface."""

    # A canonical method name of catalog/registry.py, checked when the method registers.
    method: ClassVar[str]
    toolchain: ClassVar[str]
    config_type: ClassVar[type[QuantizerConfig]]

    def can_run(self, hardware: HostHardware, model: ModelSource) -> tuple[bool, str]:
        """Whether this method can run here at all, and why not (default: any x86/CPU host)."""
        del hardware, model
        return True, "runs on CPU"

    @abstractmethod
    def check(self, config: QuantizerConfig, model: ModelSource) -> None:
        """Raise :class:`QuantizeRefusal` for parameters that cannot work on ``model``."""

    @abstractmethod
    def scheme_name(self, config: QuantizerConfig, model: ModelSource) -> str:
        """Catalog scheme name the config produces (e.g. 'gptq-w4a16-g64')."""

    def prerequisite(self, config: QuantizerConfig) -> tuple[str, dict[str, Any]] | None:
        """The (method, options) of an artifact this one is made from, if any (GGUF types are
        made from the F16 GGUF). The caller builds or finds it and passes its manifest in."""
        del config
        return None

    @abstractmethod
    def quantize(
        self,
        model: ModelSource,
        config: QuantizerConfig,
        staging: Path,
        on_progress: ProgressCallback = None,
        store: ArtifactStore | None = None,
        prerequisite: ArtifactManifest | None = None,
    ) -> QuantizeOutcome:
        """Write the artifact into ``staging`` (a fresh directory) and describe it.

        ``store`` holds ``prerequisite``, the artifact named by :meth:`prerequisite`.
        """
