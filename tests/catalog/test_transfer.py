"""Import and export: lossless round trips, strict validation, all-or-nothing writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from quantplan.catalog.db import make_engine, open_catalog, prepare
from quantplan.catalog.models import InstanceType, QualityResult
from quantplan.catalog.records import KIND_ORDER
from quantplan.catalog.transfer import (
    ImportError_,
    export_file,
    export_kind,
    import_file,
    import_files,
)
from sqlmodel import Session, func, select

from quantplan.errors import QuantplanError


def _count(engine, table) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


@pytest.mark.parametrize("file_format", ["json", "yaml", "csv"])
def test_round_trip_is_lossless(db_url: str, tmp_path: Path, file_format: str) -> None:
    source = open_catalog(db_url)
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
    postgres_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    source = open_catalog(sqlite_url)
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


def test_bad_row_is_refused_whole_naming_file_row_and_field(db_url: str, tmp_path: Path) -> None:
    engine = open_catalog(db_url)
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


def test_unknown_field_suggests_the_right_one(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(sqlite_url)
    row = {**GOOD_ROW, "spot_price_per_hr": 0.3}
    with pytest.raises(ImportError_) as caught:
        import_file(engine, _write(tmp_path / "x.json", [row]))
    assert "spot_price_per_hr" in str(caught.value)
    assert caught.value.hint and "spot_price_per_hour" in caught.value.hint


def test_unknown_reference_suggests_near_miss_and_writes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    engine = open_catalog(db_url)
    before = _count(engine, InstanceType)
    rows = [{**GOOD_ROW, "name": "ok.one"}, {**GOOD_ROW, "name": "x", "hardware": "A10GG"}]
    with pytest.raises(ImportError_) as caught:
        import_file(engine, _write(tmp_path / "x.json", rows))
    assert "row 2" in str(caught.value)
    assert caught.value.hint and "A10G" in caught.value.hint
    assert _count(engine, InstanceType) == before


def test_changed_reference_row_needs_replace(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(sqlite_url)
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


def test_measurements_are_never_replaced(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_catalog(sqlite_url)
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


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        ("{not json", "x.json", "not valid JSON"),
        ('{"rows": []}', "x.json", "'kind' and 'rows'"),
        ('{"kind": "instancez", "rows": []}', "x.json", "unknown catalog kind"),
        ("cloud,name\naws,x\n", "prices.csv", "does not say which kind"),
        ("a: [", "x.yaml", "not valid YAML"),
        ("", "x.txt", "cannot tell the format"),
    ],
)
def test_malformed_files_give_clear_errors(
    sqlite_url: str, tmp_path: Path, content: str, name: str, expected: str
) -> None:
    engine = open_catalog(sqlite_url)
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(QuantplanError, match=expected):
        import_file(engine, path)


def test_missing_file(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(QuantplanError, match="no such file"):
        import_file(open_catalog(sqlite_url), tmp_path / "absent.json")
