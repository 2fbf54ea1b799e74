"""A local multi-node Ray cluster for demos and tests: ``quantplan cluster up|down``.

``cluster_up("c7i.xlarge:2,c7i.2xlarge:1")`` starts a host process (:mod:`local_host`) that runs
a Ray head plus one Ray node per requested instance, each node declaring the custom resource
``instance:<type>`` and as many logical CPUs as the catalog says the instance has (logical CPUs
are a scheduling budget, not a reservation, so several "instances" share this machine). Token
authentication is on: the token lives in the state directory and only processes given it (our
drivers, through :func:`connect`) can talk to the cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantplan.agent.cluster.local_host import ClusterRequest, ClusterState, WorkerRequest
from quantplan.agent.cluster.naming import NAMESPACE
from quantplan.errors import QuantplanError, UnknownNameError
from quantplan.paths import data_dir

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray's own switch for single-host clusters: with it, a driver resolves 127.0.0.1 to itself
instead of to the host's routable address (``services.get_node_ip_address``)."""
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


def default_state_dir() -> Path:
    return Path(os.environ.get("QUANTPLAN_CLUSTER_DIR", str(data_dir() / "local-cluster")))


def parse_node_spec(spec: str) -> list[tuple[str, int, bool]]:
    """``"c7i.xlarge:2,c7i.xlarge@spot"`` -> ``[("c7i.xlarge", 2, False), ("c7i.xlarge", 1,
    True)]``: instance type, count, and whether the nodes stand for spot capacity."""
    nodes: list[tuple[str, int, bool]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, _, count_text = part.partition(":")
        name, at, market = kind.partition("@")
        try:
            count = int(count_text) if count_text else 1
        except ValueError:
            count = 0
        if not name or count < 1 or (at and market != "spot"):
            raise QuantplanError(
                f"cannot read node spec {part!r}",
                hint="write INSTANCE[@spot][:COUNT] items separated by commas, e.g. "
                '"c7i.xlarge:2,c7i.xlarge@spot"',
            )
        nodes.append((name, count, bool(at)))
    if not nodes:
        raise QuantplanError("no nodes requested", hint='e.g. --nodes "c7i.xlarge:2"')
    return nodes


def instance_vcpus(names: list[str], database_url: str | None = None) -> dict[str, int]:
    """vCPUs of each named instance type, from the catalog (unknown names are refused)."""
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.snapshot import load_snapshot

    snapshot = load_snapshot(open_catalog(database_url))
    known = {i.name: i.vcpus for i in snapshot.instances}
    for name in names:
        if name not in known:
            raise UnknownNameError("instance type", name, known)
    return {name: known[name] for name in names}


def instance_gpus(names: list[str], database_url: str | None = None) -> dict[str, tuple[int, str]]:
    """GPUs of each named GPU instance type and their Ray accelerator type, from the catalog."""
    from quantplan.agent.toolchains.gpu import accelerator_type_for_hardware
    from quantplan.catalog.db import open_catalog
    from quantplan.catalog.snapshot import load_snapshot

    snapshot = load_snapshot(open_catalog(database_url))
    return {
        i.name: (i.accelerator_count, accelerator_type_for_hardware(i.hardware))
        for i in snapshot.instances
        if i.name in names and i.accelerator_count > 0
    }


def build_request(
    spec: str,
    *,
    head_cpus: int = 4,
    database_url: str | None = None,
    fake_gpus: bool = False,
) -> ClusterRequest:
    """Workers as ``spec`` asks; with ``fake_gpus``, a GPU instance type's node declares the
    catalog's GPUs as logical Ray resources (no device: for tests of GPU plans)."""
    nodes = parse_node_spec(spec)
    names = sorted({name for name, _, _ in nodes})
    vcpus = instance_vcpus(names, database_url)
    gpus = instance_gpus(names, database_url) if fake_gpus else {}
    numbered: dict[str, int] = {}
    workers = []
    for name, count, spot in nodes:
        for _ in range(count):
            label = f"{name}-spot" if spot else name
            numbered[label] = numbered.get(label, 0) + 1
            workers.append(
                WorkerRequest(
                    name=f"{label}-{numbered[label]}",
                    instance_type=name,
                    num_cpus=vcpus[name],
                    fake_gpus=gpus[name][0] if name in gpus else 0,
                    accelerator_type=gpus[name][1] if name in gpus else None,
                    spot=spot,
                )
            )
    return ClusterRequest(head_cpus=head_cpus, workers=tuple(workers))


def load_state(state_dir: Path | None = None) -> ClusterState | None:
    """The running local cluster, or None (a state left by a dead host is ignored)."""
    path = (state_dir or default_state_dir()) / "state.json"
    if not path.is_file():
        return None
    state = ClusterState.model_validate_json(path.read_text())
    if not _alive(state.host_pid):
        return None
    return state


def cluster_up(
    spec: str,
    *,
    state_dir: Path | None = None,
    head_cpus: int = 4,
    database_url: str | None = None,
    timeout_s: float = START_TIMEOUT_S,
    fake_gpus: bool = False,
) -> ClusterState:
    """Start the local cluster and return once every node has joined."""
    state_dir = state_dir or default_state_dir()
    running = load_state(state_dir)
    if running is not None:
        raise QuantplanError(
            f"a local cluster is already running at {running.address} ({len(running.nodes)} nodes)",
            hint="stop it first with `quantplan cluster down`",
        )
    request = build_request(
        spec, head_cpus=head_cpus, database_url=database_url, fake_gpus=fake_gpus
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "state.json").unlink(missing_ok=True)
    (state_dir / "request.json").write_text(request.model_dump_json(indent=2))
    token = state_dir / "auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    log_path = state_dir / "host.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "quantplan.agent.cluster.local_host", str(state_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **cluster_environment(state_dir)},
            start_new_session=True,  # outlives this command; its own process group
        )
    (state_dir / "host.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = load_state(state_dir)
        if state is not None:
            return state
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise QuantplanError(
                "the local cluster failed to start:\n" + "\n".join(tail),
                hint=f"full log: {log_path}",
            )
        time.sleep(0.5)
    _stop_group(process.pid)
    raise QuantplanError(
        f"the local cluster did not come up within {timeout_s:g} s",
        hint=f"see {log_path}; the machine may be short of memory",
    )


def cluster_environment(state_dir: Path) -> dict[str, str]:
    """Environment every process of this cluster (nodes and drivers) needs."""
    # Ray's socket paths must stay under 108 bytes, so its directory is short and in /tmp.
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    temp = Path(tempfile.gettempdir()) / f"qp-ray-{digest}"
    temp.mkdir(parents=True, exist_ok=True)
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(state_dir / "auth_token"),
        # Keeps this cluster's address file and sessions apart from any other Ray on the host.
        "RAY_TMPDIR": str(temp),
        "RAY_USAGE_STATS_ENABLED": "0",
        **LOOPBACK_ENV,
    }


def cluster_down(state_dir: Path | None = None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the local cluster, and every engine server its node agents noted: engines run in
    process groups of their own, so stopping a node does not stop them. Returns False if no
    cluster was running."""
    from quantplan.agent.cluster.replicas import stop_noted_servers

    state_dir = state_dir or default_state_dir()
    pid_file = state_dir / "host.pid"
    if not pid_file.is_file():
        return False
    try:
        state = ClusterState.model_validate_json((state_dir / "state.json").read_text())
        node_ids = {node.node_id for node in state.nodes}
    except (OSError, ValueError):
        node_ids = set()
    pid = int(pid_file.read_text())
    if not _alive(pid):
        pid_file.unlink(missing_ok=True)
        stop_noted_servers(node_ids=node_ids)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # the host shuts every node down cleanly
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _stop_group(pid)  # whatever is left of the group (a node that would not stop)
    # After the nodes: an agent still alive could otherwise start or note another server.
    stop_noted_servers(node_ids=node_ids)
    pid_file.unlink(missing_ok=True)
    (state_dir / "state.json").unlink(missing_ok=True)
    return True


def connect(state: ClusterState, state_dir: Path | None = None) -> None:
    """Attach this process to the local cluster as a driver (token auth included)."""
    os.environ.update(cluster_environment(state_dir or default_state_dir()))
    import ray

    use_loopback_driver()
    _refresh_ray_auth_config()
    if not ray.is_initialized():
        ray.init(address=state.address, namespace=NAMESPACE, log_to_driver=False)


def use_loopback_driver() -> None:
    """Let this process connect to a cluster on 127.0.0.1 as a driver.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` into ``ray_constants`` at import; when Ray
    was imported before the variable was set, the constant it consults is set the same way.
    """
    os.environ.update(LOOPBACK_ENV)
    if "ray._private.ray_constants" in sys.modules:
        from ray._private import ray_constants  # already imported: no import happens here

        ray_constants.ENABLE_RAY_CLUSTER = False


def _refresh_ray_auth_config() -> None:
    """Make an already-imported Ray see RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH set just now.

    Ray reads its config once; ``ray._private.authentication`` re-reads it the same way when it
    turns token auth on for a new local cluster.
    """
    with contextlib.suppress(ImportError, AttributeError):
        # A Cython class that ray's _raylet.pyi does not declare.
        from ray._raylet import Config  # type: ignore[attr-defined]

        Config.initialize("")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _stop_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_joined: str | None = None
"""Which cluster this process attached to, in words (a process attaches once)."""


def attach(address: str | None = "auto") -> str:
    """Connect this process to a cluster and say which one, in words (for the CLI to show).

    "auto" picks, in order: the local cluster `quantplan cluster up` recorded, ``RAY_ADDRESS``,
    the cluster `ray start` last recorded on this machine. It never takes Ray's own fallback of
    joining whichever Ray cluster a process scan finds: on a shared machine that is someone
    else's (a test's, a benchmark's), and `destroy` would then act on it. "local" is the
    recorded local cluster only; anything else is a Ray address.
    """
    global _joined
    import ray

    if ray.is_initialized():
        if _joined is None:
            gcs = ray.get_runtime_context().gcs_address
            _joined = f"the Ray cluster this process already joined at {gcs}"
        return _joined
    address = address or "auto"
    if address in ("auto", "local"):
        state = load_state()
        if state is not None:
            connect(state)
            _joined = f"the local cluster (`quantplan cluster up`) at {state.address}"
            return _joined
        if address == "local":
            raise QuantplanError(
                "no local cluster is running",
                hint='start one with `quantplan cluster up --nodes "c7i.xlarge:2"`',
            )
        address, where = _recorded_address()
    else:
        where = f"the Ray cluster at {address}"
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    except ConnectionError as error:
        raise QuantplanError(
            f"cannot connect to {where}: {_first_line(error)}",
            hint='start a local one with `quantplan cluster up --nodes "c7i.xlarge:2"`, '
            "or pass --address HOST:PORT",
        ) from None
    _joined = where
    return _joined


def _recorded_address() -> tuple[str, str]:
    """The address "auto" means when no local cluster runs: RAY_ADDRESS, else the one `ray
    start` recorded (Ray's own address file); else a refusal naming what was looked at."""
    from ray._private.utils import read_ray_address

    environment = os.environ.get("RAY_ADDRESS", "").strip()
    if environment and environment != "auto":
        return environment, f"the Ray cluster at {environment} (RAY_ADDRESS)"
    recorded = read_ray_address()  # where `ray start` writes it (under RAY_TMPDIR, if set)
    if recorded:
        return recorded, f"the Ray cluster `ray start` recorded at {recorded}"
    raise QuantplanError(
        "no cluster to attach to: no local cluster is running, RAY_ADDRESS is not set and "
        "`ray start` recorded none (other Ray clusters on this machine are never joined "
        "unasked)",
        hint='start one with `quantplan cluster up --nodes "c7i.xlarge:2"`, '
        "or pass --address HOST:PORT",
    )


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
