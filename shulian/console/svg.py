"""Plots as server-rendered SVG: no script, no style attribute (the console's CSP forbids
inline styles), only presentation attributes and classes from console.css. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars"]


def bars(series: Sequence[tuple[str, Sequence[int]]], *, title: str, width: int = 360,
         height: int = 90) -> str:
    """Grouped bars: one group per step, one bar per named series (classes s0, s1, ...)."""
    steps = max((len(v) for _, v in series), default=0)
    top = max((max(v, default=0) for _, v in series), default=0) or 1
    pad, legend = 4, 14
    plot_h = height - legend - pad
    group_w = (width - 2 * pad) / max(steps, 1)
    bar_w = max(group_w / max(len(series), 1) - 1, 1)
    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<line class="axis" x1="{pad}" y1="{plot_h}" x2="{width - pad}" y2="{plot_h}"/>']
    for si, (_, values) in enumerate(series):
        for i, v in enumerate(values):
            if v <= 0:
                continue
            h = max(v / top * (plot_h - pad), 1.0)
            x = pad + i * group_w + si * (bar_w + 1)
            parts.append(f'<rect class="s{si}" x="{x:.1f}" y="{plot_h - h:.1f}" '
                         f'width="{bar_w:.1f}" height="{h:.1f}"><title>{v}</title></rect>')
    x = pad
    for si, (name, values) in enumerate(series):
        label = f"{name} {sum(values)}"
        parts.append(f'<rect class="s{si}" x="{x}" y="{height - 10}" width="8" height="8"/>'
                     f'<text x="{x + 10}" y="{height - 2}">{escape(label)}</text>')
        x += 16 + 7 * len(label)
    parts.append(f'<text class="max" x="{width - pad}" y="10" text-anchor="end">max {top}'
                 f'</text></svg>')
    return "".join(parts)
