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


# ---------------------------------------------------------------- impact report (issue 18)

PALETTE = ("#4a7fb5", "#d9822b", "#5a9e6f", "#b5485d", "#7b68a6", "#8c7b4f", "#3f8f9e",
           "#999999")
HIDDEN_FILL = "#d8dde3"  # a suppressed part of a bar


def _legend(names: Sequence[str], x0: float, y: float, last: str | None = None
            ) -> tuple[list[str], int]:
    """Colour keys in the palette's order (``last``: the colour of the last name), wrapped
    to the chart's width; also how many lines they took (12 px each, from ``y`` down)."""
    parts, x, lines = [], x0, 1
    for i, name in enumerate(names):
        colour = last if last is not None and i == len(names) - 1 else PALETTE[i % len(PALETTE)]
        width = 22 + 6.5 * len(name)
        if x + width > WIDTH and x > x0:
            x, lines = x0, lines + 1
        yy = y + (lines - 1) * 12
        parts.append(f'<rect x="{x:.0f}" y="{yy - 8:.0f}" width="9" height="9" '
                     f'fill="{colour}"/>'
                     f'<text x="{x + 12:.0f}" y="{yy:.0f}" class="cl">{html.escape(name)}</text>')
        x += width
    return parts, lines


def share_by_month(series: Sequence[tuple[str, Sequence[float | None]]],
                   months: Sequence[str], title: str, empty: str = "no data") -> str:
    """Shares (0..1) per month, one line with dots per group (``series``: name, one value
    or None per month); a None (too few visits to say) breaks the line."""
    w, h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B - 12
    n = max(1, len(months))

    def x(i: int) -> float:
        return PAD_L + (i + 0.5) / n * w

    def y(v: float) -> float:
        return PAD_T + h - min(max(v, 0.0), 1.0) * h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" direction="ltr" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{PAD_L}" y="12" class="ct">{html.escape(title)} (%)</text>',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{w}" height="{h}" class="cbg"/>']
    for frac in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{PAD_L - 4}" y="{PAD_T + h - frac * h + 4:.0f}" '
                     f'class="cy">{frac * 100:.0f}</text>')
    step = max(1, n // 12)
    for i, m in enumerate(months):
        if i % step == 0:
            parts.append(f'<text x="{x(i):.0f}" y="{PAD_T + h + 12:.0f}" class="cx">'
                         f"{html.escape(m)}</text>")
    drawn = False
    for s, (_name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        run: list[str] = []
        for i, v in enumerate([*values, None]):
            if v is None:
                if len(run) > 1:
                    parts.append(f'<polyline points="{" ".join(run)}" fill="none" '
                                 f'stroke="{colour}" stroke-width="1.5"/>')
                run = []
                continue
            drawn = True
            run.append(f"{x(i):.1f},{y(v):.1f}")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                         f"<title>{html.escape(months[i])}: {v * 100:.0f}%</title></circle>")
    if not drawn:
        parts.append(f'<text x="{PAD_L + w / 2:.0f}" y="{PAD_T + h / 2:.0f}" class="none">'
                     f"{html.escape(empty)}</text>")
    parts += _legend([name for name, _ in series], PAD_L, HEIGHT - 3)[0]
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(rows: Sequence[tuple[str, Sequence[int], int]], keys: Sequence[str],
                 title: str, hidden_label: str, empty: str = "no data") -> str:
    """One horizontal bar per row (label, a count per key, the hidden rest): segments in
    the palette's colours, the part hidden by suppression in grey, the total at the end."""
    bar, gap, label_w = 14, 6, 150
    legend, lines = _legend([*keys, hidden_label], 4, PAD_T + len(rows) * (bar + gap) + 18,
                            HIDDEN_FILL)
    height = PAD_T + len(rows) * (bar + gap) + 18 + 12 * lines
    w = WIDTH - label_w - PAD_R - 40
    top = max([sum(c) + hid for _, c, hid in rows] + [1])
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
             f'height="{height}" direction="ltr" role="img" aria-label="{html.escape(title)}">',
             f'<text x="4" y="12" class="ct">{html.escape(title)}</text>']
    for r, (label, counts, hid) in enumerate(rows):
        yy = PAD_T + r * (bar + gap)
        parts.append(f'<text x="{label_w - 6}" y="{yy + bar - 3}" class="cy">'
                     f"{html.escape(label)}</text>")
        xx = float(label_w)
        for i, (key, n) in enumerate(zip(keys, counts, strict=True)):
            if n <= 0:
                continue
            ww = n / top * w
            parts.append(f'<rect x="{xx:.1f}" y="{yy}" width="{ww:.1f}" height="{bar}" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"><title>{html.escape(key)}: {n}'
                         "</title></rect>")
            xx += ww
        if hid > 0:
            ww = hid / top * w
            parts.append(f'<rect x="{xx:.1f}" y="{yy}" width="{ww:.1f}" height="{bar}" '
                         f'fill="{HIDDEN_FILL}"><title>{html.escape(hidden_label)}: {hid}'
                         "</title></rect>")
            xx += ww
        parts.append(f'<text x="{xx + 4:.1f}" y="{yy + bar - 3}" class="cl">'
                     f"{sum(counts) + hid}</text>")
    if not rows:
        parts.append(f'<text x="{WIDTH / 2:.0f}" y="{PAD_T + 10}" class="none">'
                     f"{html.escape(empty)}</text>")
    parts += legend
    parts.append("</svg>")
    return "".join(parts)
