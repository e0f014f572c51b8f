"""Small line charts drawn on the server as inline SVG, with time on the x axis.

The dashboard must work offline and without JavaScript, so charts are plain
SVG markup: no CDN, no chart library, and screen readers get a text summary
(``role="img"`` with an ``aria-label``; the numbers are also in the history
table below the charts).

A point's x is its time, so a six-hour outage is wide and fifteen minutes
narrow; a gap much longer than the usual interval between snapshots breaks
the line instead of drawing a slope across hours nobody measured. The y axis
starts at zero (or spans zero to ``top``, a memory total), so a small wobble
does not look like a cliff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from statistics import median

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 320, 110
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 4, 6, 16, 26
TICKS = 3
# A gap this many times the usual interval between snapshots breaks the line.
GAP_FACTOR = 3

Point = tuple[dt.datetime, float | None]


def _segments(points: Sequence[Point]) -> list[list[tuple[dt.datetime, float]]]:
    """The runs of known values, split at missing values and at gaps far longer than the usual interval."""
    steps = [(b[0] - a[0]).total_seconds() for a, b in zip(points, points[1:])]
    usual = median(steps) if steps else 0.0
    segments: list[list[tuple[dt.datetime, float]]] = [[]]
    previous = None
    for when, value in points:
        if value is None or (previous is not None and usual > 0
                             and (when - previous).total_seconds() > GAP_FACTOR * usual):
            if segments[-1]:
                segments.append([])
        if value is not None:
            segments[-1].append((when, value))
        previous = when
    return [segment for segment in segments if segment]


def time_chart(points: Sequence[Point], *, title: str,
               format_value: Callable[[float], str] = lambda v: f"{v:g}",
               tick_text: Callable[[dt.datetime], str] = lambda t: t.strftime("%Y-%m-%d %H:%M"),
               top: float | None = None) -> SafeString:
    """An SVG line chart of (time, value) *points*, oldest first; None values break the line.

    ``tick_text`` turns a time into its axis label (the pages pass their one
    time format); ``top`` fixes the top of the y axis (a memory total).
    """
    known = [value for _, value in points if value is not None]
    if not known:
        return mark_safe(
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(title)}: no data"><text x="{WIDTH // 2}" y="{HEIGHT // 2}" '
            f'text-anchor="middle" class="chart-empty">no data yet</text></svg>'
        )
    low, high, last = min(known), max(known), known[-1]
    ceiling = max(top or 0, high) or 1.0
    start, end = points[0][0], points[-1][0]
    span = (end - start).total_seconds()
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    base = PAD_TOP + inner_h

    def x_of(when: dt.datetime) -> float:
        return PAD_LEFT + (inner_w * (when - start).total_seconds() / span if span > 0 else inner_w / 2)

    def y_of(value: float) -> float:
        return base - value / ceiling * inner_h

    lines = []
    for segment in _segments(points):
        coords = [(x_of(when), y_of(value)) for when, value in segment]
        if len(coords) > 1:
            lines.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}" class="chart-line"/>')
        else:
            lines.append(f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="2" class="chart-dot"/>')
    ticks = []
    tick_times = [start] if span <= 0 else [start + (end - start) * i / (TICKS - 1) for i in range(TICKS)]
    for i, when in enumerate(tick_times):
        x = x_of(when)
        anchor = "start" if i == 0 and span > 0 else "end" if i == TICKS - 1 else "middle"
        ticks.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 3}" class="chart-axis"/>'
                     f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" class="chart-label">'
                     f'{escape(tick_text(when))}</text>')
    label = (f"{title}: latest {format_value(last)}, lowest {format_value(low)}, "
             f"highest {format_value(high)} over {len(known)} snapshots, "
             f"from {tick_text(start)} to {tick_text(end)}")
    top_label = f"{format_value(ceiling)}{' total' if top else ''}"
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<title>{escape(label)}</title>'
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{WIDTH - PAD_RIGHT}" y2="{PAD_TOP}" class="chart-grid"/>'
        f'<line x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - PAD_RIGHT}" y2="{base}" class="chart-axis"/>'
        f'{"".join(lines)}{"".join(ticks)}'
        f'<text x="{PAD_LEFT}" y="11" class="chart-label">{escape(top_label)}</text>'
        f'<text x="{WIDTH - PAD_RIGHT}" y="11" text-anchor="end" class="chart-label">now {escape(format_value(last))}</text>'
        f'<text x="{PAD_LEFT}" y="{base - 2}" class="chart-label">0</text>'
        f'</svg>'
    )
