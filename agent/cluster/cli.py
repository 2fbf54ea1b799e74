"""Cluster commands: ``cluster up|down|config|endpoint``, ``apply``, ``status``, ``destroy``.

Imports stay light here (no Ray); each command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from quantplan.cli_options import DbOption

console = Console()
cluster_app = typer.Typer(
    name="cluster",
    help="A local multi-node Ray cluster, and launcher configs for real ones.",
    no_args_is_help=True,
)

AddressOption = Annotated[
    str,
    typer.Option(
        "--address",
        help='Ray cluster: "auto" (the local cluster, else RAY_ADDRESS, else the one `ray '
        "start` recorded; never another Ray cluster found on this machine), or host:port",
        envvar="QUANTPLAN_RAY_ADDRESS",
    ),
]

StoreOption = Annotated[str | None, typer.Option(help="Shared artifact store URL")]
ModelDirOption = Annotated[str | None, typer.Option(help="Checkpoint of a non-default model")]


@cluster_app.command("up")
def cluster_up_command(
    nodes: Annotated[
        str,
        typer.Option(
            help="Worker nodes as INSTANCE[@spot][:COUNT],... e.g. "
            '"c7i.xlarge:2,c7i.xlarge@spot": @spot nodes stand for spot capacity (Ray\'s '
            "market-type label), where a plan's spot lines go first; kill one to see its "
            "replica replaced on on-demand"
        ),
    ] = "c7i.xlarge:2",
    head_cpus: Annotated[int, typer.Option(help="Logical CPUs of the head node")] = 4,
    db: DbOption = None,
    fake_gpus: Annotated[
        bool,
        typer.Option(
            "--fake-gpus",
            help="GPU instance types declare the catalog's GPUs as logical Ray resources, "
            "labelled fake (no device: for testing GPU plans on a CPU machine)",
        ),
    ] = False,
) -> None:
    """Start a Ray head and worker nodes on this machine (127.0.0.1, token auth)."""
    from quantplan.agent.cluster.local import cluster_up

    with console.status("starting the local Ray cluster..."):
        state = cluster_up(nodes, head_cpus=head_cpus, database_url=db, fake_gpus=fake_gpus)
    with console.status("starting the collector and the node agents..."):
        start_services(state, db)
    table = Table("node", "instance type", "market", "logical CPUs", "GPUs", "node id")
    for node in state.nodes:
        gpus = f"{node.fake_gpus} {node.accelerator_type} (fake)" if node.fake_gpus else "-"
        market = "-" if node.instance_type is None else "spot" if node.spot else "on-demand"
        table.add_row(
            node.name,
            node.instance_type or "(head)",
            market,
            str(node.num_cpus),
            gpus,
            node.node_id[:12],
        )
    console.print(table)
    console.print(f"cluster at [bold]{state.address}[/]; stop it with `quantplan cluster down`")


def start_services(state: object, database_url: str | None) -> None:
    """The collector (for ``database_url``) and one agent per node, so a dashboard opened now
    already sees the nodes; both are detached actors and outlive this command."""
    import ray

    from quantplan.agent.cluster.collector_actor import start_collector
    from quantplan.agent.cluster.local import connect
    from quantplan.agent.cluster.node_agent import start_node_agents
    from quantplan.catalog.db import open_catalog, resolve_database_url

    url = resolve_database_url(database_url)
    open_catalog(url)  # migrate and seed here, where errors reach the user
    connect(state)  # type: ignore[arg-type]
    try:
        start_collector(url)
        start_node_agents()
    finally:
        ray.shutdown()


@cluster_app.command("down")
def cluster_down_command() -> None:
    """Stop the local cluster (replicas of applied plans stop with their nodes' agents)."""
    from quantplan.agent.cluster.local import cluster_down

    console.print("local cluster stopped" if cluster_down() else "no local cluster was running")


@cluster_app.command("config")
def cluster_config_command(
    plan_file: Annotated[Path, typer.Argument(help="Plan file (YAML/JSON)")],
    provider: Annotated[str, typer.Option(help="aws, gcp or kuberay")] = "aws",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here")] = None,
    admin_cidr: Annotated[str, typer.Option(help="Who may SSH to the nodes")] = "10.0.0.0/8",
    serve_cidr: Annotated[str, typer.Option(help="Who may call the serving port")] = "10.0.0.0/8",
    wheel: Annotated[
        Path | None,
        typer.Option(help="quantplan wheel for the nodes (default: build this checkout's)"),
    ] = None,
    surge_percent: Annotated[
        int,
        typer.Option(
            min=0,
            max=100,
            help="Room for rolling updates: each line's node group may grow by this share of "
            "its instances (rounded up; 0: none). Serve the plan with the same `cluster "
            "endpoint --surge-percent` and the autoscaler starts the nodes a changed line's "
            "new replicas wait for, and lets them go when idle",
        ),
    ] = 25,
) -> None:
    """Write a Ray cluster-launcher YAML or KubeRay manifest for a plan's fleet."""
    from quantplan.agent.cluster.launcher import LauncherOptions, cluster_config
    from quantplan.errors import UnknownNameError
    from quantplan.planner.plan import load_plan

    if provider not in ("aws", "gcp", "kuberay"):
        raise UnknownNameError("provider", provider, ["aws", "gcp", "kuberay"])
    text = cluster_config(
        load_plan(plan_file),
        provider,  # type: ignore[arg-type]
        LauncherOptions(
            admin_cidr=admin_cidr, serve_cidr=serve_cidr, wheel=wheel, surge_percent=surge_percent
        ),
    )
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text)
        console.print(f"{provider} config written to {output}")


@cluster_app.command("endpoint")
def cluster_endpoint_command(
    plan_file: Annotated[Path, typer.Argument(help="Plan file from `quantplan plan -o`")],
    port: Annotated[int, typer.Option(help="Port of the one OpenAI endpoint")] = 8000,
    host: Annotated[
        str, typer.Option(help="Bind address. Anything but 127.0.0.1 exposes the endpoint.")
    ] = "127.0.0.1",
    address: AddressOption = "auto",
    name: Annotated[str | None, typer.Option(help="Application name (default: model)")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="QUANTPLAN_API_KEY",
            help="Require this bearer token. Prefer the QUANTPLAN_API_KEY variable: a flag's "
            "value shows in the process list to every local user.",
        ),
    ] = None,
    db: DbOption = None,
    store: StoreOption = None,
    model_dir: ModelDirOption = None,
    report_every: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Seconds of live traffic summed into one cost event of the plan (tokens/s "
            "served and $ per million tokens at that rate), shown on the dashboard's fleet "
            "screen; needs the collector `cluster up` starts",
        ),
    ] = 10.0,
    fixed_replicas: Annotated[
        bool,
        typer.Option(
            "--fixed-replicas",
            help="Run each line's planned replicas throughout. By default a line scales with "
            "its load between the plan's min_replicas (the mean load's) and replicas (the "
            "peak's), starting at the floor, aiming at the plan's concurrency per replica",
        ),
    ] = False,
    scale_up_after: Annotated[
        float, typer.Option(min=1.0, help="Seconds of load over target before a replica is added")
    ] = 10.0,
    scale_down_after: Annotated[
        float,
        typer.Option(min=1.0, help="Seconds of load under target before a replica is removed"),
    ] = 300.0,
    update_timeout: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Seconds a changed plan's new replicas may take to run before the endpoint "
            "rolls back to the previous plan",
        ),
    ] = 600.0,
    always_ingress: Annotated[
        bool,
        typer.Option(
            "--always-ingress",
            help="Put the ingress in front of a plan of one line too. By default that line's "
            "engine replicas answer the endpoint themselves: one hop fewer, about 3 ms less "
            "per request on a 2-core machine. The ingress also retries a request whose "
            "replica died before answering on another replica. Once a changed plan has "
            "several lines the ingress stays, even if the plan goes back to one",
        ),
    ] = False,
    surge_percent: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=100,
            help="Share of a changed line's replicas (%) whose new ones start and become "
            "healthy before old ones stop. Default: as many as the spare nodes of the line's "
            "type hold; 0: an old replica stops before its new one starts",
        ),
    ] = None,
) -> None:
    """Serve a plan's fleet behind one OpenAI endpoint (Ray Serve) until SIGINT or SIGTERM.

    The plan file is watched. Save a changed plan of the same model (more
    replicas, another line) and the endpoint rolls over to it while it keeps
    answering: Serve replaces a changed line's replicas a few at a time. A
    plan it cannot run is refused with its reasons, and the running fleet
    stays as it was; one whose new replicas fail to start (or are not running
    within --update-timeout) is rolled back to the previous plan.
    """
    from quantplan.agent.cluster.endpoint import (
        EndpointOptions,
        plan_watch,
        run_until_signalled,
        start_endpoint,
        update_endpoint,
    )
    from quantplan.errors import QuantplanError
    from quantplan.planner.plan import load_plan

    options = EndpointOptions(
        name=name,
        host=host,
        port=port,
        api_key=api_key,
        database_url=db,
        store_url=store,
        model_dir=model_dir,
        traffic_window_s=report_every,
        scale_with_load=not fixed_replicas,
        scale_up_after_s=scale_up_after,
        scale_down_after_s=scale_down_after,
        update_timeout_s=update_timeout,
        always_ingress=always_ingress,
        surge_percent=surge_percent,
    )
    with console.status("starting the endpoint") as spinner:
        endpoint = start_endpoint(
            plan_file,
            options,
            address=address,
            on_progress=lambda line: spinner.update(f"starting the endpoint: {line}"),
        )
    for deployment, runs in endpoint.deployments.items():
        console.print(f"  {deployment}: {runs}", highlight=False)
    console.print(
        f"serving [bold]{endpoint.model}[/] at {endpoint.url}/v1 "
        "(chat/completions, completions, models); Ctrl-C or SIGTERM stops it; "
        f"a changed {plan_file.name} is rolled out",
        highlight=False,
    )
    changed = plan_watch(plan_file)
    serving = load_plan(plan_file)  # what a changed plan that fails to start rolls back to

    def roll_out_a_changed_plan() -> None:
        nonlocal endpoint, serving
        if not changed():
            return
        console.print(f"{plan_file} changed: updating the fleet", highlight=False)
        try:
            candidate = load_plan(plan_file)
            with console.status("updating") as spinner:
                endpoint = update_endpoint(
                    endpoint,
                    candidate,
                    options,
                    on_progress=lambda line: spinner.update(f"updating: {line}"),
                )
        except QuantplanError as error:  # checked before anything changed
            console.print(f"[red]changed plan refused:[/] {error}", highlight=False)
            console.print("still serving the previous plan", highlight=False)
            return
        except Exception as error:  # Serve could not start it: back to the plan that ran
            console.print(f"[red]update failed:[/] {_last_line(error)}", highlight=False)
            console.print("rolling back to the previous plan", highlight=False)
            try:
                with console.status("rolling back"):
                    endpoint = update_endpoint(endpoint, serving, options)
            except Exception as again:
                console.print(f"[red]rollback failed:[/] {_last_line(again)}", highlight=False)
                console.print(
                    "the endpoint keeps what Serve could keep running; save a plan that runs, "
                    "or stop it",
                    highlight=False,
                )
                return
            console.print(
                f"rolled back: serving the previous plan at {endpoint.url}/v1", highlight=False
            )
            return
        serving = candidate
        for deployment, runs in endpoint.deployments.items():
            console.print(f"  {deployment}: {runs}", highlight=False)
        console.print(f"serving the changed plan at {endpoint.url}/v1", highlight=False)

    run_until_signalled(
        endpoint.app_name,
        on_stop=lambda line: console.print(line),
        on_tick=roll_out_a_changed_plan,
    )


def _last_line(error: BaseException) -> str:
    """The last non-blank line of ``error`` (Serve's failures end with their cause), cut short."""
    lines = [line for line in str(error).splitlines() if line.strip()] or [repr(error)]
    return lines[-1][:300]


def apply_command(
    plan_file: Annotated[Path, typer.Argument(help="Plan file from `quantplan plan -o`")],
    address: AddressOption = "auto",
    name: Annotated[str | None, typer.Option(help="Deployment name (default: model)")] = None,
    db: DbOption = None,
    store: StoreOption = None,
    model_dir: ModelDirOption = None,
    benchmark: Annotated[bool, typer.Option(help="Benchmark the replicas")] = True,
    threshold: Annotated[float, typer.Option(help="Re-plan when off by more than %")] = 25.0,
    bench_concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Benchmark each replica with at most this many requests in flight (default: "
            "the plan's operating concurrency on GPU replicas, at most 4 on CPU ones, whose "
            "local nodes share cores)",
        ),
    ] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Apply a better plan at once")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff only")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON")] = False,
) -> None:
    """Deploy a plan on the Ray cluster, benchmark it, compare with the prediction."""
    from quantplan.agent.cluster.apply import ApplyOptions, apply_plan

    if not math.isfinite(threshold) or threshold <= 0:
        raise typer.BadParameter(
            f"must be a finite percentage above 0 (got {threshold})", param_hint="--threshold"
        )
    options = ApplyOptions(
        name=name,
        database_url=db,
        store_url=store,
        model_dir=model_dir,
        benchmark=benchmark,
        max_bench_concurrency=bench_concurrency,
        replan_threshold_pct=threshold,
        auto_replan=auto,
        dry_run=dry_run,
    )
    with console.status("applying the plan: connecting") as spinner:
        outcome = apply_plan(
            plan_file,
            address=address,
            options=options,
            on_progress=lambda line: spinner.update(f"applying the plan: {line}"),
        )
    if as_json:
        typer.echo(outcome.model_dump_json(indent=2))
        return
    console.print(f"cluster: {outcome.cluster}", highlight=False)
    for line in outcome.diff:
        console.print(line, highlight=False)
    console.print(f"[bold]{outcome}[/]")
    for replica_id, url in outcome.endpoints.items():
        console.print(f"  {replica_id}: {url}/v1")
    if outcome.measurements:
        table = Table("replica", "conc.", "out tok/s", "TTFT p95 ms", "$/h", "$/M tokens")
        for m in outcome.measurements:
            table.add_row(
                m.replica_id,
                str(m.concurrency),
                f"{m.output_tokens_per_s:.1f}",
                f"{m.ttft_p95_ms or 0:.0f}",
                f"{m.usd_per_hour:.4f}",
                f"{m.usd_per_million_tokens or 0:.4f}",
            )
        console.print(table)
    if outcome.comparisons:
        table = Table(
            "deployment", "metric", "predicted (conc.)", "measured (conc.)", "error %", "basis"
        )
        for c in outcome.comparisons:
            table.add_row(
                c.deployment,
                c.metric,
                f"{c.predicted:g} ({c.predicted_concurrency})",
                f"{c.measured:g} ({c.measured_concurrency})",
                f"{c.error_pct:+.1f}",
                c.basis,
            )
        console.print(table)
    if outcome.replan is not None:
        replan = outcome.replan
        console.print(f"[yellow]measured differs from predicted:[/] {replan.reason}")
        if replan.path:
            verb = "applied" if replan.applied else "proposed"
            console.print(f"re-plan {verb}: {' + '.join(replan.proposed)} ({replan.path})")
        else:
            console.print("re-planning with the new measurements keeps the same plan")


def status_command(
    address: AddressOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """What runs where: nodes, replicas (healthy or not), the collector."""
    from quantplan.agent.cluster.fleet_ops import fleet_status

    status = fleet_status(address)
    if as_json:
        typer.echo(status.model_dump_json(indent=2))
        return
    console.print(f"cluster: {status.cluster}", highlight=False)
    nodes = Table("node", "instance type", "alive", "CPUs", "GPUs")
    for node in status.nodes:
        gpus = f"{node.gpus} {node.accelerator_type or ''}".strip() if node.gpus else "-"
        nodes.add_row(
            node.node_id[:12],
            (node.instance_type or "(head)") + (" (spot)" if node.spot else ""),
            str(node.alive),
            f"{node.cpus:g}",
            gpus + (" (fake)" if node.fake_gpus else ""),
        )
    console.print(nodes)
    replicas = Table("deployment", "engine", "node", "state")
    # Ids and URLs are what a user copies: fold them onto more lines, never cut them.
    replicas.add_column("replica", overflow="fold")
    replicas.add_column("endpoint", overflow="fold")
    for r in status.replicas:
        replicas.add_row(r.deployment, r.engine, r.node_id[:12], r.state, r.replica_id, r.endpoint)
    console.print(replicas)
    for r in status.replicas:
        if r.state == "failed":
            console.print(f"[red]failed:[/] {r.detail}", highlight=False)
    if status.collector:
        console.print("collector: " + json.dumps(status.collector))


def destroy_command(
    name: Annotated[str | None, typer.Argument(help="Deployment name (default: all)")] = None,
    address: AddressOption = "auto",
) -> None:
    """Stop the replicas of an applied plan (all applied plans by default)."""
    from quantplan.agent.cluster.fleet_ops import destroy
    from quantplan.agent.cluster.local import attach

    console.print(f"cluster: {attach(address)}", highlight=False)
    stopped = destroy(name, address)
    console.print(
        f"stopped {len(stopped)} replica(s)" + (": " + ", ".join(stopped) if stopped else "")
    )


def register(app: typer.Typer) -> None:
    """Add the ``cluster`` group, ``apply``, ``status`` and ``destroy`` to the root app."""
    app.add_typer(cluster_app, name="cluster")
    app.command("apply")(apply_command)
    app.command("status")(status_command)
    app.command("destroy")(destroy_command)
