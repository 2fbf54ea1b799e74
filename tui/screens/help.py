"""Help: what each screen is for, and its keys."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP_TEXT = """\
# quantplan dashboard

**F2 Advisor** -- what should I deploy? Fill in the targets (checked as you type),
press **Enter** or **ctrl+r** to plan. Options are ranked cheapest first; the basis
column says where the speed (T) and quality (Q) numbers come from: *meas*ured,
*interp*olated, *model*ed or *pub*lished. Highlight a row for every number with its
uncertainty band. **ctrl+s** saves the plan (YAML/JSON), **ctrl+o** writes the capacity
report, **ctrl+g** applies the plan to the cluster, **ctrl+b** hides the form.

**F3 Fleet** -- the live cluster: **n** nodes, **j** agent jobs, **d** deployments
(tokens/s, p95 TTFT and $/M tokens, measured | predicted), **e** event log. A banner
shows a replan proposal when the loop finds a cheaper plan. Without a cluster, start one
with `quantplan cluster up`.

**F4 Catalog** -- browse what the planner knows. **k** picks the kind, **/** filters
(words, or `field=value`, e.g. `cloud=aws L4`), the panel below shows the highlighted
row with its provenance. **i** imports a file (all rows or none), **r** reloads.

**Everywhere** -- **ctrl+p** command palette, **F1** or **?** this help, **ctrl+t**
light/dark theme, **tab** next field, **ctrl+q** quit.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP_TEXT)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
