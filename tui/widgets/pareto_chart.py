"""A cost-vs-quality scatter of the Pareto front; it only draws the points it is given."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from quantplan.tui.viewmodels.plan_view import ParetoPoint


class ParetoChart(PlotextPlot):
    """$/month (x) against perplexity increase % (y); the chosen plan is drawn apart."""

    def on_mount(self) -> None:
        self.show_points([])

    def show_points(self, points: Sequence[ParetoPoint]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Pareto front: cost vs quality")
        plt.xlabel("$/month")
        plt.ylabel("perplexity +%")
        others = [p for p in points if not p.chosen]
        chosen = [p for p in points if p.chosen]
        if others:
            plt.scatter(
                [p.usd_per_month for p in others],
                [p.quality_delta_pct for p in others],
                marker="dot",
                label="front",
            )
        if chosen:
            plt.scatter(
                [p.usd_per_month for p in chosen],
                [p.quality_delta_pct for p in chosen],
                marker="x",
                label="chosen",
            )
        self.refresh()
