"""The quantplan wheel that cluster nodes install: built here, shipped, installed by its sha256.

Nodes must never ``pip install quantplan`` from a public index: whoever registers that name
there would run code on every node of the user's cluster. The launcher configs therefore carry
a wheel the user's own machine produced (built from this checkout, or one given with
``--wheel``) and install it with ``pip --require-hashes``, so a node installs exactly these bytes
or nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.model_source import file_sha256
from quantplan.errors import QuantplanError
from quantplan.paths import cache_dir

# quantplan-<version>-<python tag>-<abi tag>-<platform tag>.whl (PEP 427; a build tag may sit
# after the version). The name goes into shell commands and ConfigMap keys, so only the
# characters wheel names use are accepted.
WHEEL_NAME = re.compile(
    r"quantplan-(?P<version>[A-Za-z0-9_.+!]+)(-[0-9][A-Za-z0-9_]*)?"
    r"-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl"
)
BUILD_TIMEOUT_S = 600


class WheelError(QuantplanError):
    """The quantplan wheel for the nodes cannot be built or is not a quantplan wheel."""


class QuantplanWheel(BaseModel):
    """A quantplan wheel on this machine, with what the nodes need to install it safely."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="Absolute path of the wheel file on this machine.")
    sha256: str = Field(description="sha256 of the file; nodes install only these bytes.")
    version: str = Field(description="quantplan version the wheel holds.")
    requires: tuple[str, ...] = Field(
        description="Its Requires-Dist lines without extras: what nodes install beside it."
    )

    @property
    def filename(self) -> str:
        return self.path.name


def load_wheel(path: Path) -> QuantplanWheel:
    """Check that ``path`` is a quantplan wheel and read its version, hash and requirements."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise WheelError(f"wheel {str(path)!r} does not exist", hint="check the --wheel path")
    match = WHEEL_NAME.fullmatch(path.name)
    if match is None:
        raise WheelError(
            f"{path.name!r} is not named like a quantplan wheel (quantplan-VERSION-...whl)",
            hint="build one with `pip wheel --no-deps -w dist .` in the quantplan checkout",
        )
    try:
        with zipfile.ZipFile(path) as archive:
            metadata_name = f"quantplan-{match['version']}.dist-info/METADATA"
            metadata = HeaderParser().parsestr(archive.read(metadata_name).decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError) as error:
        raise WheelError(
            f"{str(path)!r} is not a readable quantplan wheel ({type(error).__name__})",
            hint="build one with `pip wheel --no-deps -w dist .` in the quantplan checkout",
        ) from None
    if metadata.get("Name", "").lower() != "quantplan":
        raise WheelError(f"{str(path)!r} holds {metadata.get('Name')!r}, not quantplan")
    requires = tuple(
        line.strip() for line in metadata.get_all("Requires-Dist") or () if ";" not in line
    )
    return QuantplanWheel(
        path=path, sha256=file_sha256(path), version=metadata["Version"], requires=requires
    )


def source_checkout() -> Path | None:
    """The quantplan source tree this code runs from, or None for an install from a wheel."""
    import quantplan

    root = Path(quantplan.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
    except (tomllib.TOMLDecodeError, OSError):
        return None
    return root if name == "quantplan" else None


def build_wheel() -> QuantplanWheel:
    """Build the wheel of this checkout (``pip wheel --no-deps``), kept by its hash in the cache.

    The cache folder is named by the wheel's sha256, so a config written earlier keeps pointing
    at the exact bytes it names even after later builds.
    """
    root = source_checkout()
    if root is None:
        raise WheelError(
            "quantplan is installed without its source tree, so there is nothing to build",
            hint="pass --wheel PATH: the quantplan wheel you installed from (checked by sha256)",
        )
    with tempfile.TemporaryDirectory(prefix="quantplan-wheel-") as scratch:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", scratch, root],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WheelError(
                f"building the quantplan wheel from {root} took over {BUILD_TIMEOUT_S} s",
                hint="build it yourself (`pip wheel --no-deps -w dist .`) and pass --wheel PATH",
            ) from None
        built = sorted(Path(scratch).glob("quantplan-*.whl"))
        if result.returncode != 0 or len(built) != 1:
            last = (result.stderr.strip().splitlines() or ["no wheel was written"])[-1]
            raise WheelError(
                f"building the quantplan wheel from {root} failed: {last}",
                hint="build it yourself (`pip wheel --no-deps -w dist .`) and pass --wheel PATH",
            )
        digest = file_sha256(built[0])
        kept = cache_dir() / "wheels" / digest[:16] / built[0].name
        if not kept.is_file():
            kept.parent.mkdir(parents=True, exist_ok=True)
            partial = kept.with_name(kept.name + ".partial")
            shutil.copyfile(built[0], partial)
            partial.rename(kept)
    return load_wheel(kept)


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    return (match.group(0) if match else requirement).lower().replace("_", "-")


def node_dependencies(wheel: QuantplanWheel, ray_version: str) -> list[str]:
    """What nodes install beside the wheel: Ray pinned to the cluster's version, and quantplan's
    other requirements as its metadata states them (quantplan itself never by name)."""
    ray = [r for r in wheel.requires if _requirement_name(r) == "ray"]
    if ray and not all(r.replace(" ", "").endswith(f"=={ray_version}") for r in ray):
        raise WheelError(
            f"the wheel {wheel.filename} requires {', '.join(ray)}, but the cluster runs "
            f"Ray {ray_version}",
            hint=f"use a quantplan wheel built against ray=={ray_version}",
        )
    others = [r for r in wheel.requires if _requirement_name(r) not in ("ray", "quantplan")]
    return [f"ray[default]=={ray_version}", *others]


def requirement_line(wheel: QuantplanWheel, directory: str) -> str:
    """A pip requirements line that installs exactly this file (pip checks the hash)."""
    return f"quantplan @ file://{directory}/{wheel.filename} --hash=sha256:{wheel.sha256}"
