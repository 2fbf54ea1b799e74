"""The catalog database under real-world abuse, through the installed script where a user would be.

Secrets in URLs, a second process writing at the same time, a damaged file, and a catalog from
a newer quantplan: each is one clear line on stderr (exit 2), never a traceback or a password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_copy import copy_catalog
from postgres_databases import drop_database
from sqlalchemy import create_engine, make_url, text

from quantplan.catalog.db import (
    CatalogDamagedError,
    make_engine,
    prepare,
    redact_url,
    resolve_database_url,
)
from quantplan.catalog.seeding import SEED_DIR

QUANTPLAN = [sys.executable, "-m", "quantplan"]
PLAN_ARGS = ("plan", "--model", "Llama-3.1-8B", "--rps", "1")
# Percent, at and colon: each breaks a different naive URL or config parser.
PASSWORD = "p%40ss:w@rd%z"


def quantplan(*args: str, db: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTPLAN_DB": db, "COLUMNS": "1000"}
    return subprocess.run(
        [*QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, an ``error:`` line and a hint, no traceback; every needle in the message."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and lines[-1].lstrip().startswith("hint:"), lines
    assert len(lines) == 2, lines
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def seeded_sqlite(path: Path, seeded: Path) -> str:
    """A seeded catalog whose every page is in the main file (WAL emptied, no free pages).

    ``seeded`` is the session's seeded catalog (conftest's seeded_catalog_file): copied rather
    than seeded again, then vacuumed as before.
    """
    url = f"sqlite:///{path}"
    copy_catalog(seeded, path)
    engine = make_engine(url)
    with engine.connect() as connection:
        connection.connection.dbapi_connection.execute("VACUUM")  # type: ignore[union-attr]
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    assert not Path(f"{path}-wal").exists()  # the last connection closed: nothing left in WAL
    return url


# ----------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://u:p%2540ss%3Aw%40rd@h:5432/db",
            "postgresql+psycopg://u:***@h:5432/db",
        ),
        ("postgresql://u:p@ss@h/db", "postgresql://***@h/db"),  # unencoded @ in the password
        ("postgresql//u:secretpw@h/db", "postgresql//***@h/db"),  # not a URL at all
        ("postgresql+psycopg://u@h/db?password=secretpw", "postgresql+psycopg://u@h/db?password="),
        ("sqlite:////tmp/catalog.db", "sqlite:////tmp/catalog.db"),
    ],
)
def test_redact_url_hides_every_password_form(url: str, shown: str) -> None:
    redacted = redact_url(url)
    assert redacted.startswith(shown)
    for secret in ("p%2540ss", "p%40ss", "w@rd", "secretpw"):
        assert secret not in redacted


def test_unknown_driver_error_does_not_echo_the_password() -> None:
    result = quantplan("catalog", "where", db="mysqlx://admin:topsecret99@db.example/catalog")
    assert_one_clear_error(result, "mysqlx://admin:***@db.example/catalog")
    assert "topsecret99" not in result.stdout + result.stderr


def test_unparsable_url_error_does_not_echo_the_password() -> None:
    result = quantplan("catalog", "list", "--kind", "hardware", db="postgresql//u:topsecret99@h/db")
    assert_one_clear_error(result)
    assert "topsecret99" not in result.stdout + result.stderr


@pytest.fixture
def percent_password_url() -> Iterator[str]:
    """A database on the real server reached by a new role whose password holds % @ and :."""
    admin_url = os.environ.get("QUANTPLAN_TEST_POSTGRES_URL")
    if admin_url is None:
        pytest.skip("no PostgreSQL server (run through `make test`, which starts one)")
    admin = create_engine(resolve_database_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"qp_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'"))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = make_url(resolve_database_url(admin_url)).set(database=name)
    with create_engine(database, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f"GRANT ALL ON SCHEMA public TO {name}"))
    try:
        url = database.set(username=name, password=PASSWORD)
        yield url.render_as_string(hide_password=False)  # percent-encodes the password
    finally:
        drop_database(admin, name)
        with admin.connect() as connection:
            connection.execute(text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.integration
def test_percent_encoded_password_opens_and_is_never_shown(percent_password_url: str) -> None:
    encoded = make_url(percent_password_url)
    assert "%25" in percent_password_url  # the % of the password really is encoded in the URL

    where = quantplan("catalog", "where", db=percent_password_url)
    assert where.returncode == 0, where.stderr
    assert f"{encoded.username}:***@" in where.stdout and "(revision " in where.stdout
    listed = quantplan("catalog", "list", "--kind", "hardware", db=percent_password_url)
    assert listed.returncode == 0, listed.stderr
    assert "A10G" in listed.stdout

    wrong = percent_password_url.replace("%25z@", "%25y@")  # the same role, a wrong password
    refused = quantplan("catalog", "list", "--kind", "hardware", db=wrong)
    assert_one_clear_error(refused, "password authentication failed", f"{encoded.username}:***@")
    for result in (where, listed, refused):
        output = result.stdout + result.stderr
        assert PASSWORD not in output and "p%2540ss" not in output and "w@rd" not in output


@pytest.mark.postgres
@pytest.mark.integration
def test_dashboard_catalog_error_does_not_show_the_password(percent_password_url: str) -> None:
    """The dashboard shows QuantplanError.message as it is: it must already be redacted."""
    from quantplan.errors import QuantplanError
    from quantplan.tui.services import CatalogService

    wrong = percent_password_url.replace("%25z@", "%25y@")
    with pytest.raises(QuantplanError) as refused:
        CatalogService(wrong).load()
    shown = f"{refused.value.message} {refused.value.hint}"
    assert "***" in shown and PASSWORD not in shown and "p%2540ss" not in shown


# ------------------------------------------------------------------------ concurrency

HOLD_WRITE_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    # EXCLUSIVE is what a long import holds once its changes outgrow the page cache; in the
    # old rollback-journal mode it shut readers out too.
    connection.execute("BEGIN EXCLUSIVE")
    connection.execute("UPDATE hardware SET source = source")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    connection.execute("COMMIT")
    """
)


def hold_write_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
def test_readers_go_on_and_a_second_writer_waits_during_a_long_write(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    path = tmp_path / "catalog.db"
    url = seeded_sqlite(path, seeded_catalog_file)
    exported = SEED_DIR / "hardware.yaml"  # the export format; every row already present

    hold_s = 7.0  # longer than pysqlite's default 5 s timeout, which the import used to die on
    started = time.monotonic()
    holder = hold_write_lock(path, hold_s)
    try:
        writer = subprocess.Popen(
            [*QUANTPLAN, "catalog", "import", str(exported)],
            env={**os.environ, "QUANTPLAN_DB": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        listed = quantplan("catalog", "list", "--kind", "hardware", db=url)
        read_s = time.monotonic() - started
        assert listed.returncode == 0, listed.stderr
        assert "A10G" in listed.stdout
        assert read_s < hold_s, f"the read waited for the writer ({read_s:.1f} s)"
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert "Traceback" not in err and "0 added" in out and "already present" in out
        assert time.monotonic() - started >= hold_s  # it waited for the lock, then wrote
    finally:
        holder.wait(timeout=30)


@pytest.mark.slow
def test_a_writer_still_locked_out_after_the_timeout_gets_one_clear_line(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    path = tmp_path / "catalog.db"
    url = seeded_sqlite(path, seeded_catalog_file)
    exported = SEED_DIR / "hardware.yaml"  # the export format; every row already present
    # The real CLI entry point, with the busy timeout cut from 30 s to 1 s for the test.
    run_cli = (
        "import sys, quantplan.catalog.db as db; db.SQLITE_BUSY_TIMEOUT_S = 1.0; "
        "from quantplan.cli import main; sys.argv = ['quantplan', *sys.argv[1:]]; main()"
    )
    holder = hold_write_lock(path, 6.0)
    try:
        result = subprocess.run(
            [sys.executable, "-c", run_cli, "catalog", "import", str(exported)],
            capture_output=True,
            text=True,
            env={**os.environ, "QUANTPLAN_DB": url, "COLUMNS": "1000"},
            timeout=60,
        )
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert_one_clear_error(result, f"catalog file {path} is busy", "for more than 1 s")


# ------------------------------------------------------------ damaged and newer catalogs


def test_a_corrupt_page_is_one_clear_error_from_list_and_plan(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    path = tmp_path / "catalog.db"
    url = seeded_sqlite(path, seeded_catalog_file)
    size = path.stat().st_size
    page = 4096
    with path.open("r+b") as file:  # one page in the middle turned to junk, as a bad disk would
        file.seek(size // 2 // page * page)
        file.write(b"\xde\xad\xbe\xef" * (page // 4))
    for args in (("catalog", "list", "--kind", "hardware"), PLAN_ARGS):
        result = quantplan(*args, db=url)
        assert_one_clear_error(result, f"catalog file {path}", "not a usable catalog", "backup")


def test_a_file_that_is_not_sqlite_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 100)
    before = junk.read_bytes()
    result = quantplan(*PLAN_ARGS, db=f"sqlite:///{junk}")
    assert_one_clear_error(result, f"catalog file {junk}", "file is not a database")
    assert junk.read_bytes() == before  # nothing was written into the user's file


def test_damage_is_found_on_open_not_in_a_later_command(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    path = tmp_path / "catalog.db"
    url = seeded_sqlite(path, seeded_catalog_file)
    with path.open("r+b") as file:
        file.seek(path.stat().st_size // 2 // 4096 * 4096)
        file.write(b"\0" * 4096)
    with pytest.raises(CatalogDamagedError, match="catalog file"):
        prepare(make_engine(url), seed=False)


def test_a_catalog_from_a_newer_quantplan_is_one_clear_error(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    path = tmp_path / "catalog.db"
    url = seeded_sqlite(path, seeded_catalog_file)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999_from_the_future'"))
    engine.dispose()
    for args in (("catalog", "list", "--kind", "hardware"), PLAN_ARGS):
        result = quantplan(*args, db=url)
        assert_one_clear_error(
            result, f"catalog file {path}", "0999_from_the_future", "newer quantplan", "upgrade"
        )
    with create_engine(url).connect() as connection:  # and it was left as it was
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == (
            "0999_from_the_future"
        )


def test_the_default_catalog_is_the_file_in_the_data_directory_whatever_its_name(
    tmp_path: Path,
) -> None:
    """A data directory named with % or ? (URL syntax), and given relative to the working
    directory, still holds the catalog: it used to land in another file."""
    env = {k: v for k, v in os.environ.items() if k != "QUANTPLAN_DB"}
    env["QUANTPLAN_DATA_DIR"] = "data%40home?x"  # relative: resolved against cwd once
    result = subprocess.run(
        [*QUANTPLAN, "catalog", "list", "--kind", "schemes"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("catalog.db")] == [
        "data%40home?x/catalog.db"
    ]
