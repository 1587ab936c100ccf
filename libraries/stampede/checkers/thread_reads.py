"""Consistent thread reads: every read of a thread's messages is a prefix of every later read and of the final list.

A read during the launch, and each state of the thread's history, must hold
no message twice, nothing the final list lacks, and the final list's first
messages in its order. A read must not hold more than a read that started
after it ended. Messages of runs the service reports rolled back are left
out of every comparison: whether they are gone is the policy check's to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from ..records.threads import RunAttempt, ThreadFinal, ThreadMessage, ThreadRead
from ..verdicts import Verdict
from ._report import capped, plural, rows_note
from .thread_runs import MessageList, ThreadRuns, thread_list, thread_runs


@dataclass(frozen=True)
class Kept:
    """A list with the rolled-back runs' messages left out, as ids."""

    listing: MessageList
    ids: tuple[str, ...]


def _kept(view: ThreadRuns, listing: MessageList, left_out: set[str]) -> Kept:
    """``listing`` without the rolled-back runs' messages, whose ids go to ``left_out``."""
    ids = []
    for message in listing.messages:
        if _rolled_back(view, message):
            left_out.add(message.id)
        else:
            ids.append(message.id)
    return Kept(listing, tuple(ids))


def _rolled_back(view: ThreadRuns, message: ThreadMessage) -> bool:
    run = view.run_of(message)
    return run is not None and run.rolled_back


def prefix_problem(ids: Sequence[str], final: Sequence[str]) -> str | None:
    """Why ``ids`` is not a prefix of ``final`` (a repeat, a message the final list lacks, another order), or None."""
    seen: set[str] = set()
    in_final = set(final)
    for position, message_id in enumerate(ids):
        if message_id in seen:
            return f"holds {message_id} twice"
        seen.add(message_id)
        if message_id not in in_final:
            return f"holds {message_id}, which the final list lost"
        if final[position] != message_id:
            return f"has {message_id} at position {position + 1}, where the final list has {final[position]}"
    return None


def _shrinks(view: ThreadRuns, prefixes: list[Kept]) -> list[dict[str, str]]:
    """Reads (each a prefix of the final list) that hold fewer messages than a read that ended before they started."""
    reads = [kept for kept in prefixes if kept.listing.read is not None]
    by_end = sorted(reads, key=lambda kept: _read(kept).end_ns)
    rows, longest, index = [], None, 0
    for later in sorted(reads, key=lambda kept: _read(kept).start_ns):
        while index < len(by_end) and _read(by_end[index]).end_ns < _read(later).start_ns:
            if longest is None or len(by_end[index].ids) > len(longest.ids):
                longest = by_end[index]
            index += 1
        if longest is not None and len(later.ids) < len(longest.ids):
            lost = longest.ids[len(later.ids) :]
            rows.append(
                {
                    "thread": view.thread,
                    "list": later.listing.where,
                    "problem": f"lacks {', '.join(lost[:3])}{' …' if len(lost) > 3 else ''}, which "
                    f"{longest.listing.where} (ended before it started) held",
                }
            )
    return rows


def _read(kept: Kept) -> ThreadRead:
    assert kept.listing.read is not None
    return kept.listing.read


def _history_shrinks(view: ThreadRuns, states: list[Kept]) -> list[dict[str, str]]:
    rows = []
    for earlier, later in pairwise(states):
        if len(later.ids) < len(earlier.ids):
            rows.append(
                {
                    "thread": view.thread,
                    "list": later.listing.where,
                    "problem": f"lacks {earlier.ids[len(later.ids)]}, which {earlier.listing.where} held",
                }
            )
    return rows


def _notes(failed: list[ThreadRead], unread: list[str], left_out: int) -> str:
    """What was not judged, and what was left out."""
    notes = []
    if failed:
        statuses = ", ".join(sorted({str(read.status) for read in failed}))
        notes.append(f"{plural(len(failed), 'read')} failed (status {statuses}) and were not judged")
    if unread:
        notes.append(f"the reads of {thread_list(unread)} were not judged: not read after the launch")
    if left_out:
        notes.append(f"{plural(left_out, 'message')} of rolled-back runs left out")
    return "; " + "; ".join(notes) if notes else ""


def check_thread_reads(
    attempts: Sequence[RunAttempt], finals: Sequence[ThreadFinal], reads: Sequence[ThreadRead]
) -> Verdict:
    """Fail when a read or history state of a thread is not a prefix of a later read and of the final list."""
    name = "thread reads consistent"
    expected = "every read a prefix of every later read and of the final list"
    threads = thread_runs(attempts, finals, reads)
    rows: list[dict[str, str]] = []
    judged_reads = judged_states = left_out = 0
    failed: list[ThreadRead] = []
    unread: list[str] = []
    for view in threads.values():
        failed += view.failed_reads()
        if view.final is None:
            if view.reads:
                unread.append(view.thread)
            continue
        gone: set[str] = set()
        listings = [_kept(view, listing, gone) for listing in view.lists()]
        final, others = listings[0], listings[1:]
        left_out += len(gone)
        prefixes, states = [], []
        for kept in others:
            problem = prefix_problem(kept.ids, final.ids)
            if problem:
                rows.append({"thread": view.thread, "list": kept.listing.where, "problem": problem})
            elif kept.listing.read is not None:
                prefixes.append(kept)
            if kept.listing.read is None:
                states.append(kept)
                judged_states += 1
            else:
                judged_reads += 1
        rows += _shrinks(view, prefixes) + _history_shrinks(view, states)
    note = _notes(failed, unread, left_out)
    judged = f"{plural(judged_reads, 'read')} and {plural(judged_states, 'history state')}"
    if not judged_reads and not judged_states:
        return Verdict(
            name,
            True,
            expected,
            "no read or history state",
            message=f"Thread reads not judged: no read of a thread's messages during the launch and no history "
            f"state to compare with the final list{note}.",
            inconclusive=True,
        )
    measured = f"{plural(len(rows), 'inconsistent list')} in {judged}"
    judged_threads = sum(1 for view in threads.values() if view.final is not None)
    if not rows:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Thread reads were consistent: {judged} of {plural(judged_threads, 'thread')} were each a "
            f"prefix of every later read and of the final list{note}.",
            value=0.0,
        )
    first = rows[0]
    return Verdict(
        name,
        False,
        expected,
        measured,
        plural(len(rows), "inconsistent list"),
        f"Thread reads were inconsistent: {plural(len(rows), 'list')} of {judged} on thread "
        f"{thread_list(row['thread'] for row in rows)} lost, repeated or reordered messages; first: thread "
        f"{first['thread']}, {first['list']} {first['problem']}{rows_note(len(rows))}{note}.",
        capped(rows),
        value=float(len(rows)),
    )
