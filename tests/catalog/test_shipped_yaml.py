"""The seed is read with libyaml's C parser; users' files keep the alias-refusing loader."""

from __future__ import annotations

import pytest

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
