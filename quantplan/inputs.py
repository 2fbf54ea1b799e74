"""Reading files a user hands us, bounded in size and in what YAML may expand to; and the YAML
quantplan writes back.

Every file quantplan reads from a user (targets, plans, catalog imports) goes through here, so a
500-byte YAML alias bomb or a multi-gigabyte file is refused with one clear line instead of
keeping a command busy for minutes or filling the catalog.

YAML is read and written with libyaml's C parser and emitter where PyYAML was built with them
(the wheels for every supported platform are): a catalog export or import of the shipped seed
takes about a seventh of the pure-Python time. The pure-Python classes remain the fallback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from quantplan.errors import QuantplanError, shorten

# A targets or plan file is a few KB; the largest catalog import seen is a price list of a few
# thousand rows (about 1 MB). 16 MiB leaves room for any honest file and none for a runaway one.
MAX_INPUT_BYTES = 16 * 1024 * 1024
# Anchors and aliases are legal YAML, but nothing quantplan writes uses them and a handful of
# nested aliases expand exponentially (the "billion laughs" attack). Refused outright.


class InputFileError(QuantplanError):
    """A user's file that cannot be read safely (missing, too large, not text, bad YAML)."""


def _timestamp_as_written(loader: yaml.BaseLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))


class _Loader(yaml.CSafeLoader if _LIBYAML else yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader (no tags): libyaml's where PyYAML has it, else the pure-Python one."""


_Dumper = yaml.CSafeDumper if _LIBYAML else yaml.SafeDumper


# An unquoted date (`price_date: 2026-12-04`) stays the text it was written as: every date a
# quantplan file holds is a YYYY-MM-DD string or an ISO time pydantic reads from text, and YAML's
# own conversion to a date object would be refused as "not a valid string".
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_written)


def shown_path(path: str | Path) -> str:
    """A path as errors quote it: a 5,000-character one is cut, so the message stays a line."""
    return repr(shorten(str(path), 200))


def read_text(path: str | Path, what: str, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a user's file, refusing missing, oversized and binary files clearly."""
    file = Path(path)
    named = shown_path(file)
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise InputFileError(f"{what} {named} does not exist", hint="check the path") from None
    except OSError as error:
        raise InputFileError(f"{what} {named} cannot be read: {error.strerror}") from None
    if file.is_dir():
        raise InputFileError(f"{what} {named} is a directory, not a file")
    if size > max_bytes:
        raise InputFileError(
            f"{what} {named} is {size:,} bytes; quantplan reads at most {max_bytes:,}",
            hint="split it into smaller files",
        )
    try:
        with file.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputFileError(f"{what} {named} cannot be read: {error.strerror}") from None
    if len(raw) > max_bytes:  # grew while we looked, or a special file with no size
        raise InputFileError(f"{what} {named} is larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"{what} {named} is not UTF-8 text (byte {error.start})",
            hint="quantplan reads YAML, JSON and CSV files saved as UTF-8",
        ) from None
    if "\x00" in text:
        raise InputFileError(f"{what} {named} is a binary file, not text")
    return text


def parse_yaml(text: str, what: str) -> Any:
    """Parse YAML (or JSON, a subset) safely: no tags, no anchors or aliases.

    The events are read first (nothing is built) and an anchor or alias refuses the file
    before anything is composed; only then is it loaded. libyaml also stops nesting beyond
    1,000 levels, so its composer never recurses deeply (the pure-Python one's RecursionError
    is caught below).
    """
    try:
        _refuse_anchors(text)
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise InputFileError(f"{what} is not valid YAML/JSON: {_one_line(error)}") from None
    except RecursionError:
        raise InputFileError(f"{what} nests too deeply to be a quantplan file") from None
    except ValueError as error:  # YAML accepts it, Python does not: a 5,000-digit int, 2024-13-45
        raise InputFileError(
            f"{what} has a value that cannot be read: {_one_line(error)}"
        ) from None


def _refuse_anchors(text: str) -> None:
    """Raise a YAMLError at the first anchor or alias in ``text``'s event stream."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            refusal = "YAML aliases (*name) are not accepted in quantplan files"
        elif (anchor := getattr(event, "anchor", None)) is not None:
            refusal = f"YAML anchors (&{anchor}) are not accepted in quantplan files"
        else:
            continue
        raise yaml.YAMLError(f"{refusal}\n{event.start_mark}")


def dump_yaml(data: Any, **options: Any) -> str:
    """``data`` as YAML text, the way ``yaml.safe_dump`` writes it (libyaml's emitter where
    present: the same document; a long quoted line may fold at another character)."""
    return yaml.dump(data, Dumper=_Dumper, **options)


def dump_yaml_all(documents: Any, **options: Any) -> str:
    """Several documents in one YAML stream, as ``yaml.safe_dump_all`` writes them."""
    return yaml.dump_all(documents, Dumper=_Dumper, **options)


def parse_shipped_yaml(text: str, what: str) -> Any:
    """Parse YAML that ships inside the package (the seed catalog) with libyaml's C parser where
    PyYAML has it: about 9x faster on the seed (0.04 s against 0.37 s), which every first use,
    reseed and seeded test pays. The package's own files skip the anchor and alias check."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise InputFileError(f"{what} is not valid YAML: {_one_line(error)}") from None


def parse_json(text: str, what: str) -> Any:
    """Parse strict JSON: NaN and Infinity are refused, not read as numbers or as names.

    YAML would read ``Infinity`` as the string "Infinity", so a JSON file's out-of-standard
    constant would slip in as a model or cloud name; a ``.json`` file is read as JSON instead.
    """

    def refuse(constant: str) -> Any:
        raise InputFileError(
            f"{what} holds {constant}, which is not JSON",
            hint="JSON has no NaN or Infinity; give a number, a quoted string, or leave it out",
        )

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as error:
        raise InputFileError(f"{what} is not valid JSON: {_one_line(error)}") from None
    except RecursionError:
        raise InputFileError(f"{what} nests too deeply to be a quantplan file") from None
    except ValueError as error:  # an integer of more than 4,300 digits
        raise InputFileError(
            f"{what} has a value that cannot be read: {_one_line(error)}"
        ) from None


def load_yaml_file(path: str | Path, what: str, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """Read and parse a user's YAML or JSON file (strict JSON when it is named ``.json``)."""
    text = read_text(path, what, max_bytes=max_bytes)
    named = shown_path(path)
    if Path(path).suffix.lower() == ".json":
        return parse_json(text, f"{what} {named}")
    return parse_yaml(text, f"{what} {named}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
