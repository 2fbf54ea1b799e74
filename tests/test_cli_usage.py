"""How the `quantplan` command ends: usage errors, --version, closed pipes, unexpected errors.

The first tests run the installed console script, as a user does. The exit-path tests call
``main()`` in-process on a one-command app, so each kind of exception costs milliseconds.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import typer
import typer.main
from catalog_copy import copy_catalog
from typer.testing import CliRunner

from quantplan import cli

QUANTPLAN = str(Path(sys.executable).with_name("quantplan"))
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run([QUANTPLAN, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("args", "usage", "message"),
    [
        (["--bogus"], "Usage: quantplan [OPTIONS] COMMAND", "No such option: --bogus"),
        (["nosuch"], "Usage: quantplan [OPTIONS] COMMAND", "No such command 'nosuch'"),
        (["catalog", "import"], "Usage: quantplan catalog import", "Missing argument"),
        (["plan", "--rps", "abc"], "Usage: quantplan plan", "Invalid value for '--rps'"),
        # Found by the fuzz bench: -inf reached ApplyOptions (exit 70), and names after --all
        # were ignored, so `toolchain install --all -- BOGUS` started building.
        (["apply", "p.yaml", "--threshold", "-inf"], "Usage: quantplan apply", "--threshold"),
        (["toolchain", "install", "--all", "--", "--x"], "Usage: quantplan toolchain", "--all"),
    ],
)
def test_usage_errors_exit_2_with_usage_and_one_error_line(
    args: list[str], usage: str, message: str
) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert usage in result.stderr
    (error_line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert message in error_line


def test_a_huge_name_is_echoed_shortened_in_one_error() -> None:
    # A 5,000-character kind was echoed whole and wrapped over a screenful of lines.
    result = run("catalog", "export", "--kind", "y" * 5000, "-o", os.devnull)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "(5,000 characters)" in " ".join(result.stderr.split()) and len(result.stderr) < 1000


def test_dashboard_without_a_terminal_is_one_error(tmp_path: Path) -> None:
    # Found by the fuzz bench: with no terminal Textual failed inside its driver (a traceback).
    env = {**os.environ, "QUANTPLAN_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [QUANTPLAN, "dashboard"], capture_output=True, text=True, env=env, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "needs an interactive terminal" in " ".join(result.stderr.split())


def test_report_of_an_unreachable_latency_target_is_written(
    tmp_path: Path, seeded_catalog_file: Path
) -> None:
    # Found by the fuzz bench: a 5e-324 ms TTFT target left the latency chart nothing positive
    # to put on its log axis, and matplotlib refused (exit 70).
    targets = tmp_path / "t.yaml"
    targets.write_text(
        "model: Mistral-7B\nworkload: {tokens_per_day: 1000000}\n"
        "slos: {ttft_p95_ms: 5.0e-324, itl_p95_ms: 60}\n"
    )
    copy_catalog(seeded_catalog_file, tmp_path / "catalog.db")  # the default catalog, seeded
    env = {**os.environ, "QUANTPLAN_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [QUANTPLAN, "report", str(targets), "-o", str(tmp_path / "r.html")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.html").read_text().count("<svg") >= 2


def test_version_is_the_one_the_install_records() -> None:
    # pyproject.toml reads the version from quantplan/_version.py; the install records it.
    project = tomllib.loads(PYPROJECT.read_text())
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, name = attr.rsplit(".", 1)
    expected = getattr(importlib.import_module(module), name)
    assert importlib.metadata.version("quantplan") == expected
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"quantplan {expected}"


def test_version_loads_no_command_module() -> None:
    # `quantplan --version` answers in the eager option, before any command is looked up.
    probe = (
        "import sys; import quantplan.cli as cli; cli.register_commands(['--version']); "
        "print(sorted(m for m in cli.COMMAND_MODULES if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["plan", "--help"], ["toolchain", "doctor", "--help"]])
def test_subcommand_help_exits_0(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def _root_command() -> click.Command:
    return typer.main.get_command(cli.register_commands())


def _every_command(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _every_command(sub, (*path, name))
    return found


def test_every_command_module_adds_its_own_commands_through_register() -> None:
    # One pattern: each module in COMMAND_MODULES has register(app), adds exactly the commands
    # the table says (a command's start imports only that module), and together they make the
    # whole root command with no name registered twice (a second one would shadow the first).
    import importlib

    names: list[str] = []
    for module_name, commands in cli.COMMAND_MODULES.items():
        app = typer.Typer()
        app.callback()(lambda: None)
        importlib.import_module(module_name).register(app)
        added = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
        assert sorted(added) == sorted(commands), module_name
        names += added
    assert len(names) == len(set(names)), names
    assert sorted(names) == sorted(_root_command().commands)  # type: ignore[attr-defined]


def test_every_db_option_is_the_shared_one() -> None:
    from quantplan.cli_options import DB_ENV, DbOption

    shared = DbOption.__metadata__[0]
    with_db = {
        " ".join(path): param
        for path, command in _every_command(_root_command())
        for param in command.params
        if "--db" in param.opts
    }
    assert {"plan", "report", "catalog list", "apply", "dashboard", "api"} <= set(with_db)
    for path, param in with_db.items():
        assert (param.envvar, param.help) == (DB_ENV, shared.help), path  # type: ignore[attr-defined]


def test_every_command_and_group_has_help() -> None:
    runner = CliRunner()
    app = cli.register_commands()
    for path, _ in _every_command(_root_command()):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output, path


def test_closed_stdout_ends_quietly(seeded_sqlite_url: str) -> None:
    # `quantplan catalog list | head -1`, with the reader gone before anything is written.
    env = {**os.environ, "QUANTPLAN_DB": seeded_sqlite_url}
    child = subprocess.Popen(
        [QUANTPLAN, "catalog", "list", "--kind", "instances"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == cli.EXIT_BROKEN_PIPE
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def _end_with(
    error: BaseException, monkeypatch: pytest.MonkeyPatch, *argv: str
) -> pytest.ExceptionInfo[SystemExit]:
    """Run ``main()`` on an app whose one command raises ``error``."""
    app = typer.Typer(pretty_exceptions_enable=False)
    app.callback()(cli._root_options)

    @app.command()
    def boom() -> None:
        raise error

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "register_commands", lambda argv=None: app)
    monkeypatch.setattr(sys, "argv", ["quantplan", *argv, "boom"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    return ended


def test_unexpected_error_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    ended = _end_with(ValueError("bad row\nsecond line"), monkeypatch)
    assert ended.value.code == cli.EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0] == "internal error: ValueError: bad row"
    assert "--debug" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(
    how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli.DEBUG_ENV, "1" if how == "env" else "0")
    ended = _end_with(ValueError("bad row"), monkeypatch, *(["--debug"] if how == "flag" else []))
    assert ended.value.code == cli.EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: bad row" in err


@pytest.mark.parametrize(
    ("error", "code", "shown"),
    [
        (typer.Exit(3), 3, ""),  # `toolchain doctor` failing: this used to end with 0
        (click.exceptions.Exit(4), 4, ""),
        (typer.Abort(), 1, "Aborted!"),
        (click.exceptions.Abort(), 1, "Aborted!"),
        (click.UsageError("wrong mix of options"), 2, "Error: wrong mix of options"),
        (KeyboardInterrupt(), cli.EXIT_INTERRUPTED, ""),
    ],
)
def test_every_flavour_of_exit_and_abort_keeps_its_code(
    error: BaseException,
    code: int,
    shown: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ended = _end_with(error, monkeypatch)
    assert ended.value.code == code
    err = capsys.readouterr().err
    assert shown in err and "Traceback" not in err
