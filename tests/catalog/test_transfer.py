"""Import and export: lossless round trips, strict validation, all-or-nothing writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catalog_copy import copy_catalog
from sqlmodel import Session, func, select

from quantplan.catalog.db import make_engine, open_catalog, prepare
from quantplan.catalog.models import InstanceType, QualityResult
from quantplan.catalog.records import KIND_ORDER
from quantplan.catalog.transfer import (
    MAX_CSV_CELL_CHARS,
    MAX_ROWS,
    ImportError_,
    export_file,
    export_kind,
    import_file,
    import_files,
    render,
)
from quantplan.errors import QuantplanError


def _count(engine, table) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


@pytest.mark.parametrize("file_format", ["json", "yaml", "csv"])
def test_round_trip_is_lossless(seeded_db_url: str, tmp_path: Path, file_format: str) -> None:
    source = open_catalog(seeded_db_url)
    target = make_engine(f"sqlite:///{tmp_path / 'target.db'}")
    prepare(target, seed=False)
    files = []
    for kind in KIND_ORDER:
        path = tmp_path / f"{kind}.{file_format}"
        export_file(source, kind, path)
        files.append(path)
    import_files(target, files)
    for kind in KIND_ORDER:
        original = [r.model_dump(exclude={"recorded_at"}) for r in export_kind(source, kind)]
        copied = [r.model_dump(exclude={"recorded_at"}) for r in export_kind(target, kind)]
        assert copied == original, kind
    # Importing the same files again changes nothing.
    again = import_files(target, files)
    assert all(counts["inserted"] == 0 for _, counts in again)


def test_round_trip_into_postgres_from_sqlite(
    postgres_url: str, seeded_sqlite_url: str, tmp_path: Path
) -> None:
    source = open_catalog(seeded_sqlite_url)
    target = make_engine(postgres_url)
    prepare(target, seed=False)
    files = []
    for kind in KIND_ORDER:
        path = tmp_path / f"{kind}.yaml"
        export_file(source, kind, path)
        files.append(path)
    import_files(target, files)
    for kind in KIND_ORDER:
        assert [r.model_dump(exclude={"recorded_at"}) for r in export_kind(target, kind)] == [
            r.model_dump(exclude={"recorded_at"}) for r in export_kind(source, kind)
        ]


def _write(path: Path, rows: list[dict], kind: str = "instances") -> Path:
    path.write_text(json.dumps({"kind": kind, "rows": rows}))
    return path


GOOD_ROW = {
    "cloud": "aws",
    "name": "g5.test",
    "region": "us-east-1",
    "vcpus": 4,
    "memory_gib": 16,
    "hardware": "A10G",
    "accelerator_count": 1,
    "price_per_hour": 1.0,
    "price_source": "test",
}


def test_bad_row_is_refused_whole_naming_file_row_and_field(
    seeded_db_url: str, tmp_path: Path
) -> None:
    engine = open_catalog(seeded_db_url)
    before = _count(engine, InstanceType)
    rows = [
        {**GOOD_ROW, "name": "good.one"},
        {**GOOD_ROW, "name": "good.two"},
        {**GOOD_ROW, "name": "bad.three", "price_per_hour": "cheap"},
    ]
    with pytest.raises(ImportError_) as caught:
        import_file(engine, _write(tmp_path / "prices.json", rows))
    message = str(caught.value)
    assert "prices.json" in message and "row 3" in message and "price_per_hour" in message
    assert _count(engine, InstanceType) == before


def test_unknown_field_suggests_the_right_one(seeded_sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(seeded_sqlite_url)
    row = {**GOOD_ROW, "spot_price_per_hr": 0.3}
    with pytest.raises(ImportError_) as caught:
        import_file(engine, _write(tmp_path / "x.json", [row]))
    assert "spot_price_per_hr" in str(caught.value)
    assert caught.value.hint and "spot_price_per_hour" in caught.value.hint


def test_unknown_reference_suggests_near_miss_and_writes_nothing(
    seeded_db_url: str, tmp_path: Path
) -> None:
    engine = open_catalog(seeded_db_url)
    before = _count(engine, InstanceType)
    rows = [{**GOOD_ROW, "name": "ok.one"}, {**GOOD_ROW, "name": "x", "hardware": "A10GG"}]
    with pytest.raises(ImportError_) as caught:
        import_file(engine, _write(tmp_path / "x.json", rows))
    assert "row 2" in str(caught.value)
    assert caught.value.hint and "A10G" in caught.value.hint
    assert _count(engine, InstanceType) == before


def test_changed_reference_row_needs_replace(seeded_sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(seeded_sqlite_url)
    path = _write(
        tmp_path / "x.json",
        [{**GOOD_ROW, "name": "g5.xlarge", "vcpus": 4, "memory_gib": 16, "price_per_hour": 9.99}],
    )
    with pytest.raises(QuantplanError) as caught:
        import_file(engine, path)
    assert "price_per_hour" in str(caught.value) and "--replace" in (caught.value.hint or "")
    _kind, counts = import_file(engine, path, replace=True)
    assert counts["replaced"] == 1
    prices = {
        r.price_per_hour
        for r in export_kind(engine, "instances")
        if r.name == "g5.xlarge" and r.region == "us-east-1"
    }
    assert prices == {9.99}


def test_measurements_are_never_replaced(seeded_sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(seeded_sqlite_url)
    row = {
        "model": "Llama-2-7B",
        "scheme": "gptq-w4a16-g128",
        "eval_set": "wikitext-2",
        "perplexity": 5.69,
        "baseline_perplexity": 5.47,
        "basis": "published",
        "source": "Lin et al., AWQ (arXiv:2306.00978), Table 4: WikiText-2, group size 128",
    }
    before = _count(engine, QualityResult)
    import_file(engine, _write(tmp_path / "same.json", [row], "quality"))
    assert _count(engine, QualityResult) == before
    changed = _write(tmp_path / "changed.json", [{**row, "perplexity": 5.0}], "quality")
    with pytest.raises(QuantplanError, match="append-only"):
        import_file(engine, changed, replace=True)


def test_one_file_s_repeated_key_is_one_row_or_a_conflict(
    seeded_sqlite_url: str, tmp_path: Path
) -> None:
    """Rows a file writes are seen by its later rows (each kind's rows are read once per import,
    then kept up to date): the same row twice is one row; the same key with another value is
    refused, and nothing of the file is written."""
    engine = open_catalog(seeded_sqlite_url)
    row = {
        "model": "Llama-2-7B",
        "scheme": "awq-w4a16-g128",
        "eval_set": "repeat-check",
        "perplexity": 5.60,
        "baseline_perplexity": 5.47,
        "basis": "published",
        "source": "a test of repeated rows",
    }
    before = _count(engine, QualityResult)
    _kind, counts = import_file(engine, _write(tmp_path / "twice.json", [row, row], "quality"))
    assert counts["inserted"] == 1 and _count(engine, QualityResult) == before + 1
    other = {**row, "eval_set": "repeat-check-2"}
    clash = _write(tmp_path / "clash.json", [other, {**other, "perplexity": 5.9}], "quality")
    with pytest.raises(QuantplanError, match="append-only"):
        import_file(engine, clash)
    assert _count(engine, QualityResult) == before + 1


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        ("{not json", "x.json", "not valid JSON"),
        ('{"rows": []}', "x.json", "'kind' and 'rows'"),
        ('{"kind": "instancez", "rows": []}', "x.json", "unknown catalog kind"),
        ("cloud,name\naws,x\n", "prices.csv", "does not say which kind"),
        ("a: [", "x.yaml", "not valid YAML"),
        ("", "x.txt", "cannot tell the format"),
        (
            '{"kind": "models", "rows": [{"layers": 1' + "0" * 5000 + "}]}",
            "x.json",
            "cannot be read",
        ),
        ("kind: models\nrows: [{layers: 1" + "0" * 5000 + "}]\n", "x.yaml", "cannot be read"),
        # An unquoted date is the text it was written as: a name, so the row's other fields
        # are what is missing.
        ("kind: models\nrows: [{name: 2024-13-45}]\n", "x.yaml", "row 1, field 'family'"),
    ],
)
def test_malformed_files_give_clear_errors(
    seeded_sqlite_url: str, tmp_path: Path, content: str, name: str, expected: str
) -> None:
    engine = open_catalog(seeded_sqlite_url)
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(QuantplanError, match=expected):
        import_file(engine, path)


def test_missing_file(seeded_sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(QuantplanError, match="no such file"):
        import_file(open_catalog(seeded_sqlite_url), tmp_path / "absent.json")


# ---------------------------------------------------------------- bounded, safe input files


def test_csv_row_count_and_cell_size_are_capped(seeded_sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(seeded_sqlite_url)
    header = ",".join(GOOD_ROW) + "\n"
    line = ",".join(str(v) for v in GOOD_ROW.values()) + "\n"
    many = tmp_path / "instances.csv"
    many.write_text(header + line * (MAX_ROWS + 1))
    with pytest.raises(ImportError_, match=f"more than {MAX_ROWS:,} rows"):
        import_file(engine, many)
    wide = tmp_path / "wide.csv"
    wide.write_text(header + line.replace("test\n", "x" * (MAX_CSV_CELL_CHARS + 1) + "\n"))
    with pytest.raises(ImportError_, match=r"row 1, field 'price_source'.*characters"):
        import_file(engine, wide, kind="instances")


def test_csv_details_that_are_not_json_name_row_and_field(
    seeded_sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "quality.csv"
    path.write_text(
        "model,scheme,eval_set,perplexity,basis,source,details\n"
        "Llama-2-7B,gptq-w4a16-g128,x,6.0,measured,t,{broken\n"
    )
    with pytest.raises(ImportError_, match=r"row 1, field 'details': not a JSON value"):
        import_file(open_catalog(seeded_sqlite_url), path)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_literals_are_refused(
    seeded_sqlite_url: str, tmp_path: Path, literal: str
) -> None:
    path = tmp_path / "q.json"
    path.write_text(
        '{"kind": "quality", "rows": [{"model": "Llama-2-7B", "scheme": "gptq-w4a16-g128", '
        f'"eval_set": "x", "perplexity_delta_pct": {literal}, "basis": "measured", '
        '"source": "t"}]}'
    )
    with pytest.raises(ImportError_, match=r"perplexity_delta_pct.*finite") as caught:
        import_file(open_catalog(seeded_sqlite_url), path)
    assert "\n" not in caught.value.message and caught.value.hint


# Through the installed script, as a user runs it: refused in one line, nothing written.

QUALITY_NAN = """kind: quality
rows:
- model: Llama-2-7B
  scheme: gptq-w4a16-g128
  eval_set: wikitext-2 (poisoned)
  perplexity_delta_pct: .nan
  basis: measured
  source: a row that once broke plan, report, export and the dashboard
"""
PROFILE_INFINITY = json.dumps(
    {
        "kind": "profiles",
        "rows": [
            {
                "model": "Llama-3.1-8B",
                "scheme": "awq-w4a16-g128",
                "engine": "vllm",
                "hardware": "A10G",
                "input_tokens": 512,
                "output_tokens": 256,
                "concurrency": 8,
                "output_tokens_per_s": float("inf"),
                "basis": "measured",
                "source": "a row that once made every plan divide by zero",
            }
        ],
    }
)  # json.dumps writes the non-standard literal Infinity, as a careless exporter would
# A well-formed quality row whose details hold 9 levels of 9 aliases: under 700 bytes, 387
# million strings once expanded (the kind of file that once added 58 MB to a catalog).
ALIAS_BOMB = (
    "kind: quality\nrows:\n- model: Llama-2-7B\n  scheme: gptq-w4a16-g128\n  eval_set: x\n"
    "  perplexity: 6.0\n  basis: measured\n  source: t\n  details:\n"
    "    a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"    {b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)


def test_an_alias_bomb_is_refused_before_it_expands(seeded_sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 700
    engine = open_catalog(seeded_sqlite_url)
    started = time.perf_counter()
    with pytest.raises(QuantplanError, match="anchors"):
        import_file(engine, path)
    assert time.perf_counter() - started < 0.5


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory, seeded_catalog_file: Path) -> str:
    """A seeded catalog of this module's own, never the user's (a copy of the session's)."""
    path = copy_catalog(seeded_catalog_file, tmp_path_factory.mktemp("cli") / "c.db")
    return f"sqlite:///{path}"


def _quantplan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantplan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "500"},  # one message line stays one terminal line
    )


def _dump(db: str) -> str:
    """Every kind rendered as its export would be: the whole catalog as a user can see it."""
    engine = open_catalog(db)
    return "".join(render(kind, export_kind(engine, kind), "json") for kind in KIND_ORDER)


@pytest.mark.parametrize(
    ("name", "content", "kind", "expected"),
    [
        ("poisoned.yaml", QUALITY_NAN, "quality", ["row 1", "perplexity_delta_pct", "finite"]),
        ("fast.json", PROFILE_INFINITY, "profiles", ["row 1", "output_tokens_per_s", "finite"]),
        ("bomb.yaml", ALIAS_BOMB, None, ["anchors"]),
        ("binary.json", "\x00\x01\x02\x7fELF\x00" * 64, None, ["binary file"]),
    ],
    ids=["quality-nan", "profile-infinity", "alias-bomb", "binary"],
)
def test_cli_import_refuses_bad_files_and_writes_nothing(
    cli_db: str, tmp_path: Path, name: str, content: str, kind: str | None, expected: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(content)
    before = _dump(cli_db)
    started = time.perf_counter()
    result = _quantplan("catalog", "import", str(path), "--db", cli_db)
    elapsed = time.perf_counter() - started
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and name in lines[0], lines
    assert all(word in lines[0] for word in expected), lines
    assert (len(lines) == 2 and "hint:" in lines[1]) or kind is None, lines
    # Interpreter start-up included, on a loaded machine; the bomb alone once took minutes.
    assert elapsed < 10
    assert _dump(cli_db) == before
    if kind is not None:  # the export that a stored NaN or Infinity used to crash
        exported = _quantplan(
            "catalog", "export", "--kind", kind, "--format", "json", "--db", cli_db
        )
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout == render(kind, export_kind(open_catalog(cli_db), kind), "json")
