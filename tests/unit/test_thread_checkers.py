"""HTTP agent thread checkers on hand-made records: each catches its bug switch, passes a sound service, and says
when there was nothing to judge.

Each scenario builds the records a run of the reference service with one bug switch would leave (what the HTTP
tool records of each run request, the threads read after the launch, the reads made during it, the SSE events,
the foreign-access probes), and every check judges it, so a test also shows which checks a bug trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from stampede.checkers.contamination import check_no_contamination
from stampede.checkers.event_ordering import check_event_ordering
from stampede.checkers.foreign_access import check_foreign_access_refused
from stampede.checkers.one_active_run import check_one_active_run
from stampede.checkers.run_streams import check_run_streams
from stampede.checkers.thread_policy import check_thread_policy
from stampede.checkers.thread_reads import check_thread_reads
from stampede.records.threads import (
    ForeignAccess,
    HttpFailure,
    RunAttempt,
    RunPolicy,
    RunStatus,
    ServiceRun,
    ThreadFinal,
    ThreadMessage,
    ThreadRead,
)
from stampede.records.websocket import ReceivedMessage
from stampede.verdicts import Verdict

MS = 1_000_000
PER_RUN = 3
LIFECYCLE = ["run_started", "run_completed"]
"""The lifecycle the ordering check judges: message events are left out of it, so a run that appended fewer
messages than it should is the policy check's finding, not a lifecycle break too."""
TERMINALS = {
    RunStatus.SUCCESS: "run_completed",
    RunStatus.INTERRUPTED: "run_interrupted",
    RunStatus.ROLLED_BACK: "run_rolled_back",
    RunStatus.FAILED: "run_failed",
}
FAILURES = ["run_interrupted", "run_rolled_back", "run_failed"]


def messages(run: str, count: int = PER_RUN, first: int = 1) -> tuple[ThreadMessage, ...]:
    return tuple(ThreadMessage(f"{run}:{n}", run, f"m-{run}") for n in range(first, first + count))


def attempt(
    agent: int,
    run: str | None,
    *,
    request_ms: float = 0,
    start_ms: float | None = None,
    end_ms: float | None = None,
    outcome: RunStatus | None = RunStatus.SUCCESS,
    appended: int = PER_RUN,
    thread: str = "t-1",
    user: str = "user-1",
    policy: RunPolicy = RunPolicy.ENQUEUE,
    status: int | None = 200,
    failure: HttpFailure | None = None,
) -> RunAttempt:
    """A run request; a refused one (``run`` None) was answered 409 at ``end_ms``."""
    marker = f"m-{run}" if run else f"m-agent-{agent}"
    start = request_ms + 1 if start_ms is None else start_ms
    end = start + 10 * appended + 5 if end_ms is None else end_ms
    return RunAttempt(
        agent,
        user,
        thread,
        marker,
        policy,
        int(request_ms * MS),
        status=status,
        run_id=run,
        first_event_ns=int(start * MS) if run else None,
        started_ns=int(start * MS) if run else None,
        end_ns=int(end * MS),
        outcome=outcome if run else None,
        messages=[m.id for m in messages(run, appended)] if run else [],
        failure=failure,
    )


def refused(agent: int, *, request_ms: float, end_ms: float, thread: str = "t-1") -> RunAttempt:
    return attempt(
        agent,
        None,
        request_ms=request_ms,
        end_ms=end_ms,
        thread=thread,
        policy=RunPolicy.REJECT,
        status=409,
        failure=HttpFailure.REFUSED,
    )


def listed(run: str, status: RunStatus, started: float | None = None, ended: float | None = None) -> ServiceRun:
    return ServiceRun(run, "t-1", status, status.value, f"m-{run}", started, ended)


def history_of(*steps: tuple[ThreadMessage, ...]) -> tuple[tuple[ThreadMessage, ...], ...]:
    """Version 0 empty, then each state given."""
    return ((), *steps)


def growing(*lists: tuple[ThreadMessage, ...]) -> tuple[tuple[ThreadMessage, ...], ...]:
    """The history of appending the given runs' messages one at a time."""
    states: list[tuple[ThreadMessage, ...]] = []
    current: tuple[ThreadMessage, ...] = ()
    for run_messages in lists:
        for message in run_messages:
            current = (*current, message)
            states.append(current)
    return history_of(*states)


def events_of(run: RunAttempt, *, owner: RunAttempt | None = None) -> list[ReceivedMessage]:
    """The SSE events of ``owner``'s run (default: ``run``'s own) as they arrive on ``run``'s stream."""
    source = owner or run
    if source.run_id is None:
        return []
    assert source.started_ns is not None and source.end_ns is not None
    kinds = ["run_started"] + ["message_appended"] * len(source.messages)
    if source.outcome is not None:
        kinds.append(TERMINALS[source.outcome])
    step = (source.end_ns - source.started_ns) // len(kinds)
    return [
        ReceivedMessage(
            run.agent,
            run.user,
            run.stream,
            source.started_ns + n * step,
            f'{{"run_id": "{source.run_id}"}}',
            own_marker=run.marker,
            type=kind,
            seq=n + 1,
            user_id=source.user,
            marker=source.marker,
            run_id=source.run_id,
        )
        for n, kind in enumerate(kinds)
    ]


def read(agent: int, start_ms: float, end_ms: float, listed_messages: tuple[ThreadMessage, ...]) -> ThreadRead:
    return ThreadRead(agent, "user-1", "t-1", int(start_ms * MS), int(end_ms * MS), 200, listed_messages)


ISOLATED = [
    ForeignAccess("user-2", "user-1", "t-1", "state", 404, True),
    ForeignAccess("user-2", "user-1", "t-1", "history", 404, True),
    ForeignAccess("user-1", "user-2", "t-2", "state", 404, True),
]


@dataclass
class Records:
    """All a launch on one thread leaves: what the tool recorded, and what the checks read after it."""

    policy: RunPolicy
    attempts: list[RunAttempt]
    final: ThreadFinal
    reads: list[ThreadRead] = field(default_factory=list)
    accesses: list[ForeignAccess] = field(default_factory=lambda: list(ISOLATED))
    events: list[ReceivedMessage] | None = None

    def stream_events(self) -> list[ReceivedMessage]:
        if self.events is not None:
            return self.events
        return [event for run in self.attempts for event in events_of(run)]

    def verdicts(self) -> dict[str, Verdict]:
        finals = [self.final]
        events = self.stream_events()
        owners = {run.marker: run.user for run in self.attempts}
        return {
            "one active run": check_one_active_run(self.attempts, finals, self.reads),
            "policy": check_thread_policy(
                self.attempts, finals, policy=self.policy, messages_per_run=PER_RUN, refusal_statuses=[409]
            ),
            "reads": check_thread_reads(self.attempts, finals, self.reads),
            "isolation": check_foreign_access_refused(self.accesses),
            "streams": check_run_streams(self.attempts, events),
            "contamination": check_no_contamination(events, marker_owners=owners),
            "ordering": check_event_ordering(events, lifecycle=LIFECYCLE, failures=FAILURES),
        }

    def failing(self) -> dict[str, Verdict]:
        return {name: verdict for name, verdict in self.verdicts().items() if not verdict.passed}


def final(listed_messages: tuple[ThreadMessage, ...], runs: tuple[ServiceRun, ...], history: tuple = ()) -> ThreadFinal:
    return ThreadFinal("t-1", "user-1", listed_messages, runs, history or None)


# Sound services, each policy


def enqueued() -> Records:
    """Three runs asked for at once, run one after another, each read part-way by another agent."""
    runs = [attempt(n, f"r-{n}", start_ms=1 + 40 * (n - 1), end_ms=40 * n) for n in (1, 2, 3)]
    kept = messages("r-1") + messages("r-2") + messages("r-3")
    service = tuple(listed(f"r-{n}", RunStatus.SUCCESS, 0.001 + 0.04 * (n - 1), 0.04 * n) for n in (1, 2, 3))
    reads = [read(4, 20, 22, kept[:2]), read(5, 21, 60, kept[:4]), read(4, 50, 55, kept[:5]), read(4, 130, 131, kept)]
    return Records(RunPolicy.ENQUEUE, runs, final(kept, service, growing(kept)), reads)


def rejected() -> Records:
    """Three runs asked for at once: one accepted, two refused while it ran; a fourth after it ended, accepted."""
    first = attempt(1, "r-1", policy=RunPolicy.REJECT, end_ms=40)
    late = attempt(4, "r-4", request_ms=50, policy=RunPolicy.REJECT)
    runs = [first, refused(2, request_ms=0, end_ms=2), refused(3, request_ms=0, end_ms=3), late]
    kept = messages("r-1") + messages("r-4")
    service = (listed("r-1", RunStatus.SUCCESS, 0.001, 0.04), listed("r-4", RunStatus.SUCCESS, 0.051, 0.086))
    return Records(RunPolicy.REJECT, runs, final(kept, service, growing(kept)), [read(5, 30, 31, kept[:2])])


def interrupted() -> Records:
    """Run r-1 interrupted after two messages by r-2. Tricky timing: r-2's run_started arrives (at 21 ms) before
    r-1's run_interrupted (at 30 ms) on the other connection."""
    old = attempt(
        1, "r-1", start_ms=1, end_ms=30, outcome=RunStatus.INTERRUPTED, appended=2, policy=RunPolicy.INTERRUPT
    )
    new = attempt(2, "r-2", request_ms=20, start_ms=21, end_ms=60, policy=RunPolicy.INTERRUPT)
    kept = messages("r-1", 2) + messages("r-2")
    service = (listed("r-1", RunStatus.INTERRUPTED, 0.001, 0.0205), listed("r-2", RunStatus.SUCCESS, 0.0205, 0.06))
    reads = [read(3, 15, 29, kept[:2]), read(3, 31, 33, kept[:3])]
    return Records(RunPolicy.INTERRUPT, [old, new], final(kept, service, growing(kept)), reads)


def rolled_back() -> Records:
    """Run r-1 rolled back after two messages by r-2: a read and the history saw them before they were removed."""
    old = attempt(1, "r-1", start_ms=1, end_ms=30, outcome=RunStatus.ROLLED_BACK, appended=2, policy=RunPolicy.ROLLBACK)
    new = attempt(2, "r-2", request_ms=20, start_ms=21, end_ms=60, policy=RunPolicy.ROLLBACK)
    gone, kept = messages("r-1", 2), messages("r-2")
    history = history_of(gone[:1], gone, (), *(kept[: n + 1] for n in range(3)))
    service = (listed("r-1", RunStatus.ROLLED_BACK, 0.001, 0.0205), listed("r-2", RunStatus.SUCCESS, 0.0205, 0.06))
    reads = [read(3, 15, 19, gone), read(3, 40, 41, kept[:2])]
    return Records(RunPolicy.ROLLBACK, [old, new], final(kept, service, history), reads)


SOUND = {"enqueue": enqueued, "reject": rejected, "interrupt": interrupted, "rollback": rolled_back}


@pytest.mark.parametrize("policy", SOUND)
def test_a_sound_service_passes_every_check(policy: str) -> None:
    records = SOUND[policy]()
    assert records.failing() == {}, {name: v.message for name, v in records.failing().items()}


def test_passing_messages_say_how_much_was_judged() -> None:
    verdicts = enqueued().verdicts()
    assert verdicts["one active run"].message == (
        "No two runs were active at once on a thread: judged 3 runs on 1 thread, from 15 message lists and the "
        "service's times of 3 runs; no run's messages were split by another's and no run times overlapped."
    )
    assert verdicts["policy"].message == (
        "Runs followed the enqueue policy: 3 runs on 1 thread (3 success) left the thread's state as the service "
        "reported them (3 messages a run)."
    )
    assert verdicts["reads"].message == (
        "Thread reads were consistent: 4 reads and 10 history states of 1 thread were each a prefix of every later "
        "read and of the final list."
    )
    assert verdicts["isolation"].message == (
        "Other users' threads were refused: all 3 requests by 2 users for threads of others were refused (404 ×3)."
    )
    assert verdicts["streams"].message == (
        "Run streams carried only their own run: 15 events on 3 streams named the run they were streamed for."
    )
    assert "2 runs on 1 thread (1 interrupted, 1 success)" in interrupted().verdicts()["policy"].message
    assert "(1 rolled back, 1 success)" in rolled_back().verdicts()["policy"].message
    assert "2 messages of rolled-back runs left out" in rolled_back().verdicts()["reads"].message
    assert "(2 success, 2 refused)" in rejected().verdicts()["policy"].message


# Each bug switch: caught by its check, and which others it trips


def concurrent_runs() -> Records:
    """Two runs active on the thread at once: their messages interleave in the state, the history and a read."""
    records = enqueued()
    one, two = messages("r-1"), messages("r-2")
    mixed = (one[0], two[0], one[1], two[1], one[2], two[2])
    runs = [attempt(1, "r-1", end_ms=40), attempt(2, "r-2", start_ms=2, end_ms=41)]
    service = (listed("r-1", RunStatus.SUCCESS, 0.001, 0.04), listed("r-2", RunStatus.SUCCESS, 0.002, 0.041))
    return replace(
        records, attempts=runs, final=final(mixed, service, growing(mixed)), reads=[read(3, 20, 21, mixed[:3])]
    )


def test_concurrent_runs_are_caught_by_the_one_active_run_check_only() -> None:
    failing = concurrent_runs().failing()
    assert set(failing) == {"one active run"}
    assert failing["one active run"].message == (
        "Two runs were active at once on 1 of 1 thread: thread t-1: run r-1's message r-1:2 comes after run r-2's "
        "r-2:1, which comes after run r-1's r-1:1 (the final list)."
    )
    assert failing["one active run"].details == [
        {
            "thread": "t-1",
            "runs": "run r-1, run r-2",
            "evidence": "run r-1's message r-1:2 comes after run r-2's r-2:1, which comes after run r-1's r-1:1",
            "where": "the final list",
        }
    ]


def test_concurrent_runs_under_reject_leave_the_policy_check_to_the_one_active_run_check() -> None:
    records = concurrent_runs()
    records.policy = RunPolicy.REJECT
    records.attempts = [replace(run, policy=RunPolicy.REJECT) for run in records.attempts]
    assert set(records.failing()) == {"one active run"}


def test_overlap_shows_in_the_run_list_or_the_history_when_the_list_groups_messages_by_run() -> None:
    grouped = messages("r-1") + messages("r-2")
    runs = [attempt(1, "r-1", end_ms=40), attempt(2, "r-2", start_ms=2, end_ms=41)]
    timed = (listed("r-1", RunStatus.SUCCESS, 10.001, 10.04), listed("r-2", RunStatus.SUCCESS, 10.002, 10.041))
    verdict = check_one_active_run(runs, [final(grouped, timed)])
    assert not verdict.passed
    assert verdict.details[0]["evidence"] == (
        "run r-1 started at 10.001 s and ended at 10.040 s; run r-2 started at 10.002 s (the service's clock)"
    )
    one, two = messages("r-1"), messages("r-2")
    untimed = (listed("r-1", RunStatus.SUCCESS), listed("r-2", RunStatus.SUCCESS))
    history = history_of(one[:1], (one[0], two[0]), (*one[:2], two[0]), (*one, *two))
    verdict = check_one_active_run(runs, [final(grouped, untimed, history)])
    assert not verdict.passed
    assert verdict.details[0]["evidence"] == "run r-1's messages appeared from version 1 to 4, run r-2's from 2 to 4"
    still = (listed("r-1", RunStatus.RUNNING, 10.0), listed("r-2", RunStatus.RUNNING, 10.1))
    verdict = check_one_active_run(runs, [final(grouped, still)])
    assert verdict.details[0]["evidence"] == "the service still lists 2 runs as running after the launch"


def test_runs_back_to_back_on_the_service_clock_and_a_rolled_back_run_are_no_overlap() -> None:
    runs = [attempt(1, "r-1", end_ms=40), attempt(2, "r-2", start_ms=2, end_ms=41)]
    grouped = messages("r-1") + messages("r-2")
    touching = (listed("r-1", RunStatus.SUCCESS, 10.0, 10.04), listed("r-2", RunStatus.SUCCESS, 10.04, 10.08))
    assert check_one_active_run(runs, [final(grouped, touching)]).passed
    assert rolled_back().verdicts()["one active run"].passed


def lost_enqueued_run() -> Records:
    """Run r-2 was replaced in the queue by r-3 and reported succeeded without running."""
    records = enqueued()
    lost = attempt(2, "r-2", start_ms=40, end_ms=41, appended=0)
    kept = messages("r-1") + messages("r-3")
    service = (
        listed("r-1", RunStatus.SUCCESS, 0.001, 0.04),
        listed("r-2", RunStatus.SUCCESS, None, 0.04),
        listed("r-3", RunStatus.SUCCESS, 0.041, 0.08),
    )
    attempts = [records.attempts[0], lost, records.attempts[2]]
    events = [event for run in attempts for event in events_of(run)]
    queued = next(event for event in events if event.run_id == "r-2")
    queued.type = "run_queued"  # it waited in the queue and was then reported done: it never started
    reads = [read(4, 20, 22, kept[:2])]
    return replace(records, attempts=attempts, final=final(kept, service, growing(kept)), reads=reads, events=events)


def test_a_lost_enqueued_run_is_caught_by_the_policy_check_and_its_stream_by_the_ordering_check() -> None:
    # The lost run's stream goes from run_queued to run_completed without run_started: a lifecycle break as well,
    # which the ordering check reports as such (it judges streams, the policy check the thread's state).
    failing = lost_enqueued_run().failing()
    assert set(failing) == {"policy", "ordering"}
    assert failing["ordering"].details[0]["problem"] == "began with run_completed, not run_started"
    assert failing["policy"].message == (
        "Runs broke the enqueue policy: 1 problem on thread t-1 among 3 runs (3 success); first: thread t-1, run r-2 "
        "reported succeeded, but 0 of the 3 messages a run appends are in the thread's state (fewer: it was stopped "
        "or never ran; its stream reported 0 messages)."
    )


def test_enqueued_runs_out_of_the_services_order_are_a_finding() -> None:
    records = enqueued()
    swapped = messages("r-2") + messages("r-1") + messages("r-3")
    records.final = final(swapped, records.final.runs)
    verdict = check_thread_policy(records.attempts, [records.final], policy=RunPolicy.ENQUEUE, messages_per_run=3)
    assert not verdict.passed
    assert verdict.details == [
        {
            "thread": "t-1",
            "run": "",
            "problem": "holds run r-2's messages before run r-1's, but the service ran run r-1 first",
        }
    ]


def test_a_refusal_under_enqueue_and_a_message_twice_are_findings() -> None:
    records = enqueued()
    doubled = (*records.final.messages, records.final.messages[0])
    runs = [*records.attempts, refused(9, request_ms=0, end_ms=1)]
    verdict = check_thread_policy(
        runs, [final(doubled, records.final.runs)], policy=RunPolicy.ENQUEUE, messages_per_run=3
    )
    assert [row["problem"] for row in verdict.details] == [
        "message r-1:1 appears 2 times in the thread's state",
        "refused with 409 under enqueue, which takes every run",
    ]


def rollback_keeps_writes() -> Records:
    records = rolled_back()
    gone, kept = messages("r-1", 2), messages("r-2")
    history = history_of(gone[:1], gone, *((*gone, *kept[: n + 1]) for n in range(3)))
    return replace(records, final=final(gone + kept, records.final.runs, history))


def test_a_rolled_back_runs_writes_left_in_the_state_are_caught_by_the_policy_check_only() -> None:
    failing = rollback_keeps_writes().failing()
    assert set(failing) == {"policy"}
    assert failing["policy"].message.endswith(
        "first: thread t-1, message r-1:1 of run r-1, which the service says it rolled back, is in the thread's "
        "state (and 1 more message)."
    )
    assert failing["policy"].details == [
        {
            "thread": "t-1",
            "run": "run r-1",
            "problem": "message r-1:1 of run r-1, which the service says it rolled back, is in the thread's state "
            "(and 1 more message)",
        }
    ]


def interrupt_reports_success() -> Records:
    """Run r-1 stopped after two messages, and both its stream and the run list say it succeeded."""
    records = interrupted()
    old = replace(records.attempts[0], outcome=RunStatus.SUCCESS)
    service = (listed("r-1", RunStatus.SUCCESS, 0.001, 0.0205), records.final.runs[1])
    return replace(records, attempts=[old, records.attempts[1]], final=replace(records.final, runs=service))


def test_an_interrupted_run_reported_succeeded_is_caught_by_the_policy_check_only() -> None:
    failing = interrupt_reports_success().failing()
    assert set(failing) == {"policy"}
    assert failing["policy"].details[0]["problem"] == (
        "reported succeeded, but 2 of the 3 messages a run appends are in the thread's state (fewer: it was stopped "
        "or never ran; its stream reported 2 messages)"
    )


def test_interrupted_runs_must_keep_exactly_what_their_stream_reported() -> None:
    records = interrupted()
    lost_one = (records.final.messages[0], *records.final.messages[2:])
    verdict = check_thread_policy(
        records.attempts, [final(lost_one, records.final.runs)], policy=RunPolicy.INTERRUPT, messages_per_run=3
    )
    assert [row["problem"] for row in verdict.details] == [
        "reported interrupted after appending r-1:2, not in the thread's state"
    ]


def foreign_thread_readable() -> Records:
    records = enqueued()
    served = [ForeignAccess("user-2", "user-1", "t-1", "state", 200, False), *ISOLATED[1:]]
    return replace(records, accesses=served)


def test_another_users_thread_served_is_caught_by_the_isolation_check_only() -> None:
    failing = foreign_thread_readable().failing()
    assert set(failing) == {"isolation"}
    assert failing["isolation"].message == (
        "Users reached other users' threads: 1 of 3 requests was served, by 1 of 2 users; first: user-2's state "
        "of thread t-1 (owner user-1) was answered 200."
    )


def crossed_streams() -> Records:
    """The thread's runs share one stream writer: once r-2 is asked for (and queued), r-1's events after its
    run_started go to r-2's stream, numbered 2 on as r-1's, and r-1's own stream is cut. The service's state and
    run list are right."""
    records = enqueued()
    first, second, third = records.attempts
    stuck = replace(first, outcome=None, failure=HttpFailure.CUT, messages=[])
    own, later = events_of(first), events_of(second)
    queued = replace_event(later[0], type="run_queued")  # r-2 waits: its stream's seq 1
    for event in later:
        event.seq += 1
    events = [*own[:1], queued, *events_of(second, owner=first)[1:], *later, *events_of(third)]
    return replace(records, attempts=[stuck, second, third], events=events)


def replace_event(event: ReceivedMessage, **fields: object) -> ReceivedMessage:
    """A copy of ``event`` with ``fields`` changed."""
    copy = ReceivedMessage(event.agent, event.user, event.connection, event.t_ns, event.raw)
    for name in ReceivedMessage.__slots__:
        setattr(copy, name, fields.get(name, getattr(event, name)))
    return copy


def test_another_runs_events_on_a_stream_are_caught_by_the_run_stream_check_only() -> None:
    failing = crossed_streams().failing()
    assert set(failing) == {"streams"}
    assert failing["streams"].message == (
        "Run streams carried other runs' events: 4 of 16 events on 1 of 3 streams; run r-2's stream (agent 2, "
        "thread t-1) carried 4 events of run r-1."
    )


# Reads


def test_a_read_that_lost_repeated_or_reordered_messages_is_inconsistent() -> None:
    records = enqueued()
    kept = records.final.messages
    cases = {
        "lacks r-1:3, r-2:1, r-2:2, which agent 4's state read at 50.0 ms (ended before it started) held": read(
            6, 70, 71, kept[:2]
        ),
        "holds r-1:1 twice": read(6, 70, 71, (kept[0], kept[0])),
        "has r-1:3 at position 2, where the final list has r-1:2": read(6, 70, 71, (kept[0], kept[2])),
        "holds x:1, which the final list lost": read(6, 70, 71, (*kept[:1], ThreadMessage("x:1"))),
    }
    for problem, bad in cases.items():
        verdict = check_thread_reads(records.attempts, [records.final], [*records.reads, bad])
        assert not verdict.passed
        assert [row["problem"] for row in verdict.details] == [problem], verdict.details


def test_a_shorter_read_that_overlapped_a_longer_one_in_time_is_consistent() -> None:
    records = enqueued()
    kept = records.final.messages
    overlapping = [read(4, 10, 60, kept[:5]), read(5, 55, 70, kept[:2])]  # the second began before the first ended
    assert check_thread_reads(records.attempts, [records.final], overlapping).passed


def test_a_history_that_loses_a_message_is_inconsistent() -> None:
    kept = messages("r-1")
    history = history_of(kept[:1], kept[:2], kept[:1], kept)
    records = replace(enqueued(), final=final(kept, (listed("r-1", RunStatus.SUCCESS),), history), reads=[])
    verdict = check_thread_reads(records.attempts, [records.final], [])
    assert verdict.details == [
        {"thread": "t-1", "list": "history state 3", "problem": "lacks r-1:2, which history state 2 held"}
    ]


# Nothing to judge, and what prevented judging


def test_each_check_is_inconclusive_over_nothing_and_says_what_was_missing() -> None:
    verdicts = {
        "one active run": check_one_active_run([], []),
        "policy": check_thread_policy([], [], policy=RunPolicy.REJECT, messages_per_run=3),
        "reads": check_thread_reads([], [], []),
        "isolation": check_foreign_access_refused([]),
        "streams": check_run_streams([], []),
    }
    assert all(verdict.inconclusive and not verdict.passed for verdict in verdicts.values())
    assert {name: verdict.message for name, verdict in verdicts.items()} == {
        "one active run": "One active run per thread not judged: no run on 0 threads left a message in the "
        "thread's lists or times in the service's run list.",
        "policy": "The reject policy not judged: no run on 0 threads was refused or reported how it ended with its "
        "thread's state read.",
        "reads": "Thread reads not judged: no read of a thread's messages during the launch and no history state to "
        "compare with the final list.",
        "isolation": "Thread isolation not judged: no request for another user's thread was made (it takes two "
        "users with threads).",
        "streams": "Run streams not judged: no event on the streams of 0 run requests carried a marker or a run id.",
    }


def test_requests_that_failed_are_named_and_a_thread_not_read_is_not_judged() -> None:
    unreachable = attempt(1, None, status=None, failure=HttpFailure.CONNECT_FAILED)
    erred = attempt(2, None, status=500, failure=HttpFailure.HTTP_ERROR, policy=RunPolicy.REJECT)
    verdict = check_thread_policy([unreachable, erred], [], policy=RunPolicy.REJECT, messages_per_run=3)
    assert verdict.inconclusive and verdict.message.endswith("; not judged: thread t-1 (not read after the launch).")
    empty = final((), ())
    verdict = check_thread_policy(
        [unreachable, erred], [empty], policy=RunPolicy.REJECT, messages_per_run=3, refusal_statuses=[409]
    )
    assert verdict.inconclusive
    assert (
        "the run agent 1 asked for (marker m-agent-1) on thread t-1 (the service never said how it ended: "
        "connect_failed)" in verdict.message
    )
    assert (
        "the run agent 2 asked for (marker m-agent-2) on thread t-1 (answered 500, not a refusal status (409))"
        in verdict.message
    )
    failed_read = ThreadRead(3, "user-1", "t-1", 0, MS, 503, None)
    records = enqueued()
    verdict = check_thread_reads(records.attempts, [records.final], [*records.reads, failed_read])
    assert verdict.passed and "; 1 read failed (status 503) and were not judged." in verdict.message
    unanswered = ForeignAccess("user-2", "user-1", "t-1", "state", None, False, "connection refused")
    verdict = check_foreign_access_refused([unanswered])
    assert verdict.inconclusive and "none was answered" in verdict.message and "connection refused" in verdict.message


# Reject: when a refusal is itself a finding


def test_a_refusal_while_no_other_run_can_have_been_active_is_a_finding() -> None:
    records = rejected()
    idle = refused(6, request_ms=45, end_ms=46)  # r-1's end arrived at 40 ms, r-4 was asked for at 50 ms
    verdict = check_thread_policy(
        [*records.attempts, idle], [records.final], policy=RunPolicy.REJECT, messages_per_run=3
    )
    assert not verdict.passed
    assert verdict.details == [
        {
            "thread": "t-1",
            "run": "the run agent 6 asked for (marker m-agent-6)",
            "problem": "refused with 409 while no other run can have been active on the thread: run r-1 had ended "
            "5.0 ms before it was asked for; run r-4 was asked for 4.0 ms after the refusal",
        }
    ]


def test_a_refusal_while_a_run_may_still_have_been_active_is_no_finding() -> None:
    # Tricky timing: asked for at 39 ms, refused at 41 ms; r-1's end arrived at 40 ms, so it may still have run.
    records = rejected()
    close = refused(6, request_ms=39, end_ms=41)
    verdict = check_thread_policy(
        [*records.attempts, close], [records.final], policy=RunPolicy.REJECT, messages_per_run=3
    )
    assert verdict.passed, verdict.message


def test_a_run_answered_with_an_error_may_have_been_active_one_never_connected_not() -> None:
    records = rejected()
    idle = refused(6, request_ms=45, end_ms=46)
    erred = attempt(7, None, request_ms=44, end_ms=47, status=500, failure=HttpFailure.HTTP_ERROR)
    runs = [*records.attempts, idle, erred]
    assert check_thread_policy(runs, [records.final], policy=RunPolicy.REJECT, messages_per_run=3).passed
    unconnected = replace(erred, status=None, failure=HttpFailure.CONNECT_FAILED)
    runs = [*records.attempts, idle, unconnected]
    assert not check_thread_policy(runs, [records.final], policy=RunPolicy.REJECT, messages_per_run=3).passed


def test_a_refused_run_that_left_messages_is_a_finding() -> None:
    records = rejected()
    leaked = (*records.final.messages, ThreadMessage("x:1", None, "m-agent-2"))
    verdict = check_thread_policy(
        records.attempts, [final(leaked, records.final.runs)], policy=RunPolicy.REJECT, messages_per_run=3
    )
    assert [row["problem"] for row in verdict.details] == [
        "refused with 409, but its messages x:1 are in the thread's state"
    ]


# Contamination and ordering on SSE streams


def test_contamination_and_ordering_judge_sse_events_as_websocket_frames() -> None:
    records = enqueued()
    events = records.stream_events()
    assert check_event_ordering(events, lifecycle=LIFECYCLE, failures=FAILURES).passed
    seqs_only = check_event_ordering(events, lifecycle=(), failures=())  # as the keyword judges an HTTP tool
    assert seqs_only.message == (
        "Events arrived in order: 15 sequence numbers on 3 connections rose by 1 each without gaps; runs' "
        "lifecycles not checked."
    )
    other_user = attempt(7, "r-7", user="user-2", thread="t-2")
    leaked = [*events, *events_of(records.attempts[0], owner=other_user)[1:2]]
    verdict = check_no_contamination(
        leaked, marker_owners={run.marker: run.user for run in [*records.attempts, other_user]}
    )
    assert not verdict.passed and "user-1 received messages of user-2" in verdict.message
    assert not check_run_streams(records.attempts, leaked).passed
    # Another run's events on a stream carry that run's numbers: they neither break nor move on the stream's own.
    crossed = crossed_streams().stream_events()
    verdict = check_event_ordering(crossed, lifecycle=LIFECYCLE, failures=FAILURES)
    assert verdict.passed, verdict.message
    events[1].seq = 3  # a gap on r-1's stream
    assert not check_event_ordering(events, lifecycle=LIFECYCLE, failures=FAILURES).passed


# Services whose messages name no run


def bare(listed_messages: tuple[ThreadMessage, ...]) -> tuple[ThreadMessage, ...]:
    """The messages as a service that names no run or marker in them lists them: ids only."""
    return tuple(ThreadMessage(message.id) for message in listed_messages)


def test_messages_that_name_no_run_belong_to_the_run_whose_stream_reported_them() -> None:
    records = concurrent_runs()
    unnamed = final(bare(records.final.messages), records.final.runs)
    verdict = check_one_active_run(records.attempts, [unnamed])
    assert not verdict.passed and verdict.details[0]["runs"] == "run r-1, run r-2"
    sound = enqueued()
    unnamed = final(bare(sound.final.messages), sound.final.runs)
    assert check_thread_policy(sound.attempts, [unnamed], policy=RunPolicy.ENQUEUE, messages_per_run=3).passed


def test_while_messages_name_no_known_run_how_many_a_run_kept_is_not_judged() -> None:
    records = interrupt_reports_success()
    greeting = ThreadMessage("welcome")  # a message of the service's own, of no run
    with_greeting = final((greeting, *records.final.messages), records.final.runs)
    verdict = check_thread_policy(records.attempts, [with_greeting], policy=RunPolicy.INTERRUPT, messages_per_run=3)
    assert verdict.passed
    assert verdict.message.endswith(
        "; not judged: how many messages each run kept on thread t-1 (1 message of no run there)."
    )
