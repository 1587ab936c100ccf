"""Per-connection event ordering: sequence numbers without gaps or late arrivals, and each run's lifecycle in order.

A session's frames are one stream even when the connection was dropped and
resumed on another (the stream is the agent's session, its legs the
connections), so a resume that loses, repeats or reorders frames shows here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from itertools import pairwise
from typing import Any

from ..records.websocket import ReceivedMessage
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sequence_breaks(messages: Iterable[ReceivedMessage]) -> tuple[int, int, list[dict[str, Any]]]:
    """(sequence numbers seen, streams, one row per message whose seq is not the previous one plus 1)."""
    last: dict[tuple[int, int], int] = {}
    seen, rows = 0, []
    for message in messages:
        if message.seq is None:
            continue
        seen += 1
        stream, seq = message.stream, message.seq
        if not _whole_number(seq):
            rows.append({**message.describe(), "problem": f"seq {seq!r} is not a whole number"})
            continue
        previous = last.get(stream)
        last[stream] = seq if previous is None else max(previous, seq)
        if previous is None or seq == previous + 1:
            continue
        if seq > previous + 1:
            missing = f"{previous + 1}" if seq == previous + 2 else f"{previous + 1} to {seq - 1}"
            problem = f"gap: seq {missing} missing before {seq}"
        elif seq == previous:
            problem = f"seq {seq} repeated"
        else:
            problem = f"seq {seq} arrived after {previous}"
        rows.append({**message.describe(), "problem": problem})
    return seen, len(last), rows


def lifecycle_breaks(
    messages: Iterable[ReceivedMessage], lifecycle: Sequence[str], failures: Collection[str]
) -> tuple[int, list[dict[str, Any]]]:
    """(runs seen, one row per run whose events broke ``lifecycle``), over the receiving agent's own runs."""
    position = {kind: index for index, kind in enumerate(lifecycle)}
    runs: dict[tuple[int, int, Any], list[ReceivedMessage]] = defaultdict(list)
    for message in messages:
        if message.run_id is not None and message.mine and (message.type in position or message.type in failures):
            runs[(*message.stream, message.run_id)].append(message)
    rows = []
    for events in runs.values():
        problem = _lifecycle_problem([str(event.type) for event in events], lifecycle, position, failures)
        if problem:
            rows.append(
                {**events[-1].describe(), "events": " → ".join(str(e.type) for e in events), "problem": problem}
            )
    return len(runs), rows


def _lifecycle_problem(
    types: list[str], lifecycle: Sequence[str], position: dict[str, int], failures: Collection[str]
) -> str | None:
    if types[0] != lifecycle[0]:
        return f"began with {types[0]}, not {lifecycle[0]}"
    for before, after in pairwise(types):
        if before in failures:
            return f"{after} after {before}"
        if after not in failures and position[after] <= position[before]:
            return f"{after} after {before}"
    if types[-1] == lifecycle[-1]:
        missing = [kind for kind in lifecycle if kind not in types]
        if missing:
            return f"ended without {', '.join(missing)}"
    return None


def check_event_ordering(
    messages: Iterable[ReceivedMessage],
    *,
    lifecycle: Sequence[str],
    failures: Collection[str],
    left_out: int = 0,
) -> Verdict:
    """Fail when a stream's seqs are not each the previous plus 1, or a run's events break ``lifecycle``.

    ``lifecycle`` is the event types of a run that succeeds, in order (empty:
    check sequence numbers only); a ``failures`` event may end a run early.
    Only runs the receiving agent owns are judged (a leaked run is contamination).
    """
    messages = list(messages)
    seqs, streams, seq_rows = sequence_breaks(messages)
    runs, run_rows = lifecycle_breaks(messages, lifecycle, failures) if lifecycle else (0, [])
    resumed = len({m.stream for m in messages if m.leg > 1})
    name = "events in order"
    chain = " → ".join(lifecycle) if len(lifecycle) <= 3 else f"{lifecycle[0]} → … → {lifecycle[-1]}"
    expected = "seqs +1 at a time per connection" + (f"; runs {chain}" if lifecycle else "")
    unlogged = f"; {plural(left_out, 'message')} over the log's limit were not kept" if left_out else ""
    if not seqs and not runs:
        return Verdict(
            name,
            True,
            expected,
            "no sequence number or run event",
            message=f"Event order not judged: no message carried a sequence number or a run event{unlogged}.",
            inconclusive=True,
        )
    across = f" ({plural(resumed, 'session')} resumed on a new connection)" if resumed else ""
    seq_part = (
        f"{plural(seqs, 'sequence number')} on {plural(streams, 'connection')}{across}"
        if seqs
        else "no sequence numbers"
    )
    run_part = f"{plural(runs, 'run')}" if lifecycle else "runs not checked"
    measured = f"{len(seq_rows)} seq breaks, {len(run_rows)} lifecycle breaks"
    if not seq_rows and not run_rows:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Events arrived in order: {seq_part} rose by 1 each without gaps; {run_part} "
            f"followed {chain}{unlogged}.",
            value=0.0,
        )
    broken_streams = len({(row["agent"], row["connection"]) for row in seq_rows})
    problems = []
    if seq_rows:
        problems.append(
            f"{len(seq_rows)} of {plural(seqs, 'sequence number')} broke the order (gaps, repeats or "
            f"late arrivals) on {broken_streams} of {plural(streams, 'connection')}{across}; "
            f"first: agent {seq_rows[0]['agent']}, {seq_rows[0]['problem']}"
        )
    if run_rows:
        problems.append(
            f"{len(run_rows)} of {plural(runs, 'run')} broke the lifecycle {chain}; "
            f"first: run {run_rows[0]['run id']}, {run_rows[0]['problem']}"
        )
    rows = seq_rows + run_rows
    return Verdict(
        name,
        False,
        expected,
        measured,
        plural(len(rows), "break"),
        f"Events arrived out of order: {'; '.join(problems)}{rows_note(len(rows))}{unlogged}.",
        capped(rows),
        value=float(len(rows)),
    )
