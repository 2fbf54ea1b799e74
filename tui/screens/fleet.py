"""Fleet: nodes, agent jobs, deployments with live cost per token, the event log, replans.

Events are folded into :class:`~quantplan.tui.viewmodels.fleet_state.FleetState` as they arrive
(an async worker); the widgets are brought up to date on a fixed tick from what changed, so a
cluster sending thousands of updates a second costs a few table writes per frame, not one per
event. All three tables are :class:`LiveTable`s, which redraw only the rows that changed, so a
tab coming into view costs its visible lines, not a re-render of every cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Header, RichLog, Static

from quantplan.tui.fleet.sources import FleetSource, FleetUnavailable, SourceUnavailable
from quantplan.tui.state import Dashboard
from quantplan.tui.viewmodels.fleet_state import (
    FINISHED_JOB_STATES,
    DeploymentRow,
    FleetState,
    FleetSummary,
    JobRow,
    NodeRow,
)
from quantplan.tui.widgets.live_table import Cell, LiveTable
from quantplan.tui.widgets.steady_footer import SteadyFooter

REFRESH_PERIOD_S = 0.25
STATE_STYLES = {
    "joined": "green",
    "restarted": "yellow",
    "lost": "bold red",
    "started": "bold",
    "retrying": "yellow",
    "succeeded": "green",
    "failed": "bold red",
}
# (key, label, width): fixed widths, because live values change after the column is sized.
NODE_COLUMNS = (
    ("node", "node", 10),
    ("instance", "instance", 12),
    ("state", "state", 9),
    ("jobs", "jobs", 4),
    ("tokens", "out tok/s", 9),
    ("price", "$/h", 6),
    ("cost", "$/M tok", 8),
)
JOB_COLUMNS = (
    ("job", "job", 14),
    ("kind", "kind", 9),
    ("node", "node", 10),
    ("state", "state", 9),
    ("attempt", "try", 3),
    ("progress", "progress", 13),
    ("detail", "stage / detail", 28),
)
# Measured and planned values share a cell ("measured | planned", as the tab bar says) so the
# table, TTFT column included, fits 100 columns.
DEPLOYMENT_COLUMNS = (
    ("deployment", "deployment", 30),
    ("plan", "plan", 8),
    ("replicas", "up", 5),
    ("tokens", "tok/s", 7),
    ("price", "$/h", 6),
    ("cost", "$/M tok", 13),
    ("ttft", "p95 TTFT ms", 13),
)
PROGRESS_BAR_WIDTH = 8
LIVE_MARK = "● "  # a deployment row measured on the endpoint's live traffic


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def node_cells(node: NodeRow) -> tuple[Cell, ...]:
    return (
        node.node_id,
        node.instance_type,
        (node.state, STATE_STYLES.get(node.state, "")),
        str(node.running_jobs),
        _number(node.output_tokens_per_s),
        _number(node.usd_per_hour, 3),
        _number(node.usd_per_million_tokens, 3),
    )


def progress_cell(progress: float | None, active: bool) -> Text:
    """A bar and a percentage when the job counts its work; a plain dash when it cannot."""
    if progress is None:
        return Text("…" if active else "-", style="dim")
    filled = round(progress * PROGRESS_BAR_WIDTH)
    bar = Text("█" * filled, style="green" if active else "dim green")
    bar.append("░" * (PROGRESS_BAR_WIDTH - filled), style="dim")
    bar.append(f" {progress:4.0%}")
    return bar


def job_cells(job: JobRow) -> tuple[Cell, ...]:
    active = job.state not in FINISHED_JOB_STATES
    # A running job says what it is doing; a finished one keeps its outcome's detail.
    detail = job.stage if active and job.stage else job.detail or job.stage
    return (
        job.job_id,
        job.kind,
        job.node_id or "-",
        (job.state, STATE_STYLES.get(job.state, "")),
        str(job.attempt),
        progress_cell(job.progress, active),
        detail,
    )


def deployment_cells(row: DeploymentRow) -> tuple[Cell, ...]:
    return (
        row.deployment,
        row.plan_id,
        f"{row.replicas_healthy}/{row.replicas_total}" if row.replicas_total else "-",
        (f"{LIVE_MARK}{_number(row.output_tokens_per_s)}", "green")
        if row.live
        else _number(row.output_tokens_per_s),
        _number(row.usd_per_hour, 2),
        f"{_number(row.usd_per_million_tokens, 3)} | "
        f"{_number(row.predicted_usd_per_million_tokens, 3)}",
        f"{_number(row.ttft_p95_ms)} | {_number(row.predicted_ttft_p95_ms)}",
    )


VIEWS = (
    ("nodes", "n", "Nodes"),
    ("jobs", "j", "Jobs"),
    ("deployments", "d", "Deployments"),
    ("events", "e", "Events"),
)


TAB_HINTS = {
    "jobs": "progress from the job's own step counts",
    "deployments": "measured | planned; TTFT of the slowest replica",
}


def tab_bar(active: str) -> Text:
    bar = Text()
    for view, key, title in VIEWS:
        bar.append(f" {key} {title} ", style="reverse bold" if view == active else "dim")
        bar.append(" ")
    if active in TAB_HINTS:
        bar.append(f" {TAB_HINTS[active]}", style="italic dim")
    return bar


def summary_line(description: str, summary: FleetSummary) -> str:
    nodes = ", ".join(f"{n} {s}" for s, n in sorted(summary.nodes_by_state.items())) or "none"
    return (
        f"{description}\nnodes: {nodes} | jobs active: {summary.jobs_running} | "
        f"replicas healthy: {summary.replicas_healthy} | "
        f"{summary.output_tokens_per_s:,.0f} out tok/s | ${summary.usd_per_hour:,.2f}/h | "
        f"${_number(summary.usd_per_million_tokens, 3)}/M tok"
        + (" (live traffic)" if summary.live else "")
    )


class FleetScreen(Screen[None]):
    """What runs where, and what it costs per token, live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "show_tab('nodes')", "Nodes"),
        Binding("j", "show_tab('jobs')", "Jobs"),
        Binding("d", "show_tab('deployments')", "Deployments"),
        Binding("e", "show_tab('events')", "Events"),
    ]

    def __init__(self) -> None:
        super().__init__(id="fleet")
        self.state = FleetState()
        self.stream_error: str | None = None
        self.stream_note: str | None = None  # a finite source (a recording) reached its end
        self.unavailable: SourceUnavailable | None = None
        self._log_seen = 0
        self._summary_shown = ("", 0, 0)  # (text, width, wrapped lines) last put on screen

    @property
    def quantplan(self) -> Dashboard:
        return cast(Dashboard, self.app)

    @property
    def source(self) -> FleetSource | SourceUnavailable:
        return self.unavailable or self.quantplan.services.fleet

    def compose(self) -> ComposeResult:
        yield Header()
        source = self.source
        # Both views exist; a source that turns out unreachable swaps one for the other.
        with Vertical(id="no-cluster"):
            yield Static(id="no-cluster-message")
        with Vertical(id="fleet-live"):
            yield Static(Text(getattr(source, "description", "")), id="fleet-summary")
            yield Static("", id="replan")
            # A plain switcher and a one-line tab bar: switching views is a keypress away and
            # costs no tab animation while a thousand rows are updating.
            yield Static(tab_bar("nodes"), id="fleet-tab-bar")
            with ContentSwitcher(initial="nodes", id="fleet-tabs"):
                yield LiveTable(NODE_COLUMNS, id="nodes")
                yield LiveTable(JOB_COLUMNS, id="jobs")
                yield LiveTable(DEPLOYMENT_COLUMNS, id="deployments")
                yield RichLog(id="events", max_lines=500, wrap=True)
        yield SteadyFooter()

    def on_mount(self) -> None:
        self.query_one("#replan", Static).display = False
        source = self.source
        if isinstance(source, SourceUnavailable):
            self._show_unavailable(source)
            return
        self.query_one("#no-cluster").display = False
        self.consume(source)
        self._ticker = self.set_interval(REFRESH_PERIOD_S, self.refresh_views)

    def _show_unavailable(self, source: SourceUnavailable) -> None:
        self.query_one("#no-cluster-message", Static).update(
            Text(  # the reason quotes Ray's own error text: not markup
                f"No cluster connected: {source.reason}.\n\n{source.hint}\n\n"
                "The advisor (F2) and the catalog (F4) work without a cluster."
            )
        )
        self.query_one("#no-cluster").display = True
        self.query_one("#fleet-live").display = False

    def on_screen_resume(self) -> None:
        if not isinstance(self.source, SourceUnavailable):
            self.refresh_views()

    @work(exclusive=True, group="fleet-stream", exit_on_error=False)
    async def consume(self, source: FleetSource) -> None:
        """Fold the stream into the view-model; it only ends when the source does."""
        try:
            async for batch in source.events():
                self.state.apply_all(batch)
        except FleetUnavailable as error:
            self.unavailable = SourceUnavailable(error.reason)
            self._ticker.stop()
            self._show_unavailable(self.unavailable)
            return
        except Exception as error:  # a lost stream is shown, not raised
            self.stream_error = f"lost the fleet stream: {type(error).__name__}: {error}"
        else:
            self.stream_note = "end of the event stream"
        self.refresh_views()

    # ---------------------------------------------------------------- rendering

    def refresh_views(self) -> None:
        """Bring the widgets up to date with the view-model (on a tick, and on resume)."""
        if not self.is_current or isinstance(self.source, SourceUnavailable):
            return
        description = (
            self.source.description if not isinstance(self.source, SourceUnavailable) else ""
        )
        line = summary_line(description, self.state.summary())
        if self.stream_error or self.stream_note:
            line = f"{self.stream_error or self.stream_note} | {line}"
        self._update_summary(line)
        self._refresh_nodes()
        if self.state.jobs_dirty:
            self.state.jobs_dirty = False
            rows = [(j.job_id, job_cells(j)) for j in self.state.job_rows()]
            self.query_one("#jobs", LiveTable).set_rows(rows)
        if self.state.deployments_dirty:
            self.state.deployments_dirty = False
            rows = [(r.deployment, deployment_cells(r)) for r in self.state.deployment_rows()]
            self.query_one("#deployments", LiveTable).set_rows(rows)
        self._refresh_log()
        self._refresh_replan()

    def _update_summary(self, line: str) -> None:
        """Show ``line``; re-layout the screen only when its wrapped height changes.

        The numbers change on every tick, and a layout pass re-renders the whole screen: at a
        tick every 0.25 s that was a steady cost the keys had to queue behind.
        """
        summary = self.query_one("#fleet-summary", Static)
        summary.set_class(self.stream_error is not None, "-error")
        if line == self._summary_shown[0]:
            return
        width = max(1, summary.content_region.width)
        lines = len(Text(line).wrap(self.app.console, width))
        summary.update(Text(line), layout=(width, lines) != self._summary_shown[1:])
        self._summary_shown = (line, width, lines)

    def _refresh_nodes(self) -> None:
        if not self.state.has_node_changes:
            return
        table = self.query_one("#nodes", LiveTable)
        changes = self.state.take_node_changes()
        for node_id in changes.added:
            table.add_row(node_id, node_cells(self.state.nodes[node_id]))
        for node_id in changes.changed:
            table.update_row(node_id, node_cells(self.state.nodes[node_id]))
        table.repaint()

    def _refresh_log(self) -> None:
        fresh = self.state.new_log_lines(self._log_seen)
        self._log_seen = self.state.log_total
        if not fresh:
            return
        log = self.query_one("#events", RichLog)
        style = {"info": "", "warning": "yellow", "error": "bold red"}
        for line in fresh:
            log.write(Text(f"{line.at:%H:%M:%S} {line.message}", style=style[line.level]))

    def _refresh_replan(self) -> None:
        if not self.state.replan_dirty:
            return
        self.state.replan_dirty = False
        proposals = self.state.replan_proposals()
        banner = self.query_one("#replan", Static)
        banner.display = bool(proposals)
        if proposals:
            lines = [
                f"Replan proposed for {p.plan_id}: " + ("; ".join(p.reasons) or "see the log")
                for p in proposals
            ]
            banner.update(Text("\n".join(lines)))  # reasons quote events: not markup

    # ---------------------------------------------------------------- actions

    def action_show_tab(self, tab: str) -> None:
        if isinstance(self.source, SourceUnavailable):
            return
        self.query_one("#fleet-tabs", ContentSwitcher).current = tab
        self.query_one("#fleet-tab-bar", Static).update(tab_bar(tab))
        # Keys go where the eyes go: the view's table (or log) takes the focus.
        self.query_one(f"#{tab}").focus()

    def screen_commands(self) -> Iterable[SystemCommand]:
        for tab, title in (
            ("nodes", "Nodes"),
            ("jobs", "Jobs"),
            ("deployments", "Deployments"),
            ("events", "Events"),
        ):
            yield SystemCommand(
                f"Fleet: {title}",
                f"Show the fleet's {title.lower()}",
                lambda tab=tab: self.action_show_tab(tab),
            )
