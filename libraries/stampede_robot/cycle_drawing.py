"""A dependency cycle drawn as a small inline SVG: transactions on a circle, an arrow per edge named by its kind.

Our own SVG, as charts.py does for line charts: a cycle is a few circles and
arrows. Colours are the Okabe-Ito palette, one per kind of edge.
"""

from __future__ import annotations

import math
from html import escape

from stampede.checkers.list_append.anomaly import Anomaly

SIZE = 240
_RADIUS, _NODE = 80, 20
MAX_DRAWN = 10
"""A longer cycle is listed in its table but not drawn (its labels would overlap)."""
_COLOURS = {"ww": "#0072B2", "wr": "#009E73", "rw": "#D55E00", "process": "#CC79A7", "realtime": "#E69F00"}
_FONT = "font-family='sans-serif' font-size='11'"


def cycle_svg(anomaly: Anomaly) -> str:
    """The anomaly's cycle, or an empty text for one that is not a cycle or too long to draw."""
    steps = anomaly.steps
    if not steps or len(steps) > MAX_DRAWN:
        return ""
    centre = SIZE / 2
    names = [step.source for step in steps]
    places = {
        name: (
            centre + _RADIUS * math.sin(2 * math.pi * i / len(names)),
            centre + 10 - _RADIUS * math.cos(2 * math.pi * i / len(names)),
        )
        for i, name in enumerate(names)
    }
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{SIZE}' height='{SIZE + 10}' "
        f"viewBox='0 0 {SIZE} {SIZE + 10}'>",
        "<defs>"
        + "".join(
            f"<marker id='arrow-{kind}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='6' markerHeight='6' "
            f"orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='{colour}'/></marker>"
            for kind, colour in _COLOURS.items()
        )
        + "</defs>",
        f"<text x='4' y='14' {_FONT} font-weight='bold'>{escape(anomaly.name)}</text>",
    ]
    for step in steps:
        parts.append(_arrow(places[step.source], places[step.target], step.relation, len(steps) == 2))
    for name, (x, y) in places.items():
        parts.append(
            f"<circle cx='{x:.0f}' cy='{y:.0f}' r='{_NODE}' fill='white' stroke='#333'/>"
            f"<text x='{x:.0f}' y='{y + 4:.0f}' text-anchor='middle' {_FONT}>{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _arrow(start: tuple[float, float], end: tuple[float, float], kind: str, bend: bool) -> str:
    """A curved arrow from circle edge to circle edge (bent to one side, so a 2-cycle shows two arrows)."""
    (x1, y1), (x2, y2) = start, end
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    sx, sy = x1 + ux * _NODE, y1 + uy * _NODE
    ex, ey = x2 - ux * (_NODE + 2), y2 - uy * (_NODE + 2)
    offset = 30 if bend else 12
    cx, cy = (sx + ex) / 2 - uy * offset, (sy + ey) / 2 + ux * offset
    colour = _COLOURS.get(kind, "#333")
    return (
        f"<path d='M{sx:.0f},{sy:.0f} Q{cx:.0f},{cy:.0f} {ex:.0f},{ey:.0f}' fill='none' stroke='{colour}' "
        f"stroke-width='1.5' marker-end='url(#arrow-{escape(kind)})'/>"
        f"<text x='{cx:.0f}' y='{cy:.0f}' text-anchor='middle' {_FONT} fill='{colour}'>{escape(kind)}</text>"
    )
