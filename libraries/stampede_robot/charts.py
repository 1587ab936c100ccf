"""Line charts as small, self-contained inline SVG: a title, axes with units, a legend.

Our own SVG rather than a plotting library: a chart is a few polylines, so
this module is ~150 lines with no dependency, a chart is a few KB of text
(a matplotlib SVG of the same chart is tens of KB, as it embeds glyph outlines)
and nothing heavy is imported into the Robot process that times the agents.
Colours are the Okabe-Ito palette, told apart by colour-blind readers too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

WIDTH, HEIGHT = 420, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 14, 30, 62
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
_FONT = "font-family='sans-serif' font-size='11'"
_URI_SAFE = "/='(),:;.-"


@dataclass(frozen=True)
class Series:
    """One line: its legend name and its (x, y) points; a y of None breaks the line (nothing measured there)."""

    name: str
    points: Sequence[tuple[float, float | None]]


@dataclass(frozen=True)
class Chart:
    """A rendered chart: its title and its SVG text."""

    title: str
    svg: str

    def data_uri(self) -> str:
        """The chart as an image address that needs no file and no network.

        Percent-encoded rather than base64: log.html compresses its texts, and
        percent-encoded SVG keeps the repetition zlib feeds on (half the size of
        base64 once compressed). Only characters that mean nothing to a data
        URI or to Robot's documentation formatting are left as they are
        (``_`` is encoded too: Robot would read ``_text_`` as italics).
        """
        return "data:image/svg+xml," + quote(self.svg, safe=_URI_SAFE).replace("_", "%5F")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) covering ``low``..``high``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"axis range must be finite, got {low}..{high}")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def format_tick(value: float) -> str:
    """3 significant digits, and large numbers in full with thousands separators (1,500 rather than 1.5e+03)."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def line_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> Chart:
    """A line chart of ``series`` sharing axes; ``x_ticks`` gives labelled x positions instead of round numbers.

    The y axis starts at 0 (these are latencies, rates and sizes: a chart that
    starts elsewhere exaggerates small changes).
    """
    if not series:
        raise ValueError(f"chart {title!r} needs at least one series")
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if y is not None]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_ticks:
        x_low, x_high = min(x_low, x_ticks[0][0]), max(x_high, x_ticks[-1][0])
    else:
        numbers = nice_ticks(x_low, x_high)
        x_low, x_high = numbers[0], numbers[-1]
        x_ticks = [(x, format_tick(x)) for x in numbers]
    y_numbers = nice_ticks(0.0, max(ys, default=0.0) or 1.0)
    y_high = y_numbers[-1]
    if x_high <= x_low:
        x_high = x_low + 1.0
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    # Whole pixels: finer coordinates would only make every chart in log.html bigger.
    def px(x: float) -> int:
        return round(_LEFT + (x - x_low) / (x_high - x_low) * plot_w)

    def py(y: float) -> int:
        return round(_TOP + plot_h - y / y_high * plot_h)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' "
        f"role='img' aria-label='{escape(title)}' {_FONT} style='background:#fff'>",
        f"<title>{escape(title)}</title>",
        f"<text x='{WIDTH / 2}' y='17' text-anchor='middle' font-size='13' font-weight='bold'>{escape(title)}</text>",
    ]
    for y in y_numbers:
        parts.append(f"<line x1='{_LEFT}' x2='{WIDTH - _RIGHT}' y1='{py(y)}' y2='{py(y)}' stroke='#ddd'/>")
        parts.append(f"<text x='{_LEFT - 4}' y='{py(y) + 4}' text-anchor='end'>{format_tick(y)}</text>")
    bottom = _TOP + plot_h
    for x, label in x_ticks:
        parts.append(f"<line x1='{px(x)}' x2='{px(x)}' y1='{bottom}' y2='{bottom + 4}' stroke='#333'/>")
        parts.append(f"<text x='{px(x)}' y='{bottom + 16}' text-anchor='middle'>{escape(label)}</text>")
    parts.append(f"<path d='M{_LEFT} {_TOP}V{bottom}H{WIDTH - _RIGHT}' fill='none' stroke='#333'/>")
    parts.append(f"<text x='{_LEFT + plot_w / 2}' y='{bottom + 31}' text-anchor='middle'>{escape(x_label)}</text>")
    parts.append(
        f"<text transform='translate(13 {_TOP + plot_h / 2}) rotate(-90)' text-anchor='middle'>{escape(y_label)}</text>"
    )
    legend_x = _LEFT
    for number, line in enumerate(series):
        colour = _COLOURS[number % len(_COLOURS)]
        parts.extend(_lines(line, colour, px, py))
        legend_y = HEIGHT - 12
        parts.append(f"<rect x='{legend_x}' y='{legend_y - 8}' width='14' height='4' fill='{colour}'/>")
        parts.append(f"<text x='{legend_x + 18}' y='{legend_y}'>{escape(line.name)}</text>")
        legend_x += 30 + 7 * len(line.name)
    parts.append("</svg>")
    return Chart(title, "".join(parts))


def _lines(series: Series, colour: str, px: Callable[[float], int], py: Callable[[float], int]) -> list[str]:
    """A polyline per unbroken run of points; a dot for a run of one point."""
    runs: list[list[str]] = [[]]
    for x, y in series.points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append(f"{px(x)},{py(y)}")
    drawn = []
    for run in runs:
        if len(run) == 1:
            cx, cy = run[0].split(",")
            drawn.append(f"<circle cx='{cx}' cy='{cy}' r='2.5' fill='{colour}'/>")
        elif run:
            drawn.append(f"<polyline points='{' '.join(run)}' fill='none' stroke='{colour}' stroke-width='1.8'/>")
    return drawn
