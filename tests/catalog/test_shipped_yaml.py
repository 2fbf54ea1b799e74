"""YAML goes through libyaml's C parser and emitter; users' files still refuse anchors and
aliases, and read exactly as PyYAML's pure-Python safe loader reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quantplan.catalog.records import InstanceRecord
from quantplan.catalog.seeding import SEED_DIR
from quantplan.catalog.transfer import parse
from quantplan.inputs import (
    InputFileError,
    _timestamp_as_written,
    dump_yaml,
    parse_shipped_yaml,
    parse_yaml,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class _PurePython(yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with quantplan's one rule (dates stay text)."""


_PurePython.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_written)


def test_libyaml_is_there_so_the_fast_path_is_the_one_tested() -> None:
    assert yaml.__with_libyaml__


def test_every_seed_and_example_file_reads_as_the_pure_python_loader_reads_it() -> None:
    files = sorted(SEED_DIR.glob("*.yaml")) + sorted(EXAMPLES.rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        pure = yaml.load(text, Loader=_PurePython)
        assert parse_yaml(text, path.name) == pure, path.name
        assert parse_shipped_yaml(text, path.name) == pure, path.name
        # What quantplan writes reads back as the same data.
        assert parse_yaml(dump_yaml(pure, sort_keys=False, allow_unicode=True), "x") == pure
    seed = SEED_DIR / "profiles.yaml"
    text = seed.read_text(encoding="utf-8")
    assert parse(text, "yaml", None, seed.name, shipped=True) == parse(text, "yaml", None, "x")


@pytest.mark.parametrize(
    ("text", "refusal", "line"),
    [
        ("kind: profiles\nrows: &r []\nmore: *r\n", "anchors (&r)", 2),
        ("a: 1\nb:\n  - &first {x: 1}\n", "anchors (&first)", 3),
        ("a: [1, 2]\nb: *nowhere\n", "aliases", 2),
    ],
)
def test_a_users_file_refuses_anchors_and_aliases_where_they_are(
    text: str, refusal: str, line: int
) -> None:
    with pytest.raises(InputFileError, match="not accepted") as caught:
        parse_yaml(text, "targets.yaml")
    assert refusal in str(caught.value) and f"line {line}," in str(caught.value)


def test_bad_yaml_and_deep_nesting_are_one_line_refusals() -> None:
    with pytest.raises(InputFileError, match="not valid YAML"):
        parse_shipped_yaml("rows: [1, 2", "seed.yaml")
    with pytest.raises(InputFileError, match="not valid YAML/JSON"):
        parse_yaml("rows: [1, 2", "targets.yaml")
    # libyaml stops at 1,000 levels, before anything is composed.
    with pytest.raises(InputFileError, match="nesting depth"):
        parse_yaml("[" * 100_000 + "]" * 100_000, "targets.yaml")
    with pytest.raises(InputFileError, match="not valid YAML/JSON"):
        parse_yaml("a: \x07bell\n", "targets.yaml")


def test_an_unquoted_date_reads_as_the_text_it_was_written_as() -> None:
    """`price_date: 2026-12-04` is what a person writes; YAML alone would make it a date object,
    which the row refuses as "not a valid string"."""
    text = (
        "kind: instances\nrows:\n- {cloud: onprem, name: box.1x, region: lab, vcpus: 16, "
        "memory_gib: 128, hardware: H200, accelerator_count: 1, price_per_hour: 10.6, "
        "price_date: 2026-12-04, price_source: our own box}\n"
    )
    for shipped in (False, True):
        kind, rows = parse(text, "yaml", None, "instances.yaml", shipped=shipped)
        assert kind == "instances"
        assert isinstance(rows[0], InstanceRecord) and rows[0].price_date == "2026-12-04"
    assert parse_yaml("at: 2026-12-04T10:00:00Z", "x") == {"at": "2026-12-04T10:00:00Z"}
