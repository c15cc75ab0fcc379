"""Small charts for the desk, drawn on the server as SVG (no script, no network): horizontal bars with labels."""

from __future__ import annotations

from html import escape

PALETTE = {"a": "#2f6db5", "b": "#e08a1e", "bad": "#c0392b", "ok": "#3c8d3c", "grey": "#8a8f98"}


def bars(title: str, rows: list[tuple[str, list[tuple[str, float, str]]]], unit: str = "", width: int = 640) -> str:
    """One row per label, one bar per (series name, value, colour key) — e.g. a type's rows before and after."""
    if not rows:
        return ""
    bar_h, gap, label_w = 14, 10, 190
    top = 28
    series = max(len(b) for _, b in rows)
    row_h = series * bar_h + gap
    height = top + len(rows) * row_h + 26
    peak = max((v for _, b in rows for _, v, _ in b), default=0) or 1
    scale = (width - label_w - 90) / peak
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" class="chart">',
           f'<text x="0" y="16" class="chart-title">{escape(title)}</text>']
    y = top
    for label, b in rows:
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h * len(b) / 2 + 4:.0f}" text-anchor="end">'
                   f'{escape(label)}</text>')
        for i, (name, v, colour) in enumerate(b):
            w = max(1.0, v * scale) if v else 0
            yy = y + i * bar_h
            out.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" '
                       f'fill="{PALETTE.get(colour, colour)}"><title>{escape(name)}: {_num(v)}{unit}</title></rect>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 4}" class="chart-value">{_num(v)}{unit}'
                       f'</text>')
        y += row_h
    names = []
    for _, b in rows:
        for name, _, colour in b:
            if (name, colour) not in names:
                names.append((name, colour))
    x = label_w
    for name, colour in names:
        out.append(f'<rect x="{x}" y="{height - 16}" width="10" height="10" fill="{PALETTE.get(colour, colour)}"/>'
                   f'<text x="{x + 14}" y="{height - 7}">{escape(name)}</text>')
        x += 14 + 8 * len(name) + 16
    out.append("</svg>")
    return "".join(out)


def _num(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v):,}".replace(",", ".")
    return f"{v:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")
