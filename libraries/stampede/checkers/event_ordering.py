"""Per-connection event ordering: sequence numbers without gaps or late arrivals, and each run's lifecycle in order.

A session's frames are one stream even when the connection was dropped and
resumed on another (the stream is the agent's session, its legs the
connections), so a resume that loses, repeats or reorders frames shows here.

Only each user's own events are judged. A message carrying another user's id
or marker is the contamination check's finding: it is left out (and counted),
and so are the marks it leaves on its owner's connection (the seqs it took
away, the run it took events from), so one leak reads as one leak.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ..records.websocket import ReceivedMessage
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Leaks:
    """Messages that reached another user's connection, by whom they belong to (marker and user id)."""

    count: int = 0
    seqs: dict[str, set[Any]] = field(default_factory=lambda: defaultdict(set))
    runs: dict[str, set[Any]] = field(default_factory=lambda: defaultdict(set))
    explained: int = 0
    """Gaps and runs on the owners' connections that the leaked messages account for."""

    @classmethod
    def of(cls, messages: Iterable[ReceivedMessage]) -> Leaks:
        leaks = cls()
        for message in messages:
            if message.mine:
                continue
            leaks.count += 1
            for owner in _owners_of(message):
                leaks.seqs[owner].add(message.seq)
                if message.run_id is not None:
                    leaks.runs[owner].add(message.run_id)
        return leaks

    def took_seqs(self, message: ReceivedMessage, missing: range) -> bool:
        """Whether every seq in ``missing`` on ``message``'s connection went to another user's connection."""
        went = self.seqs.get(f"marker {message.own_marker}", set()) | self.seqs.get(f"user {message.user}", set())
        return all(seq in went for seq in missing)

    def took_from_run(self, message: ReceivedMessage) -> bool:
        """Whether an event of ``message``'s run went to another user's connection."""
        return any(
            message.run_id in self.runs.get(owner, ())
            for owner in (f"marker {message.own_marker}", f"user {message.user}")
        )


def _owners_of(message: ReceivedMessage) -> list[str]:
    owners = [f"marker {message.marker}"] if message.marker is not None else []
    return owners + ([f"user {message.user_id}"] if message.user_id is not None else [])


def sequence_breaks(
    messages: Iterable[ReceivedMessage], leaks: Leaks | None = None
) -> tuple[int, int, list[dict[str, Any]]]:
    """(own sequence numbers seen, streams, one row per own message whose seq is not the previous one plus 1).

    A leaked message is never a break, nor does it move its stream's count
    on: it may carry its own run's numbers (an SSE event of another run
    does). When the service numbered it as the receiving connection's frame,
    the gap it leaves in the stream's own numbers is no gap.
    """
    leaks = leaks or Leaks()
    last: dict[tuple[int, int], int] = {}
    taken: dict[tuple[int, int], set[int]] = defaultdict(set)
    seen, rows = 0, []
    for message in messages:
        if message.seq is None:
            continue
        stream, seq = message.stream, message.seq
        if not message.mine:
            if _whole_number(seq):
                taken[stream].add(seq)
            continue
        seen += 1
        if not _whole_number(seq):
            rows.append({**message.describe(), "problem": f"seq {seq!r} is not a whole number"})
            continue
        previous = last.get(stream)
        last[stream] = seq if previous is None else max(previous, seq)
        if previous is None or seq == previous + 1:
            continue
        if seq > previous + 1:
            if all(number in taken[stream] for number in range(previous + 1, seq)):
                continue  # leaked messages on this stream were numbered as its own frames
            if leaks.took_seqs(message, range(previous + 1, seq)):
                leaks.explained += 1
                continue
            missing = f"{previous + 1}" if seq == previous + 2 else f"{previous + 1} to {seq - 1}"
            problem = f"gap: seq {missing} missing before {seq}"
        elif seq == previous:
            problem = f"seq {seq} repeated"
        else:
            problem = f"seq {seq} arrived after {previous}"
        rows.append({**message.describe(), "problem": problem})
    return seen, len(last), rows


def lifecycle_breaks(
    messages: Iterable[ReceivedMessage],
    lifecycle: Sequence[str],
    failures: Collection[str],
    leaks: Leaks | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(runs seen, one row per run whose events broke ``lifecycle``), over the receiving agent's own runs.

    ``lifecycle`` is an ordered pattern: a type listed twice must come twice, in
    its places. A run that lost events to another user's connection is not judged.
    """
    leaks = leaks or Leaks()
    kinds = set(lifecycle)
    runs: dict[tuple[int, int, Any], list[ReceivedMessage]] = defaultdict(list)
    for message in messages:
        if message.run_id is not None and message.mine and (message.type in kinds or message.type in failures):
            runs[(*message.stream, message.run_id)].append(message)
    rows = []
    for events in runs.values():
        if leaks.took_from_run(events[0]):
            leaks.explained += 1
            continue
        problem = _lifecycle_problem([str(event.type) for event in events], lifecycle, failures)
        if problem:
            rows.append(
                {**events[-1].describe(), "events": " → ".join(str(e.type) for e in events), "problem": problem}
            )
    return len(runs), rows


def _lifecycle_problem(types: list[str], lifecycle: Sequence[str], failures: Collection[str]) -> str | None:
    """What breaks the pattern: each event must fill the next place of its type after the previous event's."""
    if types[0] != lifecycle[0]:
        return f"began with {types[0]}, not {lifecycle[0]}"
    filled, seen = [0], Counter(types[:1])
    for before, after in pairwise(types):
        seen[after] += 1
        if before in failures:
            return f"{after} after {before}"
        if after in failures:
            continue
        place = next((i for i in range(filled[-1] + 1, len(lifecycle)) if lifecycle[i] == after), None)
        if place is None:
            listed = lifecycle.count(after)
            if seen[after] > listed:
                return f"a {_ordinal(seen[after])} {after}, but the lifecycle has {listed}"
            return f"{after} after {before}"
        filled.append(place)
    if filled[-1] == len(lifecycle) - 1 and len(filled) < len(lifecycle):
        missing = [_place_name(lifecycle, i) for i in range(len(lifecycle)) if i not in filled]
        return f"ended without {', '.join(missing)}"
    return None


def _place_name(lifecycle: Sequence[str], index: int) -> str:
    kind = lifecycle[index]
    if lifecycle.count(kind) == 1:
        return kind
    return f"the {_ordinal(lifecycle[: index + 1].count(kind))} {kind}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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
    Only the receiving user's own messages are judged: one that carries
    another user's id or marker is contamination, left out and counted.
    """
    messages = list(messages)
    leaks = Leaks.of(messages)
    seqs, streams, seq_rows = sequence_breaks(messages, leaks)
    runs, run_rows = lifecycle_breaks(messages, lifecycle, failures, leaks) if lifecycle else (0, [])
    resumed = len({m.stream for m in messages if m.leg > 1})
    name = "events in order"
    chain = " → ".join(lifecycle) if len(lifecycle) <= 3 else f"{lifecycle[0]} → … → {lifecycle[-1]}"
    expected = "seqs +1 at a time per connection" + (f"; runs {chain}" if lifecycle else "")
    unlogged = f"; {plural(left_out, 'message')} over the log's limit were not kept" if left_out else ""
    unlogged = _leaks_note(leaks) + unlogged
    if not seqs and not runs:
        return Verdict(
            name,
            True,
            expected,
            "no sequence number or run event",
            message=f"Event order not judged: no message of the receiving user carried a sequence number or a run "
            f"event{unlogged}.",
            inconclusive=True,
        )
    across = f" ({plural(resumed, 'session')} resumed on a new connection)" if resumed else ""
    seq_part = (
        f"{plural(seqs, 'sequence number')} on {plural(streams, 'connection')}{across}"
        if seqs
        else "no sequence numbers"
    )
    run_part = f"{plural(runs, 'run')} followed {chain}" if lifecycle else "runs' lifecycles not checked"
    measured = f"{len(seq_rows)} seq breaks, {len(run_rows)} lifecycle breaks"
    if not seq_rows and not run_rows:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Events arrived in order: {seq_part} rose by 1 each without gaps; {run_part}{unlogged}.",
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


def _leaks_note(leaks: Leaks) -> str:
    if not leaks.count:
        return ""
    marks = f", with {plural(leaks.explained, 'gap or run', 'gaps or runs')} they cut short" if leaks.explained else ""
    return (
        f"; left out {plural(leaks.count, 'message')} carrying another user's id or marker{marks} "
        "(the contamination check's finding)"
    )
