"""The one place Stampede builds HTML for log.html: escaped, capped, themed by Robot's own CSS."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from stampede.verdicts import Verdict

MAX_ROWS = 50
_STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "INCONCLUSIVE": "warn"}


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """An HTML table of at most ``MAX_ROWS`` rows; every cell is escaped."""
    rows = list(rows)
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(value))}</td>" for value in row) + "</tr>" for row in rows[:MAX_ROWS]
    )
    more = ""
    if len(rows) > MAX_ROWS:
        more = f"<tr><td colspan='{len(headers)}'>… {len(rows) - MAX_ROWS} more rows</td></tr>"
    title = f"<caption style='text-align:left;font-weight:bold'>{escape(caption)}</caption>" if caption else ""
    return f"<table class='statistics' style='width:auto'>{title}<tr>{head}</tr>{body}{more}</table>"


def verdict_table(verdicts: Sequence[Verdict], caption: str = "Verdicts") -> str:
    """Check, status, expected, measured, miss: why a test passed or failed, at a glance."""
    rows = []
    for verdict in verdicts:
        status = verdict.status
        css = _STATUS_CLASS[status]
        rows.append(
            "<tr>"
            f"<td>{escape(verdict.name)}</td><td class='{css}'><b>{status}</b></td>"
            f"<td>{escape(verdict.expected)}</td><td>{escape(verdict.measured)}</td><td>{escape(verdict.miss)}</td>"
            "</tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("check", "verdict", "expected", "measured", "miss"))
    title = f"<caption style='text-align:left;font-weight:bold'>{escape(caption)}</caption>"
    html = f"<table class='statistics' style='width:auto'>{title}<tr>{head}</tr>{''.join(rows)}</table>"
    for verdict in verdicts:
        if verdict.details:
            headers = list(verdict.details[0])
            html += table(headers, ([d.get(h) for h in headers] for d in verdict.details), f"{verdict.name}: details")
    return html


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
