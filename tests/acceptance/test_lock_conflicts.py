"""Lock conflicts end to end: every lock keeps its holders apart, work past the lease and the broken lock are caught
with the overlapping intervals, fencing keeps the data right; the must-fail twins fail in their checks."""

from __future__ import annotations

import json
import re

import pytest
from robot.result import Keyword

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    keywords_in,
    logged,
    run_robot,
)

SUITE = "suites/lock_conflicts"
TWINS = ROBOT_DIR / "failing_twins" / "locks.robot"
THIRD_PARTY = ROBOT_DIR / "third_party_locks.robot"
SHORT_WORK = {
    "Stampede's Own Redis Lock Keeps Holders Apart": "stampede redis",
    "Redis-py's Lock Keeps Holders Apart": "redis-py",
    "PostgreSQL Session Advisory Lock Keeps Holders Apart": "advisory session",
    "PostgreSQL Transaction Advisory Lock Keeps Holders Apart": "advisory transaction",
    "SELECT FOR UPDATE On A Lock Row Keeps Holders Apart": "for update",
    "A User-Supplied asyncio Lock Keeps Holders Apart": "python:stampede.locks.in_process:asyncio_lock",
    "A User-Supplied threading Lock Keeps Holders Apart": "python:stampede.locks.in_process:threading_lock",
}
STALLED = "Holders Stalled Past The Lease Overlap The Next Holder"
FENCED = "Fencing Refuses The Stale Writes And The Data Stays Right"
REDIS_PY_LONG = "Every Holder Working Longer Than A Redis-py Lease Overlaps The Next"
BROKEN = "The Broken Lock Is Caught Granting Itself Twice"
CORRECT_UNDER_STALLS = "Stampede's Own Lock Under The Same Stalls Is Never Granted Twice"
SESSIONS = "Each User Has At Most One Active Session"
BROKEN_SESSIONS = "A Registry That Deletes Any Session Lets A User In Twice"
SUITE_TESTS = [*SHORT_WORK, STALLED, FENCED, REDIS_PY_LONG, BROKEN, CORRECT_UNDER_STALLS, SESSIONS, BROKEN_SESSIONS]
SPAN = r"[\d.]+–[\d.]+ ms"
AMOUNT = r"[\d.]+ (?:µs|ms)"
TIMES = r"[1-9]\d* times?"
NOTE = (
    r"^Lock (?P<lock>\S+(?: \S+)?): (?P<attempts>\d+) attempts, (?P<violations>\d+) violations, "
    r"(?P<inconclusive>\d+) inconclusive overlaps, (?P<not_owned>\d+) not-owned releases, "
    r"acquire p95 (?P<p95>[\d.]+) (?P<unit>µs|ms|s)\.$"
)
GRANTED_TWICE = (
    rf"^Lock granted twice: {TIMES} lock 'guard' let a second agent in while the holder was inside its "
    rf"lease and had not released\. First: agent \d held it {SPAN} \(100\.0 ms lease from [\d.]+ ms\) and "
    rf"agent \d {SPAN}, both at once for {AMOUNT}"
)
OUTLIVED_OVERLAP = (
    rf"^Holders overlapped: {TIMES} two agents held lock 'guard' at once \([1-9]\d* after the earlier "
    rf"holder's lease could have run out: it outlived its lease\)\. First: agent \d held it {SPAN} "
    rf"\(50\.0 ms lease from [\d.]+ ms\) and agent \d {SPAN}, both at once for {AMOUNT}"
)
TWIN_FAILURES: dict[str, list[str]] = {
    "Broken Lock Grants Itself Twice": [GRANTED_TWICE],
    "Holders Overlap When The Lease Is Shorter Than The Work": [OUTLIVED_OVERLAP],
    "Releases Answer Not Owned When The Lease Is Shorter Than The Work": [
        r"^Holders outlived their leases: 12 of 12 holders were still working when their 50\.0 ms lease had surely "
        r"run out \(held up to [\d.]+ ms\); 12 releases answered \"not owned\" \(agents 1, 2, 3, 4\)\.$"
    ],
    "Without Fencing The Stale Writes Go Through": [
        r"^Fencing did not hold: [1-9]\d* stale access(?:es)? accepted: a fencing number below the highest the "
        r"resource had seen \(first: agent \d's write with fence \d+ at [\d.]+ ms, after the resource had seen \d+\)",
        r"Fencing is off: the resource takes every write\.$",
    ],
    "Without Fencing Increments Are Lost": [
        r"^Protected data went wrong: the counter guarded by lock 'guard' stands at \d+ after 24 accepted writes: "
        r"[1-9]\d* increments? lost to holders working at once; e\.g\. agent \d read \d+ and wrote it back plus one "
        r"over [1-9]\d* increments? made while it worked"
    ],
    "A Session Registry That Deletes Any Session Lets A User In Twice": [
        rf"^Users had two sessions active at once: [12] of 2 users \(user-[12](?:, user-2)?\), up to [2-4] sessions "
        rf"of one user at once; user-[12]'s sessions of agents \d \({SPAN}\) and \d \({SPAN}\) were both active for "
        rf"{AMOUNT}"
    ],
    "Fencing Cannot Be Judged Without Fencing Numbers": [
        r"^Fencing not judged: the redis-py lock issued no fencing numbers, so the resource had none to check\. Use "
        r"a lock that issues them \(stampede redis, advisory session, advisory transaction, for update\)\.$"
    ],
}


THIRD_PARTY_PASSING = {
    "Python-redis-lock Used As Its README Shows Keeps Holders Apart": r"^No two holders at once: 20 holds of lock",
    "Pottery's Redlock Used As Its README Shows Keeps Holders Apart": r"^No two holders at once: 20 holds of lock",
    "Allowed Errors Leave The Shared Object's Holds Judged And Counted": (
        r"^The protected data is right: the counter guarded by lock 'allowed' stands at \d+ after \d+ accepted "
        r"writes?\. Not judged, as errors are allowed: [1-9]\d* of 20 acquires raised 'AlreadyAcquired: Already "
        r"acquired from this Lock instance\.' \(\d+×\)"
    ),
}
UNTOLD = "A Redlock Lease The Tool Was Not Told Of Is Pointed At"
UNTOLD_LEASE = (
    r'The lock has a lease Stampede was not told of: [1-9]\d* releases? answered "not owned" though the tool '
    r"declares no lease, so a hold the lock ended on its own counts as held until its release, and the next holder "
    r"as let in while it was\. Declare the lock's lease with Define Lock Tool lease=…\."
)
THIRD_PARTY_FAILURES: dict[str, list[str]] = {
    "One Python-redis-lock Object Shared By Every Agent Raises": [
        r"^Lock attempts raised: [1-9]\d* of 20 acquires raised 'AlreadyAcquired: Already acquired from this Lock "
        r"instance\.' \(\d+×\)[.;,] ",
        r"fix the lock or its adapter, or allow them with errors_allowed=True\. On the rest: ",
    ],
    "Redlock Releases That Raise After The Lease Are Named": [
        r"^Lock attempts raised: 20 of 20 releases raised 'ReleaseUnlockedLock: \('redlock:stampede:\w+:lock:raising'",
        r"On the rest: Nothing to judge: no release of the lock answered\.$",
    ],
    UNTOLD: [rf"^{UNTOLD_LEASE} Judged without it: Lock granted twice: "],
    "An asyncio Lock Made For Each Agent Keeps No One Out": [
        rf"^Holders overlapped: {TIMES} two agents held lock 'alone' at once \([1-9]\d* inside both holders' "
        r"leases: the lock was granted twice\)"
    ],
    "Fencing With A Lock That Issues No Numbers Is Refused When Defined": [
        r"^Fencing needs fencing numbers, and the python:tests\.integration\.lock_adapters:PotteryRedlock lock "
        r"issues none: use stampede redis, advisory session, advisory transaction or for update, or make its lock "
        r"objects say issues_fences = True and return the number from acquire\(\), or fencing=off\.$"
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("lock_conflicts"), SUITE, TWINS, THIRD_PARTY)


def _note(run: RobotRun, test: str) -> dict[str, str]:
    (note,) = logged(run, test, NOTE)
    return note.groupdict()


def _expected_failure(run: RobotRun, test: str, check: str) -> str:
    """The message of ``check``, which the test ran inside Run Keyword And Expect Error and which failed there."""
    (found,) = [kw for kw in keywords_in(run.test(test)) if kw.name == check]
    assert isinstance(found.parent, Keyword) and found.parent.name == "Run Keyword And Expect Error"
    assert found.status == "FAIL" and found.parent.status == "PASS"
    return found.message


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, *SUITE_TESTS)
    assert run.child_suite("Lock Conflicts").status == "PASS"


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_check_with_the_intervals(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_only_the_twins_fail(run: RobotRun) -> None:
    assert run.returncode == len(TWIN_FAILURES) + len(THIRD_PARTY_FAILURES), run.console
    assert {test.name for test in run.child_suite("Locks").tests} == set(TWIN_FAILURES)
    failed = {test.name for test in run.child_suite("Third Party Locks").tests if test.status == "FAIL"}
    assert failed == set(THIRD_PARTY_FAILURES)


@pytest.mark.parametrize("name", sorted(THIRD_PARTY_PASSING))
def test_third_party_locks_used_right_pass_every_check(run: RobotRun, name: str) -> None:
    assert_passed(run, name)
    assert logged(run, name, THIRD_PARTY_PASSING[name]), name


def test_the_lock_summary_counts_the_calls_that_raised(run: RobotRun) -> None:
    assert logged(
        run,
        "One Python-redis-lock Object Shared By Every Agent Raises",
        r"^Lock calls that raised: [1-9]\d* of 20 acquires raised 'AlreadyAcquired: ",
    )


@pytest.mark.parametrize("name", sorted(THIRD_PARTY_FAILURES))
def test_third_party_locks_used_naively_fail_in_their_check_for_their_own_cause(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *THIRD_PARTY_FAILURES[name])


def test_a_lease_the_tool_was_not_told_of_is_a_warning_of_the_run(run: RobotRun) -> None:
    warnings = [m.message for m in run.result.errors.messages if m.level == "WARN"]
    assert [w for w in warnings if re.search(rf"^Launch \d+ of lock tool 'untold': {UNTOLD_LEASE}$", w)], warnings


def test_a_python_lock_given_no_key_and_no_redis_is_a_warning_when_defined(run: RobotRun) -> None:
    warnings = [m.message for m in run.result.errors.messages if m.level == "WARN"]
    assert (
        "Lock tool 'alone': python:asyncio:Lock is given no key and no Redis, and each agent gets a lock object of "
        "its own: unless those objects share state, the lock excludes no one. For an in-process lock shared by "
        "every agent, use python:stampede.locks.in_process:asyncio_lock (or threading_lock)."
    ) in warnings, warnings


@pytest.mark.parametrize("name", sorted(SHORT_WORK))
def test_each_lock_with_work_shorter_than_the_lease_has_no_violation(run: RobotRun, name: str) -> None:
    note = _note(run, name)
    assert note["lock"] == SHORT_WORK[name]
    assert (note["attempts"], note["violations"], note["inconclusive"], note["not_owned"]) == ("40", "0", "0", "0")
    assert float(note["p95"]) > 0
    assert logged(
        run,
        name,
        r"^No two holders at once: 40 holds of lock 'guard' by 5 agents, one after another\. "
        r"The closest hand-over left [\d.]+ (?:µs|ms) between one holder and the next\.$",
    )
    assert logged(
        run,
        name,
        r"^The protected data is right: the counter guarded by lock 'guard' stands at 40 after "
        r"40 accepted writes\.$",
    )


def test_holders_stalled_past_the_lease_overlap_release_not_owned_and_lose_increments(run: RobotRun) -> None:
    note = _note(run, STALLED)
    assert int(note["violations"]) > 0 and int(note["not_owned"]) == 10, note  # 40 grants, every 4th stalls
    overlap = _expected_failure(run, STALLED, "Holders Should Never Overlap")
    assert re.search(
        rf"^Holders overlapped: {TIMES} two agents held lock 'guard' at once \([1-9]\d* after the "
        rf"earlier holder's lease could have run out: it outlived its lease\)\. First: agent \d held it "
        rf"{SPAN} \(100\.0 ms lease from [\d.]+ ms\) and agent \d {SPAN}",
        overlap,
    ), overlap
    assert logged(
        run,
        STALLED,
        r"^The lock never granted itself twice: 40 grants of lock 'guard'.* 10 of the holders "
        r"worked past their 100\.0 ms lease",
    )
    lost = _expected_failure(run, STALLED, "No Update Should Be Lost")
    assert lost.startswith("Protected data went wrong: the counter guarded by lock 'guard' stands at "), lost


def test_with_fencing_on_the_stale_writes_are_refused_and_the_data_stays_right(run: RobotRun) -> None:
    (fenced,) = logged(
        run,
        FENCED,
        r"^Fencing held: the fencing numbers of (\d+) accepted writes to the resource of "
        r"lock 'guard' only rose, from \d+ to \d+; the resource refused (\d+) holders "
        r"that came back with a stale number",
    )
    accepted, refused = map(int, fenced.groups())
    assert refused > 0 and accepted + refused == 40
    assert logged(
        run,
        FENCED,
        rf"^The protected data is right: the counter guarded by lock 'guard' stands at "
        rf"{accepted} after {accepted} accepted writes; {refused} stale writes? refused\.$",
    )


def test_every_redis_py_release_after_the_lease_answers_not_owned(run: RobotRun) -> None:
    note = _note(run, REDIS_PY_LONG)
    assert (note["lock"], note["attempts"], note["not_owned"]) == ("redis-py", "16", "16")
    assert logged(run, REDIS_PY_LONG, r'^16 releases answered "not owned"\.$')


def test_the_broken_lock_is_caught_with_the_overlapping_intervals_where_the_correct_one_is_not(run: RobotRun) -> None:
    message = _expected_failure(run, BROKEN, "Lock Should Never Be Granted Twice")
    assert re.search(GRANTED_TWICE, message), message
    overlap = _expected_failure(run, BROKEN, "Holders Should Never Overlap")
    assert "inside both holders' leases: the lock was granted twice" in overlap
    assert logged(run, CORRECT_UNDER_STALLS, r"^The lock never granted itself twice: 40 grants of lock 'guard'")


def test_each_user_has_at_most_one_active_session_and_the_broken_registry_is_caught(run: RobotRun) -> None:
    assert logged(
        run,
        SESSIONS,
        r"^At most one active session per user: 100 sessions of 5 users who ran several "
        r"agents; no user ever had two sessions active at once\.$",
    )
    message = _expected_failure(run, BROKEN_SESSIONS, "Each User Should Have At Most One Active Session")
    assert re.search(
        rf"^Users had two sessions active at once: [1-5] of 5 users .* were both active for {AMOUNT}", message
    ), message


def test_histories_record_every_attempt_with_its_times_holder_token_fence_and_lease(run: RobotRun) -> None:
    (path,) = (run.output_dir / "histories").glob("Stampede_s_Own_Redis_Lock_Keeps*.jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 40
    for record in records:
        written = record["written"]
        assert written["holder"] == record["agent"] and written["lease_ns"] == 500_000_000
        assert written["acquire"][0] <= written["acquire"][1] <= written["release"][0] <= written["release"][1]
        assert written["token"] and written["release_answer"] == "released" and written["fence"] >= 1
        assert record["read"]["accepted"] and written["write"]["accepted"]
    assert len({record["written"]["fence"] for record in records}) == 40


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
