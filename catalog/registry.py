"""One registry per extensible kind: quantization methods and serving engines.

A registry maps canonical names and their aliases (matched ignoring case) to what is registered
under them, and refuses an unknown name with the known ones closest to it (after SkyPilot's
``sky/utils/registry.py``). The catalog declares the *names* here, low enough that records, the
planner and targets validate against them without importing the agent; the agent registers the
*behaviour* (quantizers, engine servers) in registries of its own, keyed by these names.

No other module lists methods or engines: a pydantic field takes ``MethodName`` or
``EngineName`` and accepts exactly what is registered, so adding a method or an engine is one
``register`` line here, its folder under ``agent/`` and its catalog rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from quantplan.errors import UnknownNameError, did_you_mean, shorten

T = TypeVar("T")


class Registry(Generic[T]):
    """Canonical names, their aliases and the value registered under each name."""

    def __init__(self, what: str, *, within: Registry[Any] | None = None) -> None:
        """``what`` names the kind in errors ("quantization method"); a registry ``within``
        another only takes names (or aliases) the other one knows, stored canonically."""
        self.what = what
        self.within = within
        self._values: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # lower-case name or alias -> canonical name

    def register(self, name: str, value: T, *, aliases: Iterable[str] = ()) -> T:
        """Register ``value`` as ``name``; a name or alias taken twice is a programming error."""
        if self.within is not None:
            name = self.within.canonical(name)
        for key in (name, *aliases):
            taken = self._aliases.get(key.lower())
            if taken is not None:
                raise ValueError(f"{self.what} {key!r} is already registered (as {taken!r})")
        self._values[name] = value
        for key in (name, *aliases):
            self._aliases[key.lower()] = name
        return value

    def names(self) -> tuple[str, ...]:
        """Canonical names in registration order."""
        return tuple(self._values)

    def find(self, name: str) -> str | None:
        """The canonical name for ``name`` or one of its aliases, in any case; None if unknown."""
        return self._aliases.get(name.lower()) if isinstance(name, str) else None

    def canonical(self, name: str) -> str:
        """The canonical name for ``name``, or an :class:`UnknownNameError` with near misses."""
        found = self.find(name)
        if found is None:
            raise UnknownNameError(self.what, name, self.names())
        return found

    def get(self, name: str) -> T:
        """The value registered under ``name`` (or an alias of it)."""
        return self._values[self.canonical(name)]

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._values.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class NameKind:
    """What the catalog knows about a registered name besides the name itself."""

    description: str


@dataclass(frozen=True)
class RegisteredName:
    """Pydantic metadata: a string that must be a name (or alias) of ``registry``.

    Validation is strict (a string, nothing coerced) and stores the canonical name; an unknown
    name is refused with "did you mean". The JSON schema is an ``enum`` of the canonical names,
    read when the schema is generated, so it lists whatever is registered then.
    """

    registry: Registry[Any]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        del source
        return core_schema.no_info_after_validator_function(
            self._validate, core_schema.str_schema(strict=True)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        del schema, handler
        return {"enum": list(self.registry.names()), "type": "string"}

    def _validate(self, value: str) -> str:
        found = self.registry.find(value)
        if found is not None:
            return found
        hint = did_you_mean(value, self.registry.names())
        known = ", ".join(self.registry.names())
        raise PydanticCustomError(
            "unknown_name",
            "unknown {what} {name}{hint}; known: {known}",
            {
                "what": self.registry.what,
                "name": repr(shorten(value, 40)),
                "hint": f" ({hint})" if hint else "",
                "known": known,
            },
        )


# ---------------------------------------------------------------- the names

METHODS: Registry[NameKind] = Registry("quantization method")
"""Scheme families: how the weights of a catalog scheme were quantized."""

METHODS.register("baseline", NameKind("16-bit weights, no quantization"))
METHODS.register("gptq", NameKind("GPTQ: Hessian-based error compensation, integer weights"))
METHODS.register("awq", NameKind("AWQ: activation-aware scaling, then round-to-nearest"))
METHODS.register("gguf", NameKind("llama.cpp's GGUF block types (Q8_0, Q4_K_M, ...)"))
METHODS.register("fp8", NameKind("FP8 weights (and activations: W8A8-FP8)"))
METHODS.register("int8", NameKind("INT8 weights and activations (W8A8-INT8)"))

ENGINES: Registry[NameKind] = Registry("engine")
"""Serving engines named by catalog rows, plans and measurements."""

ENGINES.register("vllm", NameKind("vLLM's OpenAI-compatible server (continuous batching)"))
ENGINES.register(
    "llama.cpp",
    NameKind("llama.cpp's llama-server (parallel slots, continuous batching)"),
    aliases=("llamacpp", "llama-cpp", "llama-server"),
)

MethodName = Annotated[str, RegisteredName(METHODS)]
"""A quantization method (scheme family) the catalog knows; aliases become canonical."""

EngineName = Annotated[str, RegisteredName(ENGINES)]
"""A serving engine the catalog knows; aliases become canonical."""
