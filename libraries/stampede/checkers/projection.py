"""Event-sourced state: the projection converges to the fold of the events, and agents read their own writes.

The event store is the truth. A projection (the CQRS read side) is correct when,
per stream, its total equals the sum of the stream's events and every event was
applied exactly once. Two verdicts:

* convergence: after the last append, the projection became exactly the fold of
  the events, within a bound (missing, duplicated and stray applications are
  listed by sequence number, differing streams with both totals);
* read-your-writes lag: how long after its commit an agent's own append was
  reflected in the projection, as a percentile over every successful append,
  an append never reflected within the agent's wait counting as longer than any bound.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..history import History, Operation
from ..metrics import percentile
from ..records.fields import LAG_TIMING
from ..records.snapshots import ProjectionSnapshot, StoredEvent
from ..units import format_duration
from ..verdicts import Verdict
from ._report import agent_list, capped, percent, plural, rows_note


def appended_seq(op: Operation) -> int | None:
    """The sequence number a successful append recorded, if ``op`` is one."""
    written = op.written
    if op.ok and isinstance(written, Mapping) and isinstance(written.get("seq"), int):
        return int(written["seq"])
    return None


def check_projection_converged(history: History, snapshot: ProjectionSnapshot, *, within: float) -> Verdict:
    """Check the projection is the fold of the events, reached within ``within`` s of the last append's commit.

    Appends record ``written={"seq": …, "committed_ns": …}``; an append the history
    saw commit but the store lacks is a lost event and fails the check too.
    """
    appends = [op for op in history if appended_seq(op) is not None]
    events = {event.seq: event for event in snapshot.events}
    expected = f"every event applied exactly once within {format_duration(within)} of the last append"
    if not events or not appends:
        what = "the event store holds no event" if not events else "no append of this launch succeeded"
        return Verdict(
            "projection convergence",
            True,
            expected,
            f"{plural(len(events), 'event')}, {plural(len(appends), 'successful append')}",
            message=f"Nothing to check for convergence: {what}, so convergence can be neither confirmed nor ruled out.",
            inconclusive=True,
        )
    gaps = _Gaps.of(snapshot, events, appends)
    if not gaps.any:
        return _converged(snapshot, events, appends, within, expected)
    lead = (
        "Projection diverged"
        if snapshot.caught_up
        else f"Projection did not converge within {format_duration(within)} of the last append"
    )
    found = gaps.describe(len(events), len(snapshot.totals), snapshot.caught_up)
    message = f"{lead}: {found}; the projection worker {snapshot.worker}"
    rows = gaps.rows(events, snapshot.totals)
    return Verdict(
        "projection convergence",
        False,
        expected,
        gaps.measured(len(events)),
        gaps.measured(len(events)),
        message + rows_note(len(rows)) + ".",
        capped(rows),
        value=len(gaps.missing),
    )


@dataclass(frozen=True)
class _Gaps:
    """Every way the projection differs from the fold of the events."""

    missing: list[int]
    duplicated: list[int]
    strays: list[int]
    lost: list[int]
    differing: list[tuple[str, int, int]]  # stream, projected, events sum; the worst first

    @classmethod
    def of(cls, snapshot: ProjectionSnapshot, events: Mapping[int, StoredEvent], appends: list[Operation]) -> _Gaps:
        counts = Counter(snapshot.applied)
        folds: dict[str, int] = {}
        for event in events.values():
            folds[event.stream] = folds.get(event.stream, 0) + event.change
        return cls(
            missing=sorted(set(events) - set(counts)),
            duplicated=sorted(seq for seq, times in counts.items() if times > 1),
            strays=sorted(set(counts) - set(events)),
            lost=sorted({seq for op in appends if (seq := appended_seq(op)) is not None} - set(events)),
            differing=sorted(
                (
                    (stream, snapshot.totals.get(stream, 0), folds.get(stream, 0))
                    for stream in sorted(set(folds) | set(snapshot.totals), key=_natural)
                    if snapshot.totals.get(stream, 0) != folds.get(stream, 0)
                ),
                key=lambda row: -abs(row[1] - row[2]),  # the worst stream first
            ),
        )

    @property
    def any(self) -> bool:
        return bool(self.missing or self.duplicated or self.strays or self.lost or self.differing)

    def describe(self, event_count: int, projected_streams: int, caught_up: bool) -> str:
        parts = []
        if self.missing:
            never = "never applied" if caught_up else "not applied yet"
            parts.append(
                f"{len(self.missing)} of {plural(event_count, 'event')} {never} (seqs {agent_list(self.missing)})"
            )
        if self.duplicated:
            parts.append(
                f"{plural(len(self.duplicated), 'event')} applied more than once (seqs {agent_list(self.duplicated)})"
            )
        if self.strays:
            parts.append(
                f"{plural(len(self.strays), 'application')} of events the store does not hold "
                f"(seqs {agent_list(self.strays)})"
            )
        if self.lost:
            parts.append(
                f"{plural(len(self.lost), 'append')} the agents saw commit missing from the event store "
                f"(seqs {agent_list(self.lost)})"
            )
        if self.differing:
            stream, projected, folded = self.differing[0]
            others = len(self.differing) - 1
            parts.append(
                f"{len(self.differing)} of {max(projected_streams, len(self.differing))} streams differ: "
                f"stream {stream} projected {projected}, events sum to {folded}"
                + (f" (and {plural(others, 'more stream')})" if others else "")
            )
        return "; ".join(parts)

    def measured(self, event_count: int) -> str:
        return (
            f"{len(self.missing)} of {event_count} events missing, {len(self.duplicated)} applied twice, "
            f"{len(self.differing)} streams differ"
        )

    def rows(self, events: Mapping[int, StoredEvent], totals: Mapping[str, int]) -> list[dict[str, Any]]:
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in events.values():
            by_stream.setdefault(event.stream, []).append(event)
        missing, duplicated = set(self.missing), set(self.duplicated)
        troubled = {stream for stream, _, _ in self.differing} | {
            events[seq].stream for seq in missing | duplicated if seq in events
        }
        rows = []
        for stream in sorted(troubled, key=_natural):
            stream_events = by_stream.get(stream, [])
            folded = sum(event.change for event in stream_events)
            projected = totals.get(stream, 0)
            rows.append(
                {
                    "stream": stream,
                    "events": len(stream_events),
                    "events sum to": folded,
                    "projected": projected,
                    "difference": projected - folded,
                    "missing seqs": agent_list(event.seq for event in stream_events if event.seq in missing),
                    "seqs applied twice": agent_list(event.seq for event in stream_events if event.seq in duplicated),
                }
            )
        return rows


def _converged(
    snapshot: ProjectionSnapshot,
    events: Mapping[int, StoredEvent],
    appends: list[Operation],
    within: float,
    expected: str,
) -> Verdict:
    streams = len({event.stream for event in events.values()})
    whole = (
        f"every one of {plural(len(events), 'event')} over {plural(streams, 'stream')} applied exactly once, "
        "every stream's projected total equal to the sum of its events"
    )
    last_commit = max(int(op.written["committed_ns"]) for op in appends)
    applied_at = [snapshot.applied_at_ns.get(seq) for seq in events]
    if any(at is None for at in applied_at):
        return Verdict(
            "projection convergence",
            True,
            expected,
            "converged, time unknown",
            message=f"The projection equals the fold of the events ({whole}), but when it got there is unknown: "
            "the worker did not record when it applied some events.",
            inconclusive=True,
        )
    after = max(0, max(at for at in applied_at if at is not None) - last_commit) / 1e9
    measured = f"converged {format_duration(after)} after the last append"
    if after <= within:
        return Verdict(
            "projection convergence",
            True,
            expected,
            measured,
            message=f"Projection converged {format_duration(after)} after the last append "
            f"(bound {format_duration(within)}): {whole}.",
            value=after,
        )
    miss = f"{format_duration(after - within)} too late"
    return Verdict(
        "projection convergence",
        False,
        expected,
        measured,
        miss,
        f"Projection converged only {format_duration(after)} after the last append, {miss} for the "
        f"{format_duration(within)} bound: {whole} in the end.",
        value=after,
    )


def check_read_your_writes_lag(history: History, *, bound: float, percentile_rank: float = 95.0) -> Verdict:
    """Check the ``percentile_rank`` of read-your-writes lag over every successful append is at most ``bound`` s.

    Each append records ``timings={"projection_lag": ns}`` when its agent saw it in
    the projection; an append without it was not seen within the agent's wait and
    counts as longer than any bound.
    """
    if not 0 < percentile_rank <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile_rank}")
    appends = [op for op in history if appended_seq(op) is not None]
    name = "read-your-writes lag"
    rank = f"p{percentile_rank:g}"
    expected = f"{rank} ≤ {format_duration(bound)}"
    if not appends:
        return Verdict(
            name,
            True,
            expected,
            "0 successful appends",
            message=f"Nothing to check for read-your-writes lag: no append succeeded "
            f"({plural(len(history), 'operation')} in all).",
            inconclusive=True,
        )
    lags = sorted(_lag(op) for op in appends)
    seen = [lag for lag in lags if not math.isinf(lag)]
    unseen = [op for op in appends if math.isinf(_lag(op))]
    at_rank = percentile(lags, percentile_rank)
    spread = (
        f"the {plural(len(seen), 'append')} seen took p50 {format_duration(percentile(seen, 50.0))}, "
        f"max {format_duration(seen[-1])}"
        if seen
        else "no append was seen at all"
    )
    unseen_note = (
        f"{len(unseen)} of {plural(len(appends), 'append')} ({percent(len(unseen), len(appends))}) never became "
        f"visible to their agent within its wait (seqs {agent_list(appended_seq(op) or 0 for op in unseen)})"
    )
    rows = [
        {"agent": op.agent, "stream": op.written.get("stream"), "seq": appended_seq(op), "lag": _shown(_lag(op))}
        for op in sorted(appends, key=_lag, reverse=True)
        if _lag(op) > bound
    ]
    measured = f"{rank} {_shown(at_rank)}"
    if at_rank <= bound:
        tail = unseen_note if unseen else "every agent saw its own append in the projection"
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Read-your-writes lag within bound: {rank} {format_duration(at_rank)} ≤ "
            f"{format_duration(bound)}; {spread}; {tail}{rows_note(len(rows))}.",
            details=capped(rows),
            value=at_rank,
        )
    if math.isinf(at_rank):
        return Verdict(
            name,
            False,
            expected,
            measured,
            "never seen",
            f"Read-your-writes lag too long: {rank} never reached, bound {format_duration(bound)}: {unseen_note}; "
            f"{spread}{rows_note(len(rows))}.",
            capped(rows),
            value=at_rank,
        )
    miss = f"{format_duration(at_rank - bound)} over"
    tail = f"; {unseen_note}" if unseen else ""
    return Verdict(
        name,
        False,
        expected,
        measured,
        miss,
        f"Read-your-writes lag too long: {rank} {format_duration(at_rank)}, bound {format_duration(bound)}, "
        f"{miss}; {spread}{tail}{rows_note(len(rows))}.",
        capped(rows),
        value=at_rank,
    )


def _natural(stream: str) -> list[Any]:
    """A sort key that puts ``user-2`` before ``user-10``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", stream)]


def _lag(op: Operation) -> float:
    lag = (op.timings or {}).get(LAG_TIMING)
    return math.inf if lag is None else lag / 1e9


def _shown(seconds: float) -> str:
    return "never seen" if math.isinf(seconds) else format_duration(seconds)
