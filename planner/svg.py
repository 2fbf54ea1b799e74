"""Tiny inline-SVG charts for the report: no JavaScript, no network, no plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 80, 180, 30, 50

Point = tuple[float, float]


def _scale(value: float, low: float, high: float, log: bool) -> float:
    if log:
        value, low, high = math.log10(value), math.log10(low), math.log10(high)
    return 0.0 if high == low else (value - low) / (high - low)


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        start, stop = math.floor(math.log10(low)), math.ceil(math.log10(high))
        return [10.0**e for e in range(start, stop + 1) if low <= 10.0**e <= high] or [low, high]
    step = (high - low) / 5 or 1.0
    return [low + k * step for k in range(6)]


def _fmt(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:.3g}"


def _bounds(values: Sequence[float], log: bool) -> tuple[float, float]:
    usable = [v for v in values if v > 0] if log else list(values)
    if not usable:
        return (1.0, 10.0)
    low, high = min(usable), max(usable)
    if low == high:
        low, high = (low / 2, high * 2) if log else (low - 1, high + 1)
    return low, high


def chart(
    title: str,
    series: Sequence[tuple[str, Sequence[Point]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    log_y: bool = False,
    lines: bool = True,
    vertical_markers: Sequence[tuple[float, str]] = (),
) -> str:
    """An SVG line (or scatter) chart with a legend; series may be empty."""
    xs = [x for _, pts in series for x, _ in pts] + [x for x, _ in vertical_markers]
    ys = [y for _, pts in series for _, y in pts]
    x_low, x_high = _bounds(xs, log_x)
    y_low, y_high = _bounds(ys, log_y)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + _scale(x, x_low, x_high, log_x) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - _scale(y, y_low, y_high, log_y)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    for tick in _ticks(x_low, x_high, log_x):
        x = px(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 15}" text-anchor="middle">{_fmt(tick)}</text>'
        )
    for tick in _ticks(y_low, y_high, log_y):
        y = py(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f'<text x="15" y="{TOP + plot_h / 2}" transform="rotate(-90 15 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for x, text in vertical_markers:
        parts.append(
            f'<line x1="{px(x):.1f}" y1="{TOP}" x2="{px(x):.1f}" y2="{TOP + plot_h}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
        )
        parts.append(f'<text x="{px(x) + 3:.1f}" y="{TOP + 12}">{escape(text)}</text>')
    for k, (name, points) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        valid = [(x, y) for x, y in points if (not log_x or x > 0) and (not log_y or y > 0)]
        if lines and len(valid) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in valid)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for x, y in valid:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        legend_y = TOP + 14 * k + 8
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 10}" y="{legend_y - 8}" width="10" height="10" '
            f'fill="{colour}"/><text x="{WIDTH - RIGHT + 24}" y="{legend_y + 1}">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)
