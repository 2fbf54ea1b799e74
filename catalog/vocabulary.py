"""The catalog's small vocabularies, kept free of database imports so that light modules
(records, the planner) can use them without loading SQLAlchemy.

Besides the names of things, this is where every number and string that enters the catalog or
the planner's targets gets its bounds: one annotated type per physical quantity, declared once
and used by the records and by Targets. A number is finite (NaN or Infinity is never a
measurement, and one of them in an append-only table breaks every plan after it) and lies
within what the quantity can physically be; the caps are orders of magnitude above any real
value, so they only stop typos and hostile files.
"""

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from quantplan.catalog.registry import EngineName, MethodName

DeviceKind = Literal["gpu", "cpu"]
MemoryType = Literal["hbm", "gddr", "unified", "ddr"]
"""A device's memory technology: HBM stacks (datacenter GPUs), GDDR (consumer and inference
GPUs), unified LPDDR shared with the CPU (Apple silicon), or DDR (CPU sockets)."""
# Methods and engines are open kinds: their names live in catalog/registry.py.
SchemeFamily = MethodName
Engine = EngineName
Basis = Literal["measured", "published", "modeled"]
RunStatus = Literal["running", "succeeded", "failed"]
Batching = Literal["continuous", "slots", "none"]
"""How an engine runs requests together: ``continuous`` (a new sequence joins the running batch
at any step), ``slots`` (a fixed number of server slots, each batched continuously, as
llama-server's ``-np``) or ``none`` (one request at a time)."""

QUANTPLAN_BENCH_SOURCE = "quantplan bench: closed-loop sweep, streaming /v1/completions"
"""The source of every profile quantplan's own benchmark records (`bench`, `profile`, `apply`).
Its requests go through the engine's OpenAI-compatible server, so such a profile is a served
measurement even where an older row lacks ``details.served`` (planner/batching.py)."""

# ---------------------------------------------------------------- strings

# The longest shipped values are 25 characters for a name and 209 for a source (a price row
# citing SkyPilot's catalog); the caps leave room for any honest value.
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 4000

# C0 controls except tab, newline and carriage return, DEL, and the C1 controls. Free text may
# span lines; nothing else here is printable, and in a name even a newline breaks tables,
# logs and instance tags.
_TEXT_CONTROLS = frozenset(
    [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
    + [chr(0x7F)]
    + [chr(c) for c in range(0x80, 0xA0)]
)
_NAME_CONTROLS = _TEXT_CONTROLS | frozenset("\t\n\r")


def _no_control_characters(value: str) -> str:
    bad = next((c for c in value if c in _NAME_CONTROLS), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} is not allowed in a name")
    if value != value.strip():
        raise ValueError("a name may not start or end with spaces")
    return value


def _printable_text(value: str) -> str:
    bad = next((c for c in value if c in _TEXT_CONTROLS), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} is not allowed in text")
    return value


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_CHARS),
    AfterValidator(_no_control_characters),
]
"""A name or key (model, scheme, hardware, cloud, region, run id): one printable line."""

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), AfterValidator(_printable_text)]
"""Free text (sources, notes): printable, may be empty, may span lines."""

SourceText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS),
    AfterValidator(_printable_text),
]
"""The citation or description every row carries: free text that may not be empty."""

IsaFlags = Annotated[
    str, StringConstraints(max_length=MAX_NAME_CHARS), AfterValidator(_no_control_characters)
]
"""CPU flags, comma separated (avx2,avx512,amx); may be empty."""

# ---------------------------------------------------------------- structured extras

MAX_DETAILS_DEPTH = 16
MAX_DETAILS_CHARS = 1_000_000  # per-layer errors of an 80-layer model are about 30 KB


def _bounded_details(value: dict[str, Any]) -> dict[str, Any]:
    """A details mapping that is plain JSON: finite numbers, bounded depth and size."""
    budget = [MAX_DETAILS_CHARS]

    def walk(node: Any, path: str, depth: int) -> None:
        if depth > MAX_DETAILS_DEPTH:
            raise ValueError(f"nests deeper than {MAX_DETAILS_DEPTH} levels at {path}")
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{path} is {node!r}; numbers must be finite")
        if isinstance(node, str):
            budget[0] -= len(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                budget[0] -= len(str(key))
                walk(item, f"{path}.{key}", depth + 1)
        elif isinstance(node, list | tuple):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]", depth + 1)
        elif node is not None and not isinstance(node, bool | int | float):
            raise ValueError(f"{path} is a {type(node).__name__}, not a JSON value")
        budget[0] -= 8  # the number, or the punctuation around a container
        if budget[0] < 0:
            raise ValueError(f"is larger than {MAX_DETAILS_CHARS:,} characters")

    walk(value, "details", 0)
    return value


Details = Annotated[dict[str, Any], AfterValidator(_bounded_details)]
"""Further metrics of a row: JSON with finite numbers, at most 16 levels and about 1 MB."""

# ---------------------------------------------------------------- numbers


def _finite(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """Field constraints for a finite number within the given bounds (None: that side open)."""
    return Field(allow_inf_nan=False, gt=gt, ge=ge, lt=lt, le=le)


# Money. The dearest shipped instance is $98/hour (8 x A100 on demand); $10,000 is a cap no
# machine comes near.
UsdPerHour = Annotated[float, _finite(gt=0, le=10_000)]
UsdPerMonth = Annotated[float, _finite(gt=0, le=1e9)]
UsdPerMillionTokens = Annotated[float, _finite(ge=0, le=1e6)]

# Speed. One replica of anything runs far below 10 million tokens/s; a fleet's goal may be
# larger.
TokensPerS = Annotated[float, _finite(gt=0, lt=1e7)]
FleetTokensPerS = Annotated[float, _finite(gt=0, le=1e10)]
# A target rate below one request a month, or a token a day, is no workload: such rates divide
# a month's cost into infinities (found by fuzzing with 5e-324).
RequestsPerS = Annotated[float, _finite(ge=1e-6, le=1e7)]
MeasuredRequestsPerS = Annotated[float, _finite(ge=0, le=1e7)]  # 0 if none finished in time
TokensPerDay = Annotated[float, _finite(ge=1.0, le=1e15)]

# Time. A latency objective is positive; a measured percentile may round to 0 ms (several
# tokens in one streamed chunk). Nothing is served a day late.
MS_PER_DAY = 86_400_000.0
LatencyMs = Annotated[float, _finite(gt=0, le=MS_PER_DAY)]
MeasuredLatencyMs = Annotated[float, _finite(ge=0, le=MS_PER_DAY)]

# Memory and hardware. The largest cloud machines have 24 TiB (about 26,000 GB).
MemoryGB = Annotated[float, _finite(gt=0, lt=1e5)]
BandwidthGBps = Annotated[float, _finite(gt=0, lt=1e6)]
TeraOps = Annotated[float, _finite(gt=0, lt=1e6)]  # TFLOPS or TOPS of one device or socket
ComputeCapability = Annotated[float, _finite(gt=0, lt=100)]
Efficiency = Annotated[float, _finite(gt=0, le=1)]  # share of a spec figure an engine reaches
OverheadGB = Annotated[float, _finite(ge=0, lt=1e5)]  # memory an engine keeps for itself
ParametersB = Annotated[float, _finite(gt=0, lt=1e5)]  # billions: 100 trillion parameters

# Quantization and quality. Bits per weight measured on a file exceed the nominal width by the
# file's metadata (F16 GGUF: 16.0005), so the cap is twice FP32.
BitsPerWeight = Annotated[float, _finite(gt=0, le=64)]
CompressionRatio = Annotated[float, _finite(gt=0, le=1000)]
# Perplexity is exp(mean negative log-likelihood) >= 1; a million is worse than guessing
# uniformly over any real vocabulary.
Perplexity = Annotated[float, _finite(ge=1, le=1e6)]
# (ppl - baseline) / baseline x 100 with both perplexities in [1, 1e6].
PerplexityDeltaPct = Annotated[float, _finite(ge=-100, le=1e8)]
KlDivergence = Annotated[float, _finite(ge=0, le=1e4)]  # nats, mean over tokens
Fraction = Annotated[float, _finite(ge=0, le=1)]
# Task accuracy on a named benchmark, in points (0-100), and the quantized model's score as a %
# of the baseline's: above 100 when the quantized model scored higher (it happens within noise).
TaskScore = Annotated[float, _finite(ge=0, le=100)]
RecoveryPct = Annotated[float, _finite(ge=0, le=1e4)]
PeakToMean = Annotated[float, _finite(ge=1, le=1000)]
HourlyLoad = Annotated[float, _finite(ge=0, le=1e9)]  # one hour of a daily shape, any scale

# Counts: positive integers with caps far above any real value.
TokenCount = Annotated[int, Field(ge=1, le=100_000_000)]  # tokens per request or context
ModelDimension = Annotated[int, Field(ge=1, le=100_000_000)]  # layers, heads, widths, vocab
# A mixture-of-experts layer has at least two experts, and a token picks fewer than all of them.
ExpertCount = Annotated[int, Field(ge=2, le=100_000)]
ExpertsPerToken = Annotated[int, Field(ge=1, le=99_999)]
Concurrency = Annotated[int, Field(ge=1, le=1_000_000)]
DeviceCount = Annotated[int, Field(ge=1, le=100_000)]  # vCPUs, cores, accelerators used
AcceleratorCount = Annotated[int, Field(ge=0, le=1024)]  # 0 for CPU-only machines
ThreadsPerCore = Annotated[int, Field(ge=1, le=8)]
WeightBits = Annotated[int, Field(ge=1, le=32)]
SupportBits = Annotated[int, Field(ge=0, le=32)]  # 0 = any bit width
GroupSize = Annotated[int, Field(ge=1, le=1_000_000)]
ReplicaCount = Annotated[int, Field(ge=1, le=10_000)]
FleetTypeCount = Annotated[int, Field(ge=1, le=100)]
