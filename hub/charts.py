"""Health history charts drawn on the server as inline SVG (no script, no CDN).

One chart per series: the min..max band of each bucket as a shaded area, the average as a
line, a time axis from ``t0`` to ``t1`` and a value axis from 0 to the series' top. A gap of
more than two buckets (the CAC was silent) breaks the line.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

from hub.history import Point

WIDTH, HEIGHT = 560, 140
PAD_L, PAD_R, PAD_T, PAD_B = 44, 8, 18, 20


def _fmt_t(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%H:%M") if span <= 2 * 86400 else d.strftime("%m-%d")


def svg(points: Sequence[Point], metric: str, title: str, unit: str, t0: float, t1: float,
        step: int, top: float | None = None, *, empty_text: str = "no data") -> str:
    vals = [(p.t, *p.values[metric]) for p in points if p.values[metric][1] is not None]
    hi = top if top is not None else max([v[3] or 0.0 for v in vals] + [1.0]) * 1.1
    w, h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    span = max(1.0, t1 - t0)

    def x(t: float) -> float:
        return PAD_L + (t - t0) / span * w

    def y(v: float) -> float:
        return PAD_T + h - min(max(v, 0.0), hi) / hi * h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{PAD_L}" y="12" class="ct">{html.escape(title)} ({html.escape(unit)})'
             "</text>",
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{w}" height="{h}" class="cbg"/>']
    for frac in (0.0, 0.5, 1.0):
        yy = PAD_T + h - frac * h
        parts.append(f'<text x="{PAD_L - 4}" y="{yy + 4:.0f}" class="cy">{hi * frac:.3g}</text>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        t = t0 + frac * span
        cls = "cx ce" if frac == 1.0 else "cx"  # the last one ends at the edge, not cut
        parts.append(f'<text x="{x(t):.0f}" y="{HEIGHT - 4}" class="{cls}">'
                     f"{_fmt_t(t, span)}</text>")
    runs: list[list[tuple[int, float | None, float, float | None]]] = []
    for t, lo, avg, mx in vals:
        if not runs or t - runs[-1][-1][0] > 2 * step:
            runs.append([])
        runs[-1].append((t, lo, avg, mx))  # type: ignore[arg-type]
    for run in runs:
        mid = step / 2
        top_edge = " ".join(f"{x(t + mid):.1f},{y(mx if mx is not None else a):.1f}"
                            for t, _, a, mx in run)
        bottom = " ".join(f"{x(t + mid):.1f},{y(lo if lo is not None else a):.1f}"
                          for t, lo, a, _ in reversed(run))
        parts.append(f'<polygon class="band" points="{top_edge} {bottom}"/>')
        line = " ".join(f"{x(t + mid):.1f},{y(a):.1f}" for t, _, a, _ in run)
        parts.append(f'<polyline class="avg" points="{line}"/>')
    if not vals:
        parts.append(f'<text x="{PAD_L + w / 2:.0f}" y="{PAD_T + h / 2:.0f}" class="none">'
                     f"{html.escape(empty_text)}</text>")
    parts.append("</svg>")
    return "".join(parts)
