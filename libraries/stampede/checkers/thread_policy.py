"""Policy outcomes: what the service said of each run (accepted, refused, how it ended) matches the thread's state.

Judged per run, against the thread's final state:

- a run the service reports **succeeded** has exactly ``messages_per_run``
  messages in the state (fewer: it was interrupted, or never ran, and was
  reported succeeded anyway);
- a run reported **interrupted** keeps exactly the messages its stream
  reported, in that order (when its stream ended normally);
- a run reported **rolled back** has none of its messages in the state;
- no message of a run appears twice.

And per policy: under **reject** a refused run left nothing and was refused
while another run on its thread could have been active (its request and
refusal fell within that run's request and end; a refusal while every other
run had surely ended or not yet been asked for is a finding); under
**enqueue** no run is refused or stopped, and the runs' messages follow the
order the service ran them (its start times, else its run list's order);
under **interrupt** and **rollback** no run is refused. Runs whose messages
another run's split are the one-active-run check's finding: their order is
not judged here. A run whose end the service never reported, or that ended
in error, is not judged and is named.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..records.threads import HttpFailure, RunAttempt, RunPolicy, RunStatus, ThreadFinal
from ..verdicts import Verdict
from ._report import capped, plural, rows_note
from .thread_runs import Run, ThreadRuns, thread_list, thread_runs

_NEVER_STARTED = frozenset({HttpFailure.CONNECT_FAILED, HttpFailure.UNAUTHORIZED})
"""Request failures after which the service cannot have run the run (unless its run list has it); an error status
may come after the service started the run, so such a run may have been active."""


def _ids(ids: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"


@dataclass(frozen=True)
class FinalBlocks:
    """The runs in the order their messages sit in the final list, those another run's split, and the messages
    that name no run (while there are any, how many messages a run kept is not judged: they may be its)."""

    order: list[Run]
    split: set[Run]
    unattributed: int


def _final_blocks(view: ThreadRuns) -> FinalBlocks:
    assert view.final is not None
    blocks: list[Run] = []
    seen: set[str] = set()
    unattributed = 0
    for message in view.final.messages:
        if message.id in seen:
            continue
        seen.add(message.id)
        run = view.run_of(message)
        if run is None:
            unattributed += 1
        elif not blocks or blocks[-1] is not run:
            blocks.append(run)
    split = {run for run, count in Counter(blocks).items() if count > 1}
    return FinalBlocks([run for run in blocks if run not in split], split, unattributed)


def _reported(view: ThreadRuns, run: Run) -> list[str] | None:
    """The message ids the run's own stream reported, when it ended normally; ids the state gives another run are
    left out (another run's events on this stream are the run-stream check's finding)."""
    attempt, final = run.attempt, view.final
    if attempt is None or attempt.failure is not None or attempt.outcome is None or final is None:
        return None
    owners = {message.id: view.run_of(message) for message in final.messages}
    return [message_id for message_id in attempt.messages if owners.get(message_id, run) in (run, None)]


def _possibly_busy(view: ThreadRuns, refused: Run) -> tuple[bool, str]:
    """Whether another run may have been active while ``refused`` was asked for and refused; if not, why not."""
    attempt = refused.attempt
    assert attempt is not None
    low, high = attempt.request_ns, attempt.end_ns if attempt.end_ns is not None else math.inf
    reasons = []
    for other in view.runs:
        asked = other.attempt
        if other is refused or (asked is not None and asked.refused):
            continue
        if asked is None:
            return True, ""  # a run nobody here asked for: when it ran is unknown
        if asked.failure in _NEVER_STARTED and other.listed is None:
            continue
        other_high = asked.end_ns if asked.outcome is not None and asked.end_ns is not None else math.inf
        if asked.request_ns < high and low < other_high:
            return True, ""
        if other_high <= low:
            reasons.append(f"{other.name} had ended {(low - other_high) / 1e6:.1f} ms before it was asked for")
        else:
            reasons.append(f"{other.name} was asked for {(asked.request_ns - high) / 1e6:.1f} ms after the refusal")
    return False, "; ".join(reasons[:2]) or "no other run was asked for on the thread"


def _refusal_problems(view: ThreadRuns, run: Run, policy: RunPolicy, in_state: list[str]) -> list[str]:
    attempt = run.attempt
    assert attempt is not None
    answer = f"refused with {attempt.status}"
    problems = []
    if policy is not RunPolicy.REJECT:
        problems.append(f"{answer} under {policy.value}, which takes every run")
    if in_state:
        problems.append(f"{answer}, but its messages {_ids(in_state)} are in the thread's state")
    listed = run.listed
    if listed is not None and listed.status in (RunStatus.SUCCESS, RunStatus.INTERRUPTED):
        problems.append(f"{answer}, but the service's run list has it as {listed.run_id}, {listed.status.value}")
    if policy is RunPolicy.REJECT:
        busy, why = _possibly_busy(view, run)
        if not busy:
            problems.append(f"{answer} while no other run can have been active on the thread: {why}")
    return problems


def _ended_problems(
    view: ThreadRuns, run: Run, status: RunStatus, policy: RunPolicy, per_run: int | None, in_state: list[str]
) -> list[str]:
    problems = []
    if policy is RunPolicy.ENQUEUE and status is not RunStatus.SUCCESS:
        problems.append(f"ended {status.value} under enqueue, which runs every run to its end")
    if status is RunStatus.ROLLED_BACK:
        if in_state:
            more = f" (and {plural(len(in_state) - 1, 'more message')})" if len(in_state) > 1 else ""
            problems.append(
                f"message {in_state[0]} of {run.name}, which the service says it rolled back, is in the thread's "
                f"state{more}"
            )
        return problems
    if status not in (RunStatus.SUCCESS, RunStatus.INTERRUPTED):
        return problems
    reported = _reported(view, run)
    kept = set(in_state)
    lost = [message_id for message_id in reported or () if message_id not in kept]
    if status is RunStatus.SUCCESS and per_run is not None and len(in_state) != per_run:
        on_stream = f"; its stream reported {plural(len(reported), 'message')}" if reported is not None else ""
        missing = f", {_ids(lost)} missing" if lost else ""
        problems.append(
            f"reported succeeded, but {len(in_state)} of the {per_run} messages a run appends are in the thread's "
            f"state ({'fewer: it was stopped or never ran' if len(in_state) < per_run else 'more'}{on_stream}"
            f"{missing})"
        )
        return problems
    if reported is None:
        return problems
    extra = [message_id for message_id in in_state if message_id not in set(reported)]
    if lost:
        problems.append(f"reported {status.value} after appending {_ids(lost)}, not in the thread's state")
    if extra and (status is RunStatus.INTERRUPTED or per_run is None):
        problems.append(f"reported {status.value}, but the state also holds {_ids(extra)}, which it never reported")
    if not lost and not extra and in_state != reported:
        problems.append(f"its messages are in the state in another order than its stream said: {_ids(in_state)}")
    return problems


def _service_order(view: ThreadRuns, runs: list[Run]) -> list[Run]:
    """The runs in the order the service ran them: its start times when it gives them all, else its run list's."""
    if all(run.listed is not None and run.listed.started_at is not None for run in runs):
        return sorted(runs, key=lambda run: run.listed.started_at if run.listed and run.listed.started_at else 0.0)
    position = {listed.run_id: n for n, listed in enumerate(view.final.runs if view.final else ())}
    return sorted(runs, key=lambda run: position.get(run.run_id, math.inf) if run.run_id else math.inf)


def _order_problem(view: ThreadRuns, order: list[Run]) -> str | None:
    ran = _service_order(view, order)
    for held, expected in zip(order, ran, strict=True):
        if held is not expected:
            return f"holds {held.name}'s messages before {expected.name}'s, but the service ran {expected.name} first"
    return None


def _unjudged(run: Run, refusal_statuses: Sequence[int]) -> str:
    """Why a run that was neither refused nor reported ended cannot be judged."""
    if run.status is RunStatus.FAILED:
        return "ended in error"
    attempt = run.attempt
    if attempt is not None and attempt.failure is HttpFailure.HTTP_ERROR:
        statuses = ", ".join(str(status) for status in refusal_statuses) or "none configured"
        return f"answered {attempt.status}, not a refusal status ({statuses})"
    failure = f": {attempt.failure.value}" if attempt is not None and attempt.failure else ""
    return f"the service never said how it ended{failure}"


def _who(row: dict[str, str]) -> str:
    """The run a problem is about, as the verdict's message puts it before the problem (unless the problem names it)."""
    return f"{row['run']} " if row["run"] and row["run"] not in row["problem"] else ""


def check_thread_policy(
    attempts: Sequence[RunAttempt],
    finals: Sequence[ThreadFinal],
    *,
    policy: RunPolicy,
    messages_per_run: int | None,
    refusal_statuses: Sequence[int] = (),
) -> Verdict:
    """Fail when a thread's final state or a run's answer breaks what ``policy`` and the run reports promise."""
    name = f"runs follow the {policy.value} policy"
    expected = {
        RunPolicy.REJECT: "runs refused only while another is active; refused runs leave nothing",
        RunPolicy.ENQUEUE: "every run succeeds; each one's messages once, in the service's order",
        RunPolicy.INTERRUPT: "the state holds exactly the messages of the runs the service kept",
        RunPolicy.ROLLBACK: "the state holds the kept runs' messages and none of a rolled-back run",
    }[policy]
    threads = thread_runs(attempts, finals)
    rows: list[dict[str, str]] = []
    unjudged: list[str] = []
    tally: Counter[str] = Counter()
    for view in threads.values():
        if view.final is None:
            unjudged.append(f"thread {view.thread} (not read after the launch)")
            continue
        blocks = _final_blocks(view)
        per_run = messages_per_run
        if blocks.unattributed:
            per_run = None
            unjudged.append(
                f"how many messages each run kept on thread {view.thread} ({plural(blocks.unattributed, 'message')} "
                "of no run there)"
            )
        for run in list(view.runs):
            listed = view.messages_of(run, view.final.messages)
            counts = Counter(message.id for message in listed)
            in_state = list(counts)
            problems = [f"message {mid} appears {n} times in the thread's state" for mid, n in counts.items() if n > 1]
            status = run.status
            if run.attempt is not None and run.attempt.refused:
                problems += _refusal_problems(view, run, policy, in_state)
                tally["refused"] += 1
            elif status is None or not status.ended or status is RunStatus.FAILED:
                unjudged.append(f"{run.name} on thread {view.thread} ({_unjudged(run, refusal_statuses)})")
                continue
            else:
                problems += _ended_problems(view, run, status, policy, per_run, in_state)
                tally[status.value.replace("_", " ")] += 1
            rows += [{"thread": view.thread, "run": run.name, "problem": problem} for problem in problems]
        if policy is RunPolicy.ENQUEUE:
            kept = [run for run in blocks.order if run.status is RunStatus.SUCCESS]
            problem = _order_problem(view, kept)
            if problem:
                rows.append({"thread": view.thread, "run": "", "problem": problem})
        if blocks.split:
            tally["split by another run (the one-active-run check's finding)"] += len(blocks.split)
    judged = sum(count for kind, count in tally.items() if not kind.startswith("split"))
    missing = f"; not judged: {_ids(unjudged)}" if unjudged else ""
    if not judged:
        return Verdict(
            name,
            True,
            expected,
            "no run judged",
            message=f"The {policy.value} policy not judged: no run on {plural(len(threads), 'thread')} was refused "
            f"or reported how it ended with its thread's state read{missing}.",
            inconclusive=True,
        )
    kinds = ", ".join(f"{count} {kind}" for kind, count in tally.items())
    threads_judged = len({view.thread for view in threads.values() if view.final is not None})
    measured = f"{plural(len(rows), 'problem')} in {plural(judged, 'run')}"
    if not rows:
        each = f" ({messages_per_run} messages a run)" if messages_per_run is not None else ""
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Runs followed the {policy.value} policy: {plural(judged, 'run')} on "
            f"{plural(threads_judged, 'thread')} ({kinds}) left the thread's state as the service reported "
            f"them{each}{missing}.",
            value=0.0,
        )
    first = rows[0]
    broken = thread_list(row["thread"] for row in rows)
    return Verdict(
        name,
        False,
        expected,
        measured,
        plural(len(rows), "problem"),
        f"Runs broke the {policy.value} policy: {plural(len(rows), 'problem')} on thread {broken} among "
        f"{plural(judged, 'run')} ({kinds}); first: thread {first['thread']}, "
        f"{_who(first)}{first['problem']}{rows_note(len(rows))}{missing}.",
        capped(rows),
        value=float(len(rows)),
    )
