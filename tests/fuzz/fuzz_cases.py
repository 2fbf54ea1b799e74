"""Generated inputs for the CLI fuzz suite: one case = an argv plus the files it names.

Every generator takes a ``random.Random``, so the same code feeds hypothesis (``st.randoms``,
which shrinks the draws) in tests/fuzz and a plain seeded stream in bench/fuzz_bench.py.
Valid documents come from the shipped seed catalog and from real plan files; mutations break
them the ways users' files break: missing or duplicated keys, wrong types, non-finite and huge
numbers, long and control-character strings, YAML anchors/aliases, deep nesting, binary bytes,
empty files, ragged CSV.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SEED_DIR = REPO / "catalog" / "seed"
SURFACES = ("argv", "targets", "import", "plan_file")
KINDS = ("hardware", "instances", "models", "schemes", "support", "profiles", "quality")

# Commands that only read or write inside the case directory may run for real. Everything else
# (quantize, serve, bench, profile, dashboard, toolchain install/doctor, cluster up/down) would
# build, download, serve or open a TUI, so it only ever gets an argv with an unknown option: the
# parser refuses that before any callback runs, which still exercises the usage-error path.
SAFE_COMMANDS = frozenset(
    {
        "plan",
        "report",
        "apply",
        "status",
        "destroy",
        "catalog list",
        "catalog show",
        "catalog import",
        "catalog export",
        "catalog runs",
        "catalog where",
        "cluster config",
        "toolchain list",
    }
)
# Never fuzzed with free values: a random --address could make Ray wait on an unreachable GCS.
PINNED_OPTIONS = frozenset({"--address"})
UNKNOWN_OPTION = "--no-such-option-fz"


@dataclass
class Case:
    """One command to run: argv after ``quantplan``, files to create in its directory."""

    surface: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    what: str = ""
    expect_ok: bool = False  # an unmutated valid input: anything but exit 0 is a failure
    expect_refused: bool = False  # e.g. a non-finite number in a record: exit 0 is a failure
    followups: list[list[str]] = field(default_factory=list)  # run only if argv exits 0

    def size(self) -> int:
        """How big the reproducer is: the smallest of a failure group is the one reported."""
        return sum(len(a) for a in self.argv) + sum(len(b) for b in self.files.values())


# ---------------------------------------------------------------- weird values

LONG = 20_000


def weird_scalar(rnd: random.Random) -> Any:
    """A value a sloppy or hostile file might hold where a number or name belongs."""
    choices: list[Any] = [
        float("nan"),
        float("inf"),
        float("-inf"),
        -0.0,
        0,
        -1,
        1e308,
        -1e308,
        5e-324,
        2**63,
        2**64 + 1,
        10**30,
        -(10**30),
        True,
        False,
        None,
        "",
        " ",
        "abc",
        "5",
        "1e999",
        "NaN",
        "-inf",
        "x" * rnd.choice((256, LONG)),
        "ctrl\x00\x07\x1b[31mred\x1b[0m\r\n",
        "\u202eevil\u200b",
        "Ωμέγα 😀 模型",
        "\ud800" if rnd.random() < 0.1 else "surrogate-free",
        [],
        {},
        [1, 2, 3],
        {"nested": {"deep": [None]}},
        "1.0.0",
        "2026-13-45T99:99:99",
    ]
    return rnd.choice(choices)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# ---------------------------------------------------------------- document mutations


def _paths(value: Any) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts/lists (the root is ``()``); iterative, since
    mutated documents nest deeper than Python's recursion limit."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        prefix, node = stack.pop()
        found.append(prefix)
        if isinstance(node, dict):
            stack.extend(((*prefix, key), child) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend(((*prefix, index), child) for index, child in enumerate(node))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def mutate_document(doc: Any, rnd: random.Random, rounds: int | None = None) -> tuple[Any, str]:
    """A mutated deep copy of ``doc`` and a short description of what was changed."""
    doc = copy.deepcopy(doc)
    said: list[str] = []
    for _ in range(rounds if rounds is not None else rnd.choice((1, 1, 1, 2, 3))):
        paths = [p for p in _paths(doc) if p]
        action = rnd.choices(
            ("replace", "delete", "rename", "add", "duplicate", "deepen", "root"),
            weights=(30, 10, 10, 10, 10, 5, 2),
        )[0]
        if not paths or action == "root":
            doc = weird_scalar(rnd)
            said.append("root replaced")
            continue
        path = rnd.choice(paths)
        parent = _parent(doc, path)
        key = path[-1]
        label = ".".join(str(p) for p in path)
        if action == "replace":
            parent[key] = weird_scalar(rnd)
            said.append(f"{label}={_short(parent[key])}")
        elif action == "delete":
            del parent[key]
            said.append(f"-{label}")
        elif action == "rename" and isinstance(parent, dict):
            parent[str(key) + rnd.choice(("_", "s", "X"))] = parent.pop(key)
            said.append(f"{label} renamed")
        elif action == "add" and isinstance(parent, dict):
            parent[rnd.choice(("unknown_field", "", "é", "x" * 300))] = weird_scalar(rnd)
            said.append(f"extra key beside {label}")
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
            said.append(f"{label} duplicated")
        elif action == "deepen":
            parent[key] = nested(rnd.choice((50, 500)))
            said.append(f"{label} nested")
        else:
            parent[key] = weird_scalar(rnd)
            said.append(f"{label}={_short(parent[key])}")
    return doc, "; ".join(said)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _non_finite(value: Any) -> bool:
    """A float NaN/inf, or text that pydantic would read as one ("NaN", "-inf", "1e999")."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        try:
            return not math.isfinite(float(value))
        except ValueError:
            return False
    return False


def non_finite_number_in(kind: str, rows: Any) -> bool:
    """Whether a row holds a non-finite value in one of its numeric fields (never valid)."""
    from quantplan.catalog.records import RECORD_TYPES

    if not isinstance(rows, list):
        return False
    fields = RECORD_TYPES[kind].model_fields
    # Whole words: an optional name's annotation spells "StringConstraints", which holds "int".
    numeric = {
        name for name, info in fields.items() if re.search(r"\b(float|int)\b", str(info.annotation))
    }
    return any(
        isinstance(row, dict) and any(_non_finite(row.get(name)) for name in numeric)
        for row in rows
    )


def has_non_finite_float(doc: Any) -> bool:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# ---------------------------------------------------------------- serialising


def dump(doc: Any, file_format: str) -> bytes:
    """``doc`` as YAML or JSON text; non-finite floats come out as .nan/.inf or NaN/Infinity."""
    if file_format == "json":
        return json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        text = json.dumps(doc, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
    "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
    "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
)


def mutate_text(text: bytes, rnd: random.Random, yaml_like: bool) -> tuple[bytes, str]:
    """Byte-level damage: truncation, binary noise, encodings, YAML-only constructs."""
    action = rnd.choice(
        (
            "truncate",
            "empty",
            "whitespace",
            "binary",
            "nul",
            "latin1",
            "utf16",
            "bom",
            "splice",
            "anchor",
            "bomb",
            "tag",
            "deep",
            "dupkey",
        )
    )
    if action == "truncate":
        return text[: rnd.randrange(max(1, len(text)))], "truncated"
    if action == "empty":
        return b"", "empty file"
    if action == "whitespace":
        return b" \n\t\n", "whitespace only"
    if action == "binary":
        return bytes(rnd.randrange(256) for _ in range(rnd.choice((16, 600)))), "random bytes"
    if action == "nul":
        cut = rnd.randrange(len(text) + 1)
        return text[:cut] + b"\x00" + text[cut:], "NUL byte inside"
    if action == "latin1":
        return text + "\ncaf\xe9: 1\n".encode("latin-1"), "latin-1 byte"
    if action == "utf16":
        return text.decode("utf-8", "replace").encode("utf-16"), "UTF-16"
    if action == "bom":
        return b"\xef\xbb\xbf" + text, "UTF-8 BOM"
    if action == "splice":
        cut = rnd.randrange(len(text) + 1)
        noise = rnd.choice((b"{", b"]", b'"', b": :", b"- -", b"\t", b"'", b"\\u0000"))
        return text[:cut] + noise + text[cut:], f"spliced {noise!r}"
    if not yaml_like:
        return text[::-1], "reversed"
    if action == "anchor":
        return b"base: &base {a: 1}\nother: *base\n" + text, "YAML anchor and alias"
    if action == "bomb":
        return ALIAS_BOMB.encode(), "YAML alias bomb"
    if action == "tag":
        tag = rnd.choice(
            ("!!python/object/apply:os.system ['true']", "!!binary aGVsbG8=", "!!set {a}")
        )
        return f"x: {tag}\n".encode() + text, f"YAML tag {tag.split()[0]}"
    if action == "deep":
        depth = rnd.choice((100, 3000))
        return ("[" * depth + "]" * depth).encode(), f"flow nesting {depth}"
    return text + text, "document repeated (duplicate keys)"


# ---------------------------------------------------------------- valid documents


def _load_seed(kind: str) -> list[dict[str, Any]]:
    loaded = yaml.safe_load((SEED_DIR / f"{kind}.yaml").read_text(encoding="utf-8"))
    return [dict(row) for row in loaded["rows"]]


_SEEDS: dict[str, list[dict[str, Any]]] = {}


def valid_rows(kind: str) -> list[dict[str, Any]]:
    """Rows of ``kind`` that import cleanly into the seeded catalog (seed rows or built ones)."""
    if kind not in _SEEDS:
        if kind == "profiles":
            _SEEDS[kind] = [
                {
                    "model": "Llama-3.1-8B",
                    "scheme": "gptq-w4a16-g128",
                    "engine": "vllm",
                    "hardware": "A10G",
                    "input_tokens": 512,
                    "output_tokens": 256,
                    "concurrency": 8,
                    "output_tokens_per_s": 310.5,
                    "ttft_p95_ms": 420.0,
                    "itl_p95_ms": 31.0,
                    "basis": "measured",
                    "source": "fuzz suite",
                    "details": {"note": "generated"},
                }
            ]
        else:
            _SEEDS[kind] = _load_seed(kind)
    return _SEEDS[kind]


def _rows_for_import(kind: str, rnd: random.Random) -> list[dict[str, Any]]:
    rows = [dict(r) for r in rnd.sample(valid_rows(kind), min(len(valid_rows(kind)), 3))]
    if rnd.random() < 0.5 and kind in ("hardware", "models", "schemes"):
        for row in rows:  # new names, so the import really inserts instead of "unchanged"
            row["name"] = f"{row['name']}-fz{rnd.randrange(10**6)}"
    return rows


def csv_text(kind: str, rows: list[dict[str, Any]], rnd: random.Random, ragged: bool) -> bytes:
    from quantplan.catalog.records import RECORD_TYPES

    fields = list(RECORD_TYPES[kind].model_fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        cells = []
        for name in fields:
            value = row.get(name, "")
            if isinstance(value, dict | list):
                value = json.dumps(value, allow_nan=True)
            cells.append("" if value is None else str(value))
        if ragged:
            choice = rnd.choice(("extra", "short", "quote", "newline"))
            if choice == "extra":
                cells += ["surplus", "cells"]
            elif choice == "short":
                cells = cells[: rnd.randrange(len(cells))]
            elif choice == "quote":
                cells[rnd.randrange(len(cells))] = 'unbalanced "quote'
            else:
                cells[rnd.randrange(len(cells))] = "line\nbreak"
        writer.writerow(cells)
    text = buffer.getvalue()
    if ragged and rnd.random() < 0.3:
        text = text.replace(",", ";", 1) if rnd.random() < 0.5 else '"' + text
    return text.encode("utf-8", "surrogatepass")


def import_case(rnd: random.Random) -> Case:
    """``quantplan catalog import FILE [--kind K]`` on a valid or damaged catalog file."""
    kind = rnd.choice(KINDS)
    file_format = rnd.choice(("json", "yaml", "csv"))
    rows = _rows_for_import(kind, rnd)
    mode = rnd.random()
    what = f"{kind} {file_format}"
    expect_ok = expect_refused = False
    if mode < 0.12:
        expect_ok = True
        what += " valid"
        body = (
            csv_text(kind, rows, rnd, ragged=False)
            if file_format == "csv"
            else dump({"kind": kind, "rows": rows}, file_format)
        )
    elif mode < 0.7:
        doc, said = mutate_document({"kind": kind, "rows": rows}, rnd)
        what += f" mutated: {said}"
        if isinstance(doc, dict) and doc.get("kind") == kind:
            expect_refused = non_finite_number_in(kind, doc.get("rows"))
        if file_format == "csv":
            doc_rows = doc.get("rows") if isinstance(doc, dict) else None
            if isinstance(doc_rows, list) and all(isinstance(r, dict) for r in doc_rows):
                body = csv_text(kind, doc_rows, rnd, ragged=False)
            else:
                body = csv_text(kind, rows, rnd, ragged=True)
                what += " (ragged)"
                expect_refused = False  # the mutation did not make it into the CSV
        else:
            body = dump(doc, file_format)
    elif mode < 0.8 and file_format == "csv":
        body = csv_text(kind, rows, rnd, ragged=True)
        what += " ragged"
    else:
        base = (
            csv_text(kind, rows, rnd, ragged=False)
            if file_format == "csv"
            else dump({"kind": kind, "rows": rows}, file_format)
        )
        body, said = mutate_text(base, rnd, yaml_like=file_format == "yaml")
        what += f" bytes: {said}"
    name = f"{kind}.{file_format}" if rnd.random() < 0.7 else f"upload.{file_format}"
    argv = ["catalog", "import", name]
    if file_format == "csv" and (not name.startswith(kind) or rnd.random() < 0.3):
        argv += ["--kind", kind if rnd.random() < 0.8 else rnd.choice((*KINDS, "nope"))]
    elif rnd.random() < 0.1:
        argv += ["--kind", rnd.choice(KINDS)]
    if rnd.random() < 0.15:
        argv.append("--replace")
    if expect_ok and "--kind" in argv and argv[argv.index("--kind") + 1] != kind:
        expect_ok = False
    # A successful import must leave a catalog every reader still copes with.
    followups = [["catalog", "list", "--kind", kind], ["catalog", "export", "--kind", kind]]
    if kind in ("profiles", "quality", "instances", "hardware", "support", "schemes"):
        followups.append(["plan", "--model", "Llama-3.1-8B", "--rps", "2"])
    return Case("import", argv, {name: body}, what, expect_ok, expect_refused, followups)


# ---------------------------------------------------------------- targets


def valid_targets(rnd: random.Random) -> dict[str, Any]:
    """A targets document `quantplan plan --targets` accepts."""
    base: dict[str, Any] = {
        "model": rnd.choice(("Llama-3.1-8B", "Llama-3.2-1B", "Qwen2.5-7B", "Mistral-7B")),
        "workload": {"input_tokens": 512, "output_tokens": 256},
    }
    if rnd.random() < 0.5:
        base["workload"]["requests_per_s"] = rnd.choice((0.5, 2, 5, 20))
    else:
        base["workload"]["tokens_per_day"] = rnd.choice((1e6, 2e7))
    if rnd.random() < 0.6:
        base["slos"] = {"ttft_p95_ms": 800, "itl_p95_ms": 60}
    if rnd.random() < 0.4:
        base["quality"] = {"max_perplexity_increase_pct": 3}
    if rnd.random() < 0.4:
        base["budget"] = {"max_usd_per_month": 20_000}
    if rnd.random() < 0.4:
        base["constraints"] = {
            "clouds": ["aws"],
            "spot_allowed": True,
            "max_replicas": 16,
            "device": rnd.choice(("any", "gpu", "cpu")),
        }
    if rnd.random() < 0.15:
        base["model"] = {
            "name": "custom-3b",
            "parameters_b": 3.2,
            "layers": 28,
            "hidden_size": 3072,
            "heads": 24,
            "kv_heads": 8,
            "head_dim": 128,
            "vocab_size": 128256,
            "max_context": 8192,
        }
    return base


def targets_case(rnd: random.Random) -> Case:
    """``quantplan plan --targets FILE`` (or ``report FILE``) on valid or damaged targets."""
    file_format = rnd.choice(("yaml", "json"))
    doc = valid_targets(rnd)
    mode = rnd.random()
    expect_ok = expect_refused = False
    if mode < 0.12:
        body, what, expect_ok = dump(doc, file_format), "valid", True
    elif mode < 0.75:
        mutated, said = mutate_document(doc, rnd)
        body, what = dump(mutated, file_format), f"mutated: {said}"
        expect_refused = has_non_finite_float(mutated)
    else:
        body, said = mutate_text(dump(doc, file_format), rnd, yaml_like=file_format == "yaml")
        what = f"bytes: {said}"
        expect_refused = said in ("YAML alias bomb", "YAML anchor and alias")
    name = f"targets.{file_format}"
    if rnd.random() < 0.8:
        argv = ["plan", "--targets", name]
        if rnd.random() < 0.3:
            argv.append("--json")
        if rnd.random() < 0.2:
            argv += ["-o", "plan-out.yaml"]
    else:
        argv = ["report", name, "-o", "report.html"]
    return Case(
        "targets", argv, {name: body}, f"targets {file_format} {what}", expect_ok, expect_refused
    )


# ---------------------------------------------------------------- plan files


def plan_case(rnd: random.Random, plans: list[dict[str, Any]]) -> Case:
    """A reader of plan files (apply --dry-run, report, cluster config, plan --targets)."""
    file_format = rnd.choice(("yaml", "json"))
    doc = copy.deepcopy(rnd.choice(plans))
    mode = rnd.random()
    if mode < 0.1:
        body, what = dump(doc, file_format), "valid"
    elif mode < 0.75:
        mutated, said = mutate_document(doc, rnd, rounds=rnd.choice((1, 1, 2)))
        body, what = dump(mutated, file_format), f"mutated: {said}"
    elif mode < 0.8:
        body, what = dump(rnd.choice(([doc], [], "plan", 1, None)), file_format), "not a mapping"
    else:
        body, said = mutate_text(dump(doc, file_format), rnd, yaml_like=file_format == "yaml")
        what = f"bytes: {said}"
    name = f"plan.{file_format}"
    reader = rnd.choice(("apply", "apply", "report", "cluster", "plan"))
    if reader == "apply":
        argv = ["apply", name, "--dry-run"] + (["--json"] if rnd.random() < 0.3 else [])
    elif reader == "report":
        argv = ["report", name, "-o", "report.html"]
    elif reader == "cluster":
        provider = rnd.choice(("aws", "gcp", "kuberay"))
        argv = ["cluster", "config", name, "--provider", provider]
    else:
        argv = ["plan", "--targets", name]
    # apply of a valid plan needs a Ray cluster the harness never has: a clear refusal is right.
    expect_ok = what == "valid" and reader != "apply"
    expect_refused = False
    if what == "valid" and reader == "cluster" and not provider_takes(doc, provider):
        # An infeasible plan has no fleet, and aws/gcp configs take only their own cloud's
        # instances (agent/cluster/launcher.py): refusing those is right, in one clear line.
        expect_ok, expect_refused = False, True
    return Case(
        "plan_file",
        argv,
        {name: body},
        f"plan {file_format} {what} -> {reader}",
        expect_ok,
        expect_refused,
    )


def provider_takes(plan: dict[str, Any], provider: str) -> bool:
    """Whether `quantplan cluster config --provider PROVIDER` can write a config for ``plan``."""
    clouds = {deployment["instance"]["cloud"] for deployment in plan.get("fleet") or []}
    return bool(clouds) and (provider == "kuberay" or clouds == {provider})


# ---------------------------------------------------------------- argv


@dataclass(frozen=True)
class ParamSpec:
    opts: tuple[str, ...]
    secondary: tuple[str, ...]
    kind: str  # "option" or "argument"
    type_name: str  # float, int, bool, path, str, list
    is_flag: bool


@dataclass(frozen=True)
class CommandSpec:
    path: tuple[str, ...]
    params: tuple[ParamSpec, ...]


def command_tree() -> list[CommandSpec]:
    """Every leaf command of the real typer app with its parameters."""
    import typer.main

    from quantplan.cli import register_commands

    found: list[CommandSpec] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
            return
        params = []
        for param in command.params:
            descriptor = getattr(param, "type_descriptor", None)
            annotation = getattr(descriptor, "annotation", None)
            type_name = getattr(annotation, "__name__", str(annotation)).lower()
            params.append(
                ParamSpec(
                    opts=tuple(param.opts),
                    secondary=tuple(getattr(param, "secondary_opts", ()) or ()),
                    kind=getattr(param, "param_type_name", "option"),
                    type_name=type_name,
                    is_flag=bool(getattr(param, "is_flag", False)),
                )
            )
        found.append(CommandSpec(path, tuple(params)))

    walk(typer.main.get_command(register_commands()), ())
    return found


GOOD_VALUES = {
    "float": ("5", "0.5", "2e6", "800"),
    "int": ("1", "8", "64", "512"),
    "str": ("Llama-3.1-8B", "aws", "instances", "vllm", "gptq-w4a16-g128", "c7a.xlarge"),
    "path": ("plan.yaml", "targets.yaml", "out.yaml", "report.html"),
}
BAD_VALUES = (
    "abc",
    "",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "-1",
    "0",
    "-0",
    "1e309",
    "1e-320",
    "9" * 40,
    "0x10",
    "1_000",
    " 5",
    "5 ",
    "--",
    "-",
    "=",
    "Ω😀",
    "\x1b[31mred",
    "tab\there",
    "y" * 5000,
    ".",
    "/",
    "/proc/forbidden/out.yaml",
    "missing-dir/out.yaml",
    "sqlite:///missing-dir/x.db",
    "nosuchdialect://x",
    "postgresql://fz:fz@127.0.0.1:1/fz",
)


def argv_case(rnd: random.Random, tree: list[CommandSpec]) -> Case:
    """A random command line drawn from the real command tree, with good and bad values."""
    command = rnd.choice(tree)
    name = " ".join(command.path)
    argv = list(command.path)
    what = name
    if rnd.random() < 0.05:  # a mistyped command name
        argv[-1] = argv[-1][:-1] + rnd.choice("xz_") if len(argv[-1]) > 1 else "zz"
        what += " (typo)"
    chosen = [p for p in command.params if rnd.random() < 0.35 and p.opts]
    for param in chosen:
        value = _value_for(param, rnd)
        if param.kind == "argument":
            argv.append(value)
            continue
        if (
            param.opts[0] == "--help"
            or param.opts[0].startswith("--install")
            or param.opts[0].startswith("--show-completion")
        ):
            continue
        if PINNED_OPTIONS & set(param.opts):
            continue
        option = rnd.choice(param.opts + param.secondary)
        if param.is_flag or param.type_name == "bool":
            argv.append(option)
        elif rnd.random() < 0.1:
            argv.append(f"{option}={value}")
        elif rnd.random() < 0.05:
            argv.append(option)  # value missing
        else:
            argv += [option, value]
    if rnd.random() < 0.1:
        argv.append(rnd.choice(("stray", "--", "-x", "--model")))
    if rnd.random() < 0.05:
        argv.append("--help")
    safe = name in SAFE_COMMANDS
    if not safe or rnd.random() < 0.08:
        argv.append(UNKNOWN_OPTION)
    files: dict[str, bytes] = {}
    if rnd.random() < 0.5:  # give path arguments something real to read
        files["plan.yaml"] = b"schema_version: 1\n"
        files["targets.yaml"] = dump(valid_targets(rnd), "yaml")
    return Case("argv", argv, files, what)


def _value_for(param: ParamSpec, rnd: random.Random) -> str:
    if rnd.random() < 0.45:
        return rnd.choice(BAD_VALUES)
    type_name = param.type_name if param.type_name in GOOD_VALUES else "str"
    if "list" in param.type_name:
        type_name = "str"
    return rnd.choice(GOOD_VALUES[type_name])


def make_case(
    surface: str, rnd: random.Random, plans: list[dict[str, Any]], tree: list[CommandSpec]
) -> Case:
    if surface == "argv":
        return argv_case(rnd, tree)
    if surface == "targets":
        return targets_case(rnd)
    if surface == "import":
        return import_case(rnd)
    return plan_case(rnd, plans)
