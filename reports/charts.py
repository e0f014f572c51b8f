"""Small line charts drawn on the server as inline SVG.

The dashboard must work offline and without JavaScript, so charts are plain
SVG markup: no CDN, no chart library, and screen readers get a text summary
(``role="img"`` with an ``aria-label``; the numbers are also in the history
table below the charts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 320, 90
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 4, 4, 16, 14


def line_chart(values: Sequence[float | None], *, title: str,
               format_value: Callable[[float], str] = lambda v: f"{v:g}") -> SafeString:
    """An SVG sparkline of *values* (oldest first); gaps (None) break the line."""
    known = [v for v in values if v is not None]
    if not known:
        return mark_safe(
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(title)}: no data"><text x="{WIDTH // 2}" y="{HEIGHT // 2}" '
            f'text-anchor="middle" class="chart-empty">no data yet</text></svg>'
        )
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    count = len(values)
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def point(index: int, value: float) -> str:
        x = PAD_LEFT + (inner_w * index / (count - 1) if count > 1 else inner_w / 2)
        y = PAD_TOP + inner_h - (value - low) / span * inner_h
        return f"{x:.1f},{y:.1f}"

    segments: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(point(index, value))
    lines = "".join(
        f'<polyline points="{" ".join(segment)}" class="chart-line"/>' if len(segment) > 1
        else f'<circle cx="{segment[0].split(",")[0]}" cy="{segment[0].split(",")[1]}" r="2" class="chart-dot"/>'
        for segment in segments if segment
    )
    last = known[-1]
    label = (f"{title}: latest {format_value(last)}, lowest {format_value(low)}, "
             f"highest {format_value(high)} over {len(known)} snapshots")
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<title>{escape(label)}</title>'
        f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_RIGHT}" y2="{HEIGHT - PAD_BOTTOM}" class="chart-axis"/>'
        f'{lines}'
        f'<text x="{PAD_LEFT}" y="11" class="chart-label">max {escape(format_value(high))}</text>'
        f'<text x="{WIDTH - PAD_RIGHT}" y="11" text-anchor="end" class="chart-label">now {escape(format_value(last))}</text>'
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 2}" class="chart-label">min {escape(format_value(low))}</text>'
        f'</svg>'
    )
