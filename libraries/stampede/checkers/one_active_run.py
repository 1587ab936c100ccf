"""At most one active run per thread, judged only on evidence that proves two runs were active at once.

The evidence, all from the service's own side:

- a list of the thread's messages (the final one, a history state, a read
  during the launch) in which one run's messages are split by another's: the
  second run appended while the first had appended and was still to append;
- the thread's history, in which a run's messages first appeared at versions
  that straddle another run's;
- the service's run list: two runs whose start and end times (on the
  service's clock) overlap, or two runs it still lists as running.

Arrival times on the agents' side are not evidence: each run streams on its
own HTTP connection, and a service may hold events back, so a run's event
arriving after another run's says nothing about when either was active. A
thread whose runs never left a message in a list nor times in the run list
cannot be judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..records.threads import RunAttempt, RunStatus, ThreadFinal, ThreadMessage, ThreadRead
from ..verdicts import Verdict
from ._report import capped, plural, rows_note
from .thread_runs import MessageList, Run, ThreadRuns, thread_list, thread_runs


@dataclass(frozen=True)
class Overlap:
    """Two runs of one thread proved active at once, and how."""

    thread: str
    first: Run
    second: Run
    evidence: str
    where: str

    def row(self) -> dict[str, str]:
        return {
            "thread": self.thread,
            "runs": f"{self.first.name}, {self.second.name}",
            "evidence": self.evidence,
            "where": self.where,
        }


def split_run(view: ThreadRuns, listing: MessageList) -> Overlap | None:
    """The first run whose messages in ``listing`` are split by another run's (repeated ids counted once)."""
    seen: set[str] = set()
    last_of: dict[Run, ThreadMessage] = {}
    current: Run | None = None
    for message in listing.messages:
        if message.id in seen:
            continue
        seen.add(message.id)
        run = view.run_of(message)
        if run is None:
            continue
        if run is not current and run in last_of and current is not None:
            evidence = (
                f"{run.name}'s message {message.id} comes after {current.name}'s {last_of[current].id}, which "
                f"comes after {run.name}'s {last_of[run].id}"
            )
            return Overlap(view.thread, run, current, evidence, listing.where)
        current = run
        last_of[run] = message
    return None


def straddled_versions(view: ThreadRuns) -> Overlap | None:
    """Two runs whose messages first appeared in the thread's history at versions that straddle each other's."""
    if view.final is None or not view.final.history:
        return None
    first_seen: dict[str, int] = {}
    spans: dict[Run, list[int]] = {}
    for version, state in enumerate(view.final.history):
        for message in state:
            if message.id in first_seen:
                continue
            first_seen[message.id] = version
            run = view.run_of(message)
            if run is not None:
                span = spans.setdefault(run, [version, version])
                span[1] = version
    widest: tuple[Run, list[int]] | None = None
    for run, (low, high) in sorted(spans.items(), key=lambda item: item[1][0]):
        if widest is not None:
            other, (other_low, other_high) = widest
            if other_low < high and low < other_high:
                evidence = (
                    f"{other.name}'s messages appeared from version {other_low} to {other_high}, {run.name}'s from "
                    f"{low} to {high}"
                )
                return Overlap(view.thread, other, run, evidence, "the thread's history")
        if widest is None or high > widest[1][1]:
            widest = (run, [low, high])
    return None


def listed_overlap(view: ThreadRuns) -> Overlap | None:
    """Two runs the service lists as running at once: both still running, or start and end times that overlap."""
    if view.final is None:
        return None
    running = [run for run in view.runs if run.listed is not None and run.listed.status is RunStatus.RUNNING]
    if len(running) > 1:
        evidence = f"the service still lists {plural(len(running), 'run')} as running after the launch"
        return Overlap(view.thread, running[0], running[1], evidence, "the service's run list")
    timed: list[tuple[float, float, Run]] = []
    for run in view.runs:
        listed = run.listed
        if listed is None or listed.started_at is None:
            continue
        if listed.ended_at is not None:
            timed.append((listed.started_at, listed.ended_at, run))
        elif listed.status is RunStatus.RUNNING:
            timed.append((listed.started_at, math.inf, run))
    latest: tuple[float, float, Run] | None = None
    for start, end, run in sorted(timed, key=lambda item: item[0]):
        if latest is not None and start < latest[1]:
            other_start, other_end, other = latest
            ended = "is still running" if other_end == math.inf else f"ended at {other_end:.3f} s"
            evidence = (
                f"{other.name} started at {other_start:.3f} s and {ended}; {run.name} started at {start:.3f} s "
                "(the service's clock)"
            )
            return Overlap(view.thread, other, run, evidence, "the service's run list")
        if latest is None or end > latest[1]:
            latest = (start, end, run)
    return None


def _evidenced_runs(view: ThreadRuns) -> set[Run]:
    """The runs there is evidence about: a message in some list, or times in the service's run list."""
    runs = {run for listing in view.lists() for message in listing.messages if (run := view.run_of(message))}
    return runs | {run for run in view.runs if run.listed is not None and run.listed.started_at is not None}


def check_one_active_run(
    attempts: Sequence[RunAttempt], finals: Sequence[ThreadFinal], reads: Sequence[ThreadRead] = ()
) -> Verdict:
    """Fail when the service's own lists prove two runs were active on one thread at once.

    ``finals`` are the threads as read after the launch (state, run list,
    history); ``reads`` the reads of message lists made during it.
    """
    name = "one active run per thread"
    expected = "at most one active run on each thread at any time"
    threads = thread_runs(attempts, finals, reads)
    judged: dict[str, set[Run]] = {}
    overlaps: list[Overlap] = []
    lists = 0
    for view in threads.values():
        runs = _evidenced_runs(view)
        if not runs:
            continue
        judged[view.thread] = runs
        listings = list(view.lists())
        lists += len(listings)
        found = [split_run(view, listing) for listing in listings]
        found += [straddled_versions(view), listed_overlap(view)]
        overlap = next((item for item in found if item is not None), None)
        if overlap is not None:
            overlaps.append(overlap)
    unread = [view.thread for view in threads.values() if view.final is None]
    note = f"; {plural(len(unread), 'thread')} not read after the launch ({thread_list(unread)})" if unread else ""
    if not judged:
        return Verdict(
            name,
            True,
            expected,
            "no run with messages or times",
            message=f"One active run per thread not judged: no run on {plural(len(threads), 'thread')} left a "
            f"message in the thread's lists or times in the service's run list{note}.",
            inconclusive=True,
        )
    run_count = sum(len(runs) for runs in judged.values())
    measured = f"{len(overlaps)} of {len(judged)} threads with two runs at once"
    timed = sum(1 for view in threads.values() for run in view.runs if run.listed and run.listed.started_at is not None)
    times = f" and the service's times of {plural(timed, 'run')}" if timed else ""
    basis = (
        f"{plural(run_count, 'run')} on {plural(len(judged), 'thread')}, from {plural(lists, 'message list')}{times}"
    )
    if not overlaps:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"No two runs were active at once on a thread: judged {basis}; no run's messages were split "
            f"by another's{' and no run times overlapped' if timed else ''}{note}.",
            value=0.0,
        )
    shown = "; ".join(f"thread {o.thread}: {o.evidence} ({o.where})" for o in overlaps[:3])
    more = f"; and {len(overlaps) - 3} more" if len(overlaps) > 3 else ""
    return Verdict(
        name,
        False,
        expected,
        measured,
        plural(len(overlaps), "thread"),
        f"Two runs were active at once on {len(overlaps)} of {plural(len(judged), 'thread')}: "
        f"{shown}{more}{rows_note(len(overlaps))}{note}.",
        capped([overlap.row() for overlap in overlaps]),
        value=float(len(overlaps)),
    )
