"""The seed is read with libyaml's C parser; users' files keep the alias-refusing loader."""

from __future__ import annotations

import pytest

from quantplan.catalog.records import InstanceRecord
from quantplan.catalog.seeding import SEED_DIR
from quantplan.catalog.transfer import parse
from quantplan.inputs import InputFileError, parse_shipped_yaml, parse_yaml


def test_every_seed_file_reads_the_same_with_either_parser() -> None:
    for path in sorted(SEED_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert parse_shipped_yaml(text, path.name) == parse_yaml(text, path.name), path.name
        assert parse(text, "yaml", None, path.name, shipped=True) == parse(
            text, "yaml", None, path.name
        )


def test_a_users_file_still_refuses_aliases_and_bad_yaml_says_so_either_way() -> None:
    aliased = "kind: profiles\nrows: &r []\nmore: *r\n"
    with pytest.raises(InputFileError, match="anchors"):
        parse_yaml(aliased, "targets.yaml")
    with pytest.raises(InputFileError, match="not valid YAML"):
        parse_shipped_yaml("rows: [1, 2", "seed.yaml")


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
