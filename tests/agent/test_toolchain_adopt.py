"""`quantplan toolchain adopt`: an existing environment stands in for a toolchain, honestly.

The environment here is a real venv (with the core's interpreter) holding importable modules
and package metadata under the toolchain's names; the versions are what the test wrote, so the
lock comparison has a known answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantplan.agent.toolchains import find_toolchain, get_spec
from quantplan.agent.toolchains.adopt import adopt_toolchain, lock_pins
from quantplan.agent.toolchains.build import base_python, python_version_of, toolchain_key
from quantplan.agent.toolchains.doctor import toolchain_checks
from quantplan.errors import QuantplanError

NAME = "llmcompressor"


def _environment(root: Path, versions: dict[str, str]) -> Path:
    """A venv whose site-packages imports the toolchain's smoke modules and reports
    ``versions`` for its distributions."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for module in get_spec(NAME).smoke_imports:
        (site / f"{module}.py").write_text("")
    for distribution, version in versions.items():
        info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        )
    return python


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(root))
    return root


def _lock_versions() -> dict[str, str]:
    pins = lock_pins(get_spec(NAME))
    return {name: pins[name] for name in get_spec(NAME).version_of}


def test_adopted_environment_is_found_with_its_own_key_and_differences(
    tmp_path: Path, cache: Path
) -> None:
    versions = {**_lock_versions(), "torch": "2.11.0+cu130"}
    python = _environment(tmp_path / "env", versions)
    lock_key = get_spec(NAME).content_key(python_version_of(base_python()))

    adopted = adopt_toolchain(NAME, python)

    found = find_toolchain(NAME)
    assert found == adopted and found.adopted and found.python == python
    assert found.versions == versions
    assert found.lock_differences == (f"torch 2.11.0+cu130 (lock {_lock_versions()['torch']})",)
    # Artifacts made with it get an address of their own, never the locked build's.
    assert toolchain_key(get_spec(NAME)) == found.key != lock_key
    checks = {check.name: check for check in toolchain_checks(NAME)}
    assert checks[f"{NAME}: imports"].status == "ok"
    assert checks[f"{NAME}: adopted"].status == "warn"
    assert "torch 2.11.0+cu130" in checks[f"{NAME}: adopted"].detail


def test_an_environment_matching_the_lock_has_no_differences(tmp_path: Path, cache: Path) -> None:
    adopted = adopt_toolchain(NAME, _environment(tmp_path / "env", _lock_versions()))
    assert adopted.lock_differences == ()
    assert {c.name: c.status for c in toolchain_checks(NAME)}[f"{NAME}: adopted"] == "ok"


def test_missing_import_is_refused_and_nothing_is_registered(tmp_path: Path, cache: Path) -> None:
    python = _environment(tmp_path / "env", _lock_versions())
    site = next((tmp_path / "env").glob("lib/python*/site-packages"))
    (site / "compressed_tensors.py").unlink()

    with pytest.raises(QuantplanError, match="No module named 'compressed_tensors'"):
        adopt_toolchain(NAME, python)
    assert find_toolchain(NAME) is None


def test_cli_adopts_and_refuses_a_missing_interpreter(tmp_path: Path, cache: Path) -> None:
    quantplan = shutil.which("quantplan", path=str(Path(sys.executable).parent))
    assert quantplan is not None
    python = _environment(tmp_path / "env", {**_lock_versions(), "transformers": "0.0.1"})
    environment = {**os.environ, "QUANTPLAN_CACHE_DIR": str(cache)}

    done = subprocess.run(
        [quantplan, "toolchain", "adopt", NAME, "--python", str(python)],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    assert "adopted" in done.stderr and "transformers 0.0.1" in done.stderr

    listed = subprocess.run(
        [quantplan, "toolchain", "list", "--json"], capture_output=True, text=True, env=environment
    )
    row = next(r for r in json.loads(listed.stdout) if r["name"] == NAME)
    assert row["adopted"] and row["path"] == str(python)

    missing = subprocess.run(
        [quantplan, "toolchain", "adopt", NAME, "--python", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert missing.returncode != 0
    assert "no interpreter at" in missing.stderr and "Traceback" not in missing.stderr
