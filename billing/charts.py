"""Charts as inline SVG drawn on the server: they render offline, print, and need no JS."""

from __future__ import annotations

from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 240
LEFT, BOTTOM, TOP = 64, 28, 12
COLORS = ["#1f6feb", "#1a7f37", "#9a6700", "#cf222e", "#8250df"]


def _nice_max(value: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_bars(
    rows: list[dict], series: list[tuple[str, str]], *, label_key: str = "label", title: str = ""
) -> SafeString:
    """A stacked bar per row; ``series`` is (key in the row, legend label), bottom to top.

    Numbers are formatted here; every text from the data goes through ``escape``.
    """
    top = _nice_max(max((sum(r[k] for k, _ in series) for r in rows), default=Decimal(0)))
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(rows), 1)
    bar = max(slot * 0.6, 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 22}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" font-size="11" '
        'font-family="sans-serif">'
    ]
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6475">'
            f"${value:,.0f}</text>"
        )
    for n, row in enumerate(rows):
        x = LEFT + slot * n + (slot - bar) / 2
        base = TOP + plot_h
        for s, (key, label) in enumerate(series):
            h = float(row[key] / top) * plot_h
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(label)}: '
                f"${row[key]:,.2f}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
            f'fill="#5b6475">{escape(row[label_key])}</text>'
        )
    x = LEFT
    for s, (_, label) in enumerate(series):
        parts.append(
            f'<rect x="{x}" y="{HEIGHT + 8}" width="10" height="10" '
            f'fill="{COLORS[s % len(COLORS)]}"/>'
            f'<text x="{x + 14}" y="{HEIGHT + 17}">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers formatted here, text escaped
