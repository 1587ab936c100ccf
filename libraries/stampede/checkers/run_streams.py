"""Run streams carry only their own run: every event on a run's SSE stream names that run.

An event names its run by the marker the run was started with and by the
run id the service gave it. The marker decides when the event carries one
(it is what the agent sent, so a stream that learned a wrong run id from a
stray first event is still judged right); otherwise the run id does. Another
run's event on a stream is a finding even when both runs are one user's, which
the contamination check cannot see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..records.threads import RunAttempt
from ..records.websocket import ReceivedMessage
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _foreign(event: ReceivedMessage, attempt: RunAttempt) -> bool:
    if event.marker is not None:
        return str(event.marker) != attempt.marker
    return event.run_id is not None and attempt.run_id is not None and str(event.run_id) != attempt.run_id


def _run_name(attempt: RunAttempt) -> str:
    return f"run {attempt.run_id}" if attempt.run_id else f"the run with marker {attempt.marker}"


def check_run_streams(
    attempts: Sequence[RunAttempt], messages: Iterable[ReceivedMessage], *, left_out: int = 0
) -> Verdict:
    """Fail when an event on a run's stream carries another run's marker or run id.

    A stream is an agent's ``connection`` (``RunAttempt.stream``), across the
    legs of a resume. Events that carry neither a marker nor a run id are
    not judged.
    """
    name = "run streams carry only their own run"
    expected = "every event on a run's stream names that run"
    streams = {(attempt.agent, attempt.stream): attempt for attempt in attempts}
    by_marker = {attempt.marker: attempt for attempt in attempts}
    judged, judged_streams = 0, set()
    crossed: dict[tuple[int, int], list[ReceivedMessage]] = defaultdict(list)
    for event in messages:
        attempt = streams.get(event.stream)
        if attempt is None or (event.marker is None and event.run_id is None):
            continue
        judged += 1
        judged_streams.add(event.stream)
        if _foreign(event, attempt):
            crossed[event.stream].append(event)
    unlogged = f"; {plural(left_out, 'event')} over the log's limit were not kept" if left_out else ""
    if not judged:
        return Verdict(
            name,
            True,
            expected,
            "no event naming a run",
            message=f"Run streams not judged: no event on the streams of {plural(len(attempts), 'run request')} "
            f"carried a marker or a run id{unlogged}.",
            inconclusive=True,
        )
    count = sum(len(events) for events in crossed.values())
    measured = f"{count} of {judged} events of another run"
    if not crossed:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Run streams carried only their own run: {plural(judged, 'event')} on "
            f"{plural(len(judged_streams), 'stream')} named the run they were streamed for{unlogged}.",
            value=0.0,
        )
    rows, findings = [], []
    for stream, events in crossed.items():
        attempt = streams[stream]
        owners = sorted({str(e.marker) if e.marker is not None else f"run id {e.run_id}" for e in events})
        named = [_run_name(by_marker[o]) if o in by_marker else o for o in owners]
        findings.append(
            f"{_run_name(attempt)}'s stream (agent {attempt.agent}, thread {attempt.thread}) carried "
            f"{plural(len(events), 'event')} of {', '.join(named)}"
        )
        rows += [{**event.describe(), "stream of": _run_name(attempt), "thread": attempt.thread} for event in events]
    shown = "; ".join(findings[:3]) + (f"; and {len(findings) - 3} more streams" if len(findings) > 3 else "")
    return Verdict(
        name,
        False,
        expected,
        measured,
        plural(count, "event"),
        f"Run streams carried other runs' events: {count} of {plural(judged, 'event')} on {len(crossed)} of "
        f"{plural(len(judged_streams), 'stream')}; {shown}{rows_note(len(rows))}{unlogged}.",
        capped(rows),
        value=float(count),
    )
