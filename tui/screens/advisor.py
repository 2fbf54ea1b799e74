"""Advisor: targets in, the ranked plan out -- options, Pareto chart, and why not the others.

The form is validated on every keystroke by :mod:`~quantplan.tui.viewmodels.targets_form`;
planning runs in a thread worker through the planner service, so the screen never freezes.

A plan brings its results forward (the options table takes the focus and, below 100 columns,
the form's width) only if the user has done nothing since asking for it. One who goes on typing
keeps the field and every key: the results fill in beside the form instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
    Switch,
    TabbedContent,
    TabPane,
)

from quantplan.errors import QuantplanError
from quantplan.planner.plan import Plan
from quantplan.planner.targets import Targets
from quantplan.tui.screens.dialogs import PathPrompt
from quantplan.tui.state import CatalogState, Dashboard
from quantplan.tui.viewmodels.catalog_view import known_clouds, known_models
from quantplan.tui.viewmodels.plan_view import (
    OptionRow,
    option_details,
    option_rows,
    pareto_points,
    plan_headline,
    why_not_rows,
)
from quantplan.tui.viewmodels.targets_form import (
    FIELD_LABELS,
    FormResult,
    TargetsForm,
    validate_form,
)
from quantplan.tui.widgets.form_field import FormField
from quantplan.tui.widgets.key_values import KeyValues
from quantplan.tui.widgets.pareto_chart import ParetoChart

TEXT_FIELDS = (
    "model",
    "requests_per_s",
    "tokens_per_day",
    "input_tokens",
    "output_tokens",
    "peak_to_mean",
    "ttft_p95_ms",
    "itl_p95_ms",
    "max_perplexity_increase_pct",
    "max_usd_per_month",
    "max_usd_per_million_tokens",
    "clouds",
)
NARROW_WIDTH = 100
"""Below this many columns the form hides itself once there are results to read."""

# The deciding numbers come first, so they stay visible in 80 columns.
INSTANCE_CELL_CHARS = 18
"""Widest instance cell in the options table, so the cost columns fit in 80 columns."""


def _clipped(text: str, limit: int = INSTANCE_CELL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


OPTION_COLUMNS = (
    ("rank", "#"),
    ("scheme", "scheme"),
    ("instance", "instance"),
    ("replicas", "rep"),
    ("month", "$/month"),
    ("per_m", "$/M tok"),
    ("ttft", "p95 TTFT"),
    ("quality", "ppl +%"),
    ("basis", "basis"),
    ("engine", "engine"),
    ("method", "method"),
)


class AdvisorScreen(Screen[None]):
    """What should I deploy?"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "plan", "Plan"),
        Binding("ctrl+s", "save_plan", "Save"),
        Binding("ctrl+o", "report", "Report"),
        Binding("ctrl+g", "apply_plan", "Apply"),
        Binding("ctrl+b", "toggle_form", "Form"),
    ]

    def __init__(self) -> None:
        super().__init__(id="advisor")
        self.form = TargetsForm()
        self.form_result = FormResult(None)
        self.plan: Plan | None = None
        self._rows: dict[str, OptionRow] = {}

    @property
    def quantplan(self) -> Dashboard:
        return cast(Dashboard, self.app)

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="advisor-body"):
            with VerticalScroll(id="targets-form"):
                for name in TEXT_FIELDS:
                    yield FormField(name, FIELD_LABELS[name], str(getattr(self.form, name)))
                with Horizontal(classes="choice-row"):
                    yield Label(FIELD_LABELS["device"])
                    yield Select(
                        [("GPU or CPU", "any"), ("GPU only", "gpu"), ("CPU only", "cpu")],
                        value=self.form.device,
                        allow_blank=False,
                        id="input-device",
                        compact=True,
                    )
                with Horizontal(classes="switch-row"):
                    yield Label(FIELD_LABELS["spot_allowed"])
                    yield Switch(self.form.spot_allowed, id="input-spot_allowed")
                yield Button("Plan (ctrl+r)", id="plan-button", variant="primary")
            with Vertical(id="results"):
                yield Static("Loading the catalog...", id="plan-status")
                with TabbedContent(id="result-tabs"):
                    with TabPane("Options", id="tab-options"):
                        yield DataTable(id="options", cursor_type="row", zebra_stripes=True)
                        yield KeyValues(id="option-details")
                    with TabPane("Pareto", id="tab-pareto"):
                        yield ParetoChart(id="pareto")
                    with TabPane("Why not", id="tab-why-not"):
                        yield VerticalScroll(Static(id="why-not"), id="why-not-scroll")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#options", DataTable)
        for key, label in OPTION_COLUMNS:
            table.add_column(label, key=key)
        self.quantplan.catalog_changed.subscribe(self, self._on_catalog)
        self._on_catalog(self.quantplan.catalog_state)

    def _on_catalog(self, state: CatalogState) -> None:
        snapshot = state.snapshot
        if snapshot is not None:
            self.query_one("#input-model", Input).suggester = SuggestFromList(
                known_models(snapshot), case_sensitive=False
            )
            self._set_status("Targets are checked as you type; press ctrl+r (or Enter) to plan.")
        elif state.error is not None:
            self._set_status(f"The catalog could not be opened: {state.error}", error=True)
        self._validate()

    # ---------------------------------------------------------------- form

    def on_input_changed(self, event: Input.Changed) -> None:
        name = (event.input.id or "").removeprefix("input-")
        if name in TEXT_FIELDS:
            self.form = self.form.with_value(name, event.value)
            self._validate()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if (event.input.id or "").startswith("input-"):
            self.action_plan()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.form = self.form.with_value("spot_allowed", event.value)
        self._validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "input-device" and isinstance(event.value, str):
            self.form = self.form.with_value("device", event.value)
            self._validate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "plan-button":
            self.action_plan()

    def _validate(self) -> None:
        snapshot = self.quantplan.catalog_state.snapshot
        self.form_result = validate_form(
            self.form,
            known_models=known_models(snapshot) if snapshot else (),
            known_clouds=known_clouds(snapshot) if snapshot else (),
        )
        for field in self.query(FormField):
            field.show_error(self.form_result.errors.get(field.field_name))
        self.query_one("#plan-button", Button).disabled = not (
            self.form_result.valid and snapshot is not None
        )

    # ---------------------------------------------------------------- planning

    def action_plan(self) -> None:
        snapshot = self.quantplan.catalog_state.snapshot
        if snapshot is None:
            self._set_status("The catalog is not loaded yet.", error=True)
            return
        if not self.form_result.valid or self.form_result.targets is None:
            count = len(self.form_result.errors)
            self._set_status(f"Fix {count} field(s) in red first.", error=True)
            return
        self._set_status("Planning...")
        # The input so far, the key that asked included: anything later means the user moved on.
        self.run_plan(self.form_result.targets, self.quantplan.user_inputs)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def run_plan(self, targets: Targets, asked_at: int | None = None) -> None:
        snapshot = self.quantplan.catalog_state.snapshot
        assert snapshot is not None
        try:
            plan = self.quantplan.services.planner.make_plan(targets, snapshot)
        except QuantplanError as error:
            message = error.message + (f" ({error.hint})" if error.hint else "")
            self.app.call_from_thread(self._set_status, message, error=True)
            return
        except Exception as error:  # the UI must survive a planner bug, and say what it was
            self.app.call_from_thread(
                self._set_status, f"The planner failed: {type(error).__name__}: {error}", True
            )
            return
        self.app.call_from_thread(self.show_plan, plan, asked_at)

    def show_plan(self, plan: Plan, asked_at: int | None = None) -> None:
        """Render a plan (from the worker, or given directly). ``asked_at``: the app's
        ``user_inputs`` when the plan was asked for (None: now)."""
        self.plan = plan
        self._set_status(plan_headline(plan), error=not plan.feasible)
        self._fill_options(plan, self.quantplan.user_inputs if asked_at is None else asked_at)
        self.query_one("#pareto", ParetoChart).show_points(pareto_points(plan))
        self._fill_why_not(plan)

    def _fill_options(self, plan: Plan, asked_at: int) -> None:
        table = self.query_one("#options", DataTable)
        table.clear()
        rows = option_rows(plan)
        self._rows = {row.key: row for row in rows}
        for row in rows:
            quality = row.quality_delta_pct
            table.add_row(
                Text(f"{row.rank}{'*' if row.chosen else ''}", style="bold" if row.chosen else ""),
                # Names from the catalog are data: Text, so "[" is never read as markup.
                Text(row.scheme),
                # Long cloud names (Standard_NC80adis_H100_v5 spot) pushed $/month off an
                # 80-column screen; the details pane below gives the full name.
                Text(_clipped(row.instance + (" spot" if row.pricing == "spot" else ""))),
                str(row.replicas),
                f"{row.usd_per_month:,.0f}",
                f"{row.usd_per_million_tokens:.3f}",
                f"{row.ttft_p95_ms.value:,.0f} ms",
                f"{quality.value:.2f}" if quality else "-",
                Text(row.basis),
                Text(row.engine),
                Text(row.method),
                key=row.key,
            )
        details = self.query_one("#option-details", KeyValues)
        if rows:
            details.show(self._option_details(rows[0]), title="Chosen option")
            self.query_one("#result-tabs", TabbedContent).active = "tab-options"
            # Decided behind the input already queued: keys typed before the plan landed but
            # not yet handled must count as typing, and must reach the field they were aimed at.
            self.app.call_later(self._bring_results_forward, asked_at)
        else:
            details.show(self._infeasible_details(plan), title="Nothing feasible")

    def _bring_results_forward(self, asked_at: int) -> None:
        """Results are what the user looks at next, unless they went on typing (or clicking):
        then the focus stays where they put it, and so does the form they are typing in."""
        if self.quantplan.user_inputs != asked_at or not self.is_attached:
            return
        # Below 100 columns the form gives the results its width (ctrl+b brings it back), so
        # the deciding columns stay readable.
        if self.size.width < NARROW_WIDTH:
            self.query_one("#targets-form").display = False
        self.query_one("#options", DataTable).focus()

    def _option_details(self, row: OptionRow) -> list[tuple[str, str]]:
        return option_details(row, today=self.quantplan.services.today())

    def _infeasible_details(self, plan: Plan) -> list[tuple[str, str]]:
        lines = [("summary", plan.summary)]
        lines += [(b.constraint, b.detail) for b in plan.binding_constraints]
        lines += [
            (f"relax {r.constraint}", f"{r.current} -> {r.needed}: {r.deployment.label}")
            for r in plan.relaxations
        ]
        return lines

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "options" or event.row_key.value is None:
            return
        row = self._rows.get(event.row_key.value)
        if row is not None:
            title = "Chosen option" if row.chosen else f"Option {row.rank}"
            self.query_one("#option-details", KeyValues).show(
                self._option_details(row), title=title
            )

    def _fill_why_not(self, plan: Plan) -> None:
        rows = why_not_rows(plan)
        widget = self.query_one("#why-not", Static)
        if not rows:
            widget.update("Every family had a feasible option; nothing was rejected outright.")
            return
        table = Table(expand=True, show_lines=True)
        table.add_column("family", no_wrap=True, style="bold")
        table.add_column("lost at", no_wrap=True)
        table.add_column("why", ratio=1, overflow="fold")
        for row in rows:
            ratio = f" ({row.cost_ratio:.1f}x cost)" if row.cost_ratio else ""
            table.add_row(Text(row.family), Text(row.stage), Text(row.reason + ratio))
        widget.update(table)

    def _set_status(self, message: str, error: bool = False) -> None:
        status = self.query_one("#plan-status", Static)
        status.update(Text(message))  # planner errors quote names and values: never markup
        status.set_class(error, "-error")

    # ---------------------------------------------------------------- plan actions

    def _need_plan(self) -> Plan | None:
        if self.plan is None:
            self._set_status("Make a plan first (ctrl+r).", error=True)
        return self.plan

    def action_save_plan(self) -> None:
        plan = self._need_plan()
        if plan is not None:
            prompt = PathPrompt(
                "Save the plan to (YAML, or .json)", "plan.yaml", action_label="Save"
            )
            self.app.push_screen(prompt, self._save_to)

    def _save_to(self, path: Path | None) -> None:
        if path is None or self.plan is None:
            return
        from quantplan.planner.plan import save_plan

        try:
            written = save_plan(self.plan, path)
        except OSError as error:
            self.notify(f"Cannot write {path}: {error.strerror}", severity="error", markup=False)
            return
        self.notify(
            f"Plan saved to {written}. Apply it with `quantplan apply {written}`.", markup=False
        )

    def action_report(self) -> None:
        plan = self._need_plan()
        if plan is not None:
            prompt = PathPrompt("Write the capacity report to", "report.html", action_label="Write")
            self.app.push_screen(prompt, self._report_to)

    def _report_to(self, path: Path | None) -> None:
        if path is not None and self.plan is not None:
            self.write_report(self.plan, path)

    @work(thread=True, exclusive=True, group="report", exit_on_error=False)
    def write_report(self, plan: Plan, path: Path) -> None:
        snapshot = self.quantplan.catalog_state.snapshot
        assert snapshot is not None
        try:
            written = self.quantplan.services.planner.write_report(plan, snapshot, path)
        except Exception as error:  # shown whatever it is: the worker must not fail silently
            self.app.call_from_thread(self._report_failed, error)
            return
        names = ", ".join(str(p) for p in written)
        self.app.call_from_thread(self.notify, f"Capacity report written: {names}", markup=False)
        if not self.app.is_headless:
            self.app.call_from_thread(self.app.open_url, written[0].resolve().as_uri())

    def _report_failed(self, error: Exception) -> None:
        if isinstance(error, QuantplanError):
            message = error.message + (f" -- {error.hint}" if error.hint else "")
        elif isinstance(error, OSError):
            message = f"cannot write the report: {error}"
        else:
            message = f"The report failed: {type(error).__name__}: {error}"
        self.notify(message, severity="error", timeout=10, markup=False)

    def action_apply_plan(self) -> None:
        plan = self._need_plan()
        if plan is None:
            return
        if not plan.feasible:
            self.notify("This plan meets no targets; there is nothing to apply.", severity="error")
            return
        self.apply_plan(plan)

    @work(thread=True, exclusive=True, group="apply", exit_on_error=False)
    def apply_plan(self, plan: Plan) -> None:
        try:
            outcome = self.quantplan.services.apply.apply(plan)
        except QuantplanError as error:
            message = error.message + (f" -- {error.hint}" if error.hint else "")
        except Exception as error:  # a cluster-side bug is reported, not swallowed by the worker
            message = f"Apply failed: {type(error).__name__}: {error}"
        else:
            self.app.call_from_thread(self.notify, outcome, markup=False)
            return
        self.app.call_from_thread(self.notify, message, severity="error", timeout=10, markup=False)

    def action_toggle_form(self) -> None:
        form = self.query_one("#targets-form")
        form.display = not form.display
        if form.display:
            self.query_one("#input-model", Input).focus()

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Plan", "Plan for the targets in the form", self.action_plan)
        yield SystemCommand("Save plan", "Write the plan as YAML/JSON", self.action_save_plan)
        yield SystemCommand("Capacity report", "Write the HTML report", self.action_report)
        yield SystemCommand("Apply plan", "Deploy the plan on the cluster", self.action_apply_plan)
        yield SystemCommand(
            "Toggle targets form", "Give the results the whole width", self.action_toggle_form
        )
