"""The shim-memory chart, written as SVG by hand: total PSS of all shim
processes against the number of idle containers, one line per runtime,
each point labelled with its per-container average, and the target line
(1/8 of the reference) dashed."""

import math
from xml.sax.saxutils import escape

W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 30, 50, 60
COLORS = {"reference": "#d62728", "wren": "#1f77b4", "target": "#7f7f7f"}


def _nice_max(v):
    """(axis maximum, tick step) with at most 7 ticks above 0."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if v <= step * 7:
            return math.ceil(v / step) * step, step
    return v, v / 5


def memory_svg(series, title, target_fraction=None):
    """`series`: {name: [(containers, total PSS MiB, per-container MiB)]}
    with names "reference" and "wren" (others drawn in grey)."""
    xs = [p[0] for pts in series.values() for p in pts]
    ys = [p[1] for pts in series.values() for p in pts]
    if not xs:
        return None
    xmax = max(xs)
    ymax, ystep = _nice_max(max(ys) * 1.05)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x):
        return LEFT + pw * x / xmax

    def sy(y):
        return TOP + ph * (1 - y / ymax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" '
           f'font-weight="bold">{escape(title)}</text>']
    # Grid and y axis.
    y = 0.0
    while y <= ymax + 1e-9:
        out.append(f'<line x1="{LEFT}" y1="{sy(y):.1f}" x2="{LEFT + pw}" y2="{sy(y):.1f}" '
                   f'stroke="#e0e0e0"/>')
        out.append(f'<text x="{LEFT - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += ystep
    out.append(f'<text x="18" y="{TOP + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {TOP + ph / 2})">total shim PSS (MiB)</text>')
    # X axis with a tick at each measured level.
    out.append(f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="black"/>')
    for x in sorted(set(xs)):
        out.append(f'<line x1="{sx(x):.1f}" y1="{TOP + ph}" x2="{sx(x):.1f}" y2="{TOP + ph + 5}" stroke="black"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{TOP + ph + 20}" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 15}" text-anchor="middle">idle containers</text>')
    # Target: 1/8 of the reference, as a dashed line through its points.
    lines = dict(series)
    if target_fraction and "reference" in series:
        lines["target"] = [(x, t * target_fraction, None) for x, t, _ in series["reference"]]
    legend_x, legend_y = LEFT + 15, TOP + 15
    out.append(f'<rect x="{legend_x - 8}" y="{legend_y - 12}" width="290" height="{20 * len(lines) + 26}" '
               f'fill="white" stroke="#cccccc"/>')
    for name, pts in lines.items():
        color = COLORS.get(name, "#2ca02c")
        pts = sorted(pts)
        path = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for x, v, _ in pts)
        dash = ' stroke-dasharray="6,4"' if name == "target" else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, v, per in pts:
            if per is None:
                continue
            last = x == xmax
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(v):.1f}" r="4" fill="{color}"/>')
            anchor = ' text-anchor="end"' if last else ""
            dy = 18 if name == "wren" else -8
            out.append(f'<text x="{sx(x) + (-6 if last else 6):.1f}" y="{sy(v) + dy:.1f}" fill="{color}"'
                       f'{anchor}>{per:.2f} MiB/ctr</text>')
        label = {"reference": "runc-v2 shim (reference)", "wren": "wren shim",
                 "target": f"target: {target_fraction:g} × reference" if target_fraction else ""}.get(name, name)
        out.append(f'<line x1="{legend_x}" y1="{legend_y}" x2="{legend_x + 25}" y2="{legend_y}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{legend_x + 32}" y="{legend_y + 4}">{escape(label)}</text>')
        legend_y += 20
    out.append(f'<text x="{legend_x}" y="{legend_y + 4}" fill="#555">point labels: PSS per container</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
