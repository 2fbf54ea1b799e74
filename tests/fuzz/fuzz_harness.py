"""Running fuzz cases against the quantplan CLI and judging what came back.

Two ways to run a case, both ending in ``quantplan.cli:main`` (the console script's entry point):
- ``script``: the installed ``quantplan`` script in a subprocess, exactly as a user runs it;
- ``fork``: a process that imported quantplan once forks a child per case, which sets
  ``sys.argv``, points fds 1 and 2 at files and calls ``main()``; it exits the way the
  interpreter would (SystemExit code, or an uncaught exception printed as a traceback, exit 1).
  That skips ~1 s of interpreter start and imports per case, which is what makes thousands of
  cases affordable in bench/fuzz_bench.py.

Every case runs in its own directory with its own copy of a seeded SQLite catalog, and with the
user directories, TMPDIR and RAY_TMPDIR pointed inside the sandbox and the Ray address pinned to
the sandbox's (absent) local cluster, so ``apply``, ``status`` and ``destroy`` can never join a
Ray cluster running on the machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from cli_output import is_price_age_warning
from fuzz_cases import REPO, Case

from quantplan.planner.cli import INFEASIBLE_EXIT_CODE

SCRIPT = Path(sys.executable).with_name("quantplan")
CASE_TIMEOUT_S = 60.0
# Wide enough that rich does not wrap an ordinary one-line message, so "one line" means one
# logical line; a message longer than this is reported as overlong anyway.
COLUMNS = "400"
OVERLONG_CHARS = 1000
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class RawRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


@dataclass
class Problem:
    category: str  # traceback, timeout, unclear error, multi-line error, ...
    signature: str  # groups failures with the same cause
    detail: str  # the lines that show it


@dataclass
class Result:
    case: Case
    run: RawRun
    catalog_changed: bool
    followups: list[tuple[list[str], RawRun]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Sandbox:
    """A directory tree for one fuzz session: a seeded template catalog and per-case dirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.data = root / "data"
        self.cache = root / "cache"
        for each in (self.tmp, self.data, self.cache):
            each.mkdir(parents=True, exist_ok=True)
        self.template = root / "template.db"
        self._count = 0
        if not self.template.exists():
            run = run_script(["catalog", "where"], root, self.env(self.template), 120)
            if run.rc != 0:
                raise RuntimeError(f"could not seed the template catalog:\n{run.stderr}")
        # The catalog runs SQLite in WAL mode: fold the log into the file, or a copy of the
        # file alone would be an empty catalog.
        with sqlite3.connect(self.template) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.template_digest = catalog_digest(self.template)

    def env(self, database: Path) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME")}
        return {
            **keep,
            "QUANTPLAN_DB": f"sqlite:///{database}",
            "QUANTPLAN_DATA_DIR": str(self.data),
            "QUANTPLAN_CACHE_DIR": str(self.cache),
            "TMPDIR": str(self.tmp),
            "RAY_TMPDIR": str(self.tmp),
            # Ray's "auto" also scans running processes for a GCS, so apply/status/destroy would
            # join another test's cluster on this machine; "local" means the cluster recorded in
            # QUANTPLAN_DATA_DIR, which in the sandbox never exists.
            "QUANTPLAN_RAY_ADDRESS": "local",
            "COLUMNS": COLUMNS,
            "NO_COLOR": "1",
            "TERM": "dumb",
            "PYTHONHASHSEED": "0",
        }

    def new_case_dir(self) -> Path:
        self._count += 1
        path = self.root / f"case-{os.getpid()}-{self._count}"
        path.mkdir()
        return path


def catalog_digest(database: Path) -> str:
    """sha256 over every table's rows in a stable order: equal digests, equal catalogs."""
    digest = hashlib.sha256()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
            )
        ]
        for table in tables:
            digest.update(table.encode())
            rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
            for row in sorted(repr(r) for r in rows):
                digest.update(row.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# ---------------------------------------------------------------- runners


def run_script(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> RawRun:
    """The installed console script in a subprocess."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [str(SCRIPT), *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        return RawRun(
            -9,
            _text(expired.stdout),
            _text(expired.stderr),
            time.perf_counter() - started,
            timed_out=True,
        )
    return RawRun(
        done.returncode, _text(done.stdout), _text(done.stderr), time.perf_counter() - started
    )


def preload_for_fork() -> None:
    """Import what every command needs once, in the parent, so each forked child starts warm."""
    from quantplan.cli import register_commands

    register_commands()


def run_forked(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> RawRun:
    """``quantplan.cli:main`` in a forked child of this (pre-imported) process."""
    out_path, err_path = cwd / ".fz-stdout", cwd / ".fz-stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: behave like `quantplan ARGV` and never return
        code = 1
        try:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            import tempfile

            tempfile.tempdir = None  # re-read TMPDIR: Ray finds clusters under it
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            for fd, path in ((1, out_path), (2, err_path)):
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(handle, fd)
                os.close(handle)
            sys.argv = ["quantplan", *argv]
            code = _call_main()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)
    deadline = started + timeout
    status = None
    while time.perf_counter() < deadline:
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        return RawRun(-9, _read(out_path), _read(err_path), timeout, timed_out=True)
    rc = os.waitstatus_to_exitcode(status)
    return RawRun(rc, _read(out_path), _read(err_path), time.perf_counter() - started)


def _call_main() -> int:
    from quantplan.cli import main

    try:
        main()
    except SystemExit as exit_:
        if exit_.code is None:
            return 0
        if isinstance(exit_.code, int):
            return exit_.code
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


RUNNERS = {"script": run_script, "fork": run_forked}


# ---------------------------------------------------------------- one case


def execute(case: Case, sandbox: Sandbox, mode: str = "script", keep: bool = False) -> Result:
    """Run ``case`` (and, if it succeeds, its follow-up reads) and judge the outcome."""
    runner = RUNNERS[mode]
    case_dir = sandbox.new_case_dir()
    try:
        database = case_dir / "catalog.db"
        shutil.copyfile(sandbox.template, database)
        before = catalog_digest(database)
        if before != sandbox.template_digest:
            raise RuntimeError("the copy of the template catalog differs from the template")
        for name, body in case.files.items():
            (case_dir / name).write_bytes(body)
        env = sandbox.env(database)
        run = runner(case.argv, case_dir, env, CASE_TIMEOUT_S)
        changed = catalog_digest(database) != before
        result = Result(case, run, changed)
        if run.rc == 0:
            for argv in case.followups:
                result.followups.append((argv, runner(argv, case_dir, env, CASE_TIMEOUT_S)))
        result.problems = judge(result)
        return result
    finally:
        if not keep:
            shutil.rmtree(case_dir, ignore_errors=True)


def answered(argv: list[str], rc: int) -> bool:
    """Whether the command answered rather than refused: exit 0, or, for `plan`, exit 3 (the
    targets were read and planned, and no deployment meets them: a plan file is still written)."""
    return rc == 0 or (bool(argv) and argv[0] == "plan" and rc == INFEASIBLE_EXIT_CODE)


def judge(result: Result) -> list[Problem]:
    """What is wrong with this outcome, if anything (an empty list: the CLI behaved)."""
    case, run = result.case, result.run
    ok = answered(case.argv, run.rc)
    problems = _judge_run(case.argv, run)
    if case.expect_ok and not ok and not run.timed_out:
        problems.append(Problem("valid input refused", _first_line(run.stderr)[:80], _excerpt(run)))
    if case.expect_refused and ok:
        problems.append(Problem("invalid input accepted", case.what[:60], _excerpt(run)))
    # Only a refused input must leave the catalog alone; a valid import may change it.
    if not ok and result.catalog_changed:
        problems.append(Problem("catalog changed by a refused input", case.argv[0], _excerpt(run)))
    if ok and result.catalog_changed and case.surface != "import":
        problems.append(Problem("catalog changed by a reader", " ".join(case.argv[:2]), ""))
    for argv, followup in result.followups:
        for problem in _judge_run(argv, followup):
            problem.category = "after a successful import: " + problem.category
            problems.append(problem)
    return problems


def _judge_run(argv: list[str], run: RawRun) -> list[Problem]:
    command = " ".join(a for a in argv[:2] if not a.startswith("-") and "." not in a)
    if run.timed_out:
        return [Problem("timeout", command, f"no answer after {CASE_TIMEOUT_S:.0f} s")]
    problems: list[Problem] = []
    both = run.stderr + "\n" + run.stdout
    if TRACEBACK in both:
        problems.append(Problem("traceback", traceback_signature(both), _tail(both)))
    elif run.rc < 0:
        problems.append(Problem("killed by a signal", f"{command} signal {-run.rc}", ""))
    elif answered(argv, run.rc):
        errors = [line for line in run.stderr.splitlines() if line.strip().startswith("error:")]
        if errors:  # an answer says nothing is wrong with the input
            problems.append(Problem("error line in an answer", command, _excerpt(run)))
    else:
        unclear = clarity(run.rc, run.stderr)
        if unclear is not None:
            problems.append(Problem(unclear, f"{command}: {_shape(run.stderr)}", _excerpt(run)))
    return problems


def clarity(rc: int, stderr: str) -> str | None:
    """None when a refusal is one clear line, else what is wrong with it.

    Clear: the first line is ``error: ...`` (optionally followed by ``hint:`` lines), or, for
    exit 2, click's usage error (``Usage: ...`` / ``Error: ...``). The price-age warning that
    planning prints on the seeded catalog (undated prices) is a warning, not part of the
    refusal: it is left out before judging, and the error must still be one line.
    """
    lines = [
        line.rstrip()
        for line in stderr.splitlines()
        if line.strip() and not is_price_age_warning(line)
    ]
    if not lines:
        return "no message"
    first = lines[0].strip()
    if first.startswith("internal error:"):  # an unexpected exception, caught at the top
        return "internal error"
    if first.startswith("error:"):
        rest = lines[1:]
        before_hint = []
        for line in rest:
            if line.strip().startswith("hint:"):
                break
            before_hint.append(line)
        # rich wraps a message longer than COLUMNS at a word boundary: those lines are one.
        wrapped = all(len(line) >= int(COLUMNS) * 3 // 4 for line in [first, *before_hint[:-1]])
        if before_hint and not wrapped:
            return "multi-line error"
        first = " ".join([first, *(line.strip() for line in before_hint)])
        if len(first) > OVERLONG_CHARS:
            return "overlong error"
        return None
    if rc == 2 and ("Usage:" in stderr or first.startswith("Error:")):
        return None
    return "unclear error"


def traceback_signature(text: str) -> str:
    """``ExceptionType at file:function`` of the innermost frame in the project's own code."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', text)
    own = [
        (path, func)
        for path, func in frames
        if str(REPO) in path and "site-packages" not in path and "/tests/" not in path
    ]
    where = ""
    if own:
        path, func = own[-1]
        where = f" at {Path(path).relative_to(REPO)}:{func}"
    exception = "?"
    for line in reversed(text.splitlines()):
        match = re.match(
            r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|\w+))(:|$)", line
        )
        if match and not line.startswith(" "):
            exception = match.group(1)
            break
    return exception + where


def _shape(stderr: str) -> str:
    """The first line with numbers, quotes and paths blurred, to group similar messages."""
    line = _first_line(stderr)
    line = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", line)
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    return line[:90]


def _first_line(text: str) -> str:
    """The first line that says something of this run (the seed's price-age warning does not)."""
    for line in text.splitlines():
        if line.strip() and not is_price_age_warning(line):
            return line.strip()
    return ""


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(line[:300] for line in kept[-lines:])


def _excerpt(run: RawRun) -> str:
    kept = [line for line in run.stderr.splitlines() if line.strip()][:6]
    return f"exit {run.rc}: " + "\n".join(line[:300] for line in kept)


PLAN_COMMANDS = (
    ["plan", "--model", "Llama-3.1-8B", "--rps", "5", "--ttft-p95-ms", "800"],
    ["plan", "--model", "Llama-3.2-1B", "--tokens-per-day", "2e6", "--cpu-only"],
    ["plan", "--model", "Llama-2-70B", "--rps", "1", "--budget-month", "10"],
    ["plan", "--model", "Qwen2.5-7B", "--rps", "20", "--mixed-fleet", "--spot"],
)


def valid_plans(sandbox: Sandbox) -> list[dict]:
    """Real plan files (feasible, CPU-only, infeasible, mixed fleet) from `quantplan plan -o`."""
    import yaml

    plans = []
    work = sandbox.root / "plans"
    work.mkdir(exist_ok=True)
    for number, argv in enumerate(PLAN_COMMANDS):
        path = work / f"plan{number}.yaml"
        run = run_script([*argv, "-o", str(path)], work, sandbox.env(sandbox.template), 120)
        if not answered(argv, run.rc):  # the infeasible one exits 3 and still writes its plan
            raise RuntimeError(f"`quantplan {' '.join(argv)}` failed:\n{run.stderr}")
        plans.append(yaml.safe_load(path.read_text()))
    return plans
