"""Interleavings without a server: the spec and its permutation notation, outcome wording, assertions, tables."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from stampede.errors import ConfigurationError
from stampede.interleavings import expectations
from stampede.interleavings.evidence import Observation, SessionCommits, StepReturns, check_evidence, observe
from stampede.interleavings.expectations import OutcomeMismatch
from stampede.interleavings.outcome import (
    EntryKind,
    PermutationRun,
    ResultSet,
    Row,
    SessionTransaction,
    StepOutcome,
    TimelineEntry,
    TransactionState,
)
from stampede.interleavings.spec import InterleavingSpec, Session, Step, count_statements
from stampede.interleavings.table import AnomalyMatrix, timeline_table
from stampede.workloads.isolation import IsolationLevel

MS = 1_000_000


def two_sessions(isolation: IsolationLevel = IsolationLevel.READ_COMMITTED) -> InterleavingSpec:
    spec = InterleavingSpec()
    spec.add_session("T1", isolation)
    spec.add_session("T2", isolation)
    for session, step, sql in [
        ("T1", "r1", "SELECT 1"),
        ("T2", "w2", "UPDATE t SET v = 1"),
        ("T1", "c1", "COMMIT"),
        ("T2", "c2", "COMMIT"),
    ]:
        spec.add_step(session, step, sql)
    return spec


# --------------------------------------------------------------------------- statements


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT 1", 1),
        ("SELECT 1;", 1),
        ("  ;; ", 0),
        ("", 0),
        ("SELECT 1; SELECT 2", 2),
        ("SELECT ';' AS semicolon", 1),
        ("SELECT 'it''s; here'", 1),
        ("SELECT E'back\\'slash; still' AS s", 1),
        ('SELECT 1 AS "odd;name"', 1),
        ("SELECT $$ ; $$, $fn$ ; $fn$", 1),
        ("SELECT 1 -- a comment; not a statement\n", 1),
        ("SELECT /* nested /* ; */ ; */ 1", 1),
        ("UPDATE t SET v = 1; -- trailing\n", 1),
        ("DO $$BEGIN PERFORM 1; END$$; SELECT 2", 2),
    ],
)
def test_statements_are_counted_without_semicolons_in_quotes_and_comments(sql: str, count: int) -> None:
    assert count_statements(sql) == count


# --------------------------------------------------------------------------- spec


def test_sessions_and_steps_are_defined_in_order() -> None:
    spec = two_sessions(IsolationLevel.SERIALIZABLE)
    assert [s.isolation for s in spec.sessions.values()] == [IsolationLevel.SERIALIZABLE] * 2
    assert [step.name for step in spec.session_steps("T1")] == ["r1", "c1"]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda spec: spec.add_session("T1"), r"Session 'T1' is defined twice"),
        (lambda spec: spec.add_session("w2"), r"'w2' already names a step"),
        (lambda spec: spec.add_session("1st"), r"A session name '1st' cannot be used: write letters, digits and _"),
        (lambda spec: spec.add_step("T1", "has space", "SELECT 1"), r"A step name 'has space' cannot be used"),
        (
            lambda spec: spec.add_step("T3", "r3", "SELECT 1"),
            r"Step 'r3' names session 'T3', which is not defined \(defined: T1, T2\)",
        ),
        (
            lambda spec: spec.add_step("T1", "w2", "SELECT 1"),
            r"Step 'w2' is defined twice \(for session T2\): step names must be unique across sessions",
        ),
        (lambda spec: spec.add_step("T1", "T2", "SELECT 1"), r"'T2' already names a session"),
        (lambda spec: spec.add_step("T1", "none", " ; "), r"Step 'none' of session T1 holds no SQL statement"),
        (
            lambda spec: spec.add_session("T3", "READ_COMMITTED_ISH"),
            r"'READ_COMMITTED_ISH' is not an isolation level: write one of 'read committed', 'repeatable read', "
            r"'serializable'",
        ),
    ],
)
def test_a_bad_definition_is_refused_saying_what_to_fix(
    action: Callable[[InterleavingSpec], object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        action(two_sessions())


def test_a_permutation_is_written_as_step_names_in_one_string_or_several() -> None:
    spec = two_sessions()
    expected = ("r1", "w2", "c1", "c2")
    assert tuple(step.name for step in spec.permutation("r1 w2  c1 c2")) == expected
    assert tuple(step.name for step in spec.permutation(["r1 w2", "c1", "c2"])) == expected
    assert tuple(step.name for step in spec.permutation("c2 r1")) == ("c2", "r1"), "any subset, any order"


@pytest.mark.parametrize(
    ("notation", "message"),
    [
        ("", r"The permutation is empty: name the steps to run in order, e.g. 'r1 w2 c1 c2'"),
        ("r1 x9 c1", r"The permutation names 'x9', which is not a defined step \(defined: r1, w2, c1, c2\)"),
        ("r1 x9 y9", r"names 'x9', 'y9', which are not defined steps"),
        ("r1 w2(", r"cannot be read: the blockers of step 'w2' end before '\)'"),
        ("w2(c1) r1", r"cannot be run: step 'w2' waits for step 'c1', which this permutation does not run"),
        ("w2 c2(w2)", r"cannot be run: step 'c2' cannot wait for 'w2': both belong to session T2"),
    ],
)
def test_a_bad_permutation_is_refused_saying_what_to_fix(notation: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        two_sessions().permutation(notation)


def test_a_permutation_may_run_a_step_again_quote_names_and_annotate_blockers() -> None:
    spec = two_sessions()
    places = spec.permutation('r1 "w2"(r1, c1 notices 2) r1 c1(*)')
    assert [place.label for place in places] == ["r1", "w2", "r1#2", "c1"]
    assert [str(blocker) for blocker in places[1].blockers] == ["r1", "c1 notices 2"]
    assert [str(blocker) for blocker in places[3].blockers] == ["*"]
    assert spec.add_session("T3", "READ_COMMITTED").isolation is IsolationLevel.READ_COMMITTED


def test_a_permutation_needs_steps() -> None:
    with pytest.raises(ConfigurationError, match="No step is defined"):
        InterleavingSpec().permutation("a b")


def test_every_permutation_keeps_each_sessions_order_and_covers_every_interleaving() -> None:
    spec = two_sessions()
    spec.add_session("T3")
    spec.add_step("T3", "r3", "SELECT 3")
    permutations = spec.every_permutation()
    assert spec.permutation_count() == len(permutations) == math.factorial(5) // (2 * 2 * 1) == 30
    assert len(set(permutations)) == 30
    for steps in permutations:
        names = [step.name for step in steps]
        assert names.index("r1") < names.index("c1") and names.index("w2") < names.index("c2")


def test_too_many_permutations_are_refused_with_the_count() -> None:
    with pytest.raises(ConfigurationError, match=r"interleave in 6 permutations, more than the limit of 5"):
        two_sessions().every_permutation(limit=5)


# --------------------------------------------------------------------------- outcomes and assertions


def outcome(name: str, session: str, sql: str, rows: list[Row] | None = None, **fields: object) -> StepOutcome:
    """A step's outcome; ``rows`` are what its one statement returned (columns ``a``, ``b``, ...)."""
    results = []
    if rows is not None:
        columns = tuple("abcdefgh"[: len(rows[0])]) if rows else ("a",)
        results = [ResultSet(columns, tuple(rows), str(fields.get("status", "SELECT")))]
    return StepOutcome(Step(name, session, sql), results=results, **fields)  # type: ignore[arg-type]


def run_of(
    *outcomes: StepOutcome,
    isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
    transactions: dict[str, SessionTransaction] | None = None,
) -> PermutationRun:
    spec = InterleavingSpec()
    for o in outcomes:
        if o.step.session not in spec.sessions:
            spec.add_session(o.step.session, isolation)
    return PermutationRun(
        sessions=spec.sessions,
        permutation=tuple(o.name for o in outcomes),
        outcomes={o.name: o for o in outcomes},
        timeline=[TimelineEntry(o.step.session, o.name, o.result(), EntryKind.COMPLETED, o) for o in outcomes],
        transactions=transactions or {name: SessionTransaction(s) for name, s in spec.sessions.items()},
        server_version="18.0",
    )


SHOWN = Observation(True, ("evidence held",))
NOT_SHOWN = Observation(False, ("evidence did not hold",))
UPDATE = "UPDATE il_test SET value = 11 WHERE id = 1"
SERIALIZATION = "could not serialize access due to concurrent update"
RESUMED = outcome("w2", "T2", UPDATE, finished_ns=5 * MS, status="UPDATE 1", blocked_by=("T1",), blocked_ns=2 * MS)
REFUSED = outcome(
    "w2", "T2", UPDATE, finished_ns=5 * MS, sqlstate="40001", error=SERIALIZATION, blocked_by=("T1",), blocked_ns=2 * MS
)
READ = outcome(
    "r1",
    "T1",
    "SELECT id, value FROM il_test",
    finished_ns=MS,
    status="SELECT 2",
    rows=[("1", "10"), ("2", None)],
)


def test_outcomes_read_as_what_happened() -> None:
    assert RESUMED.result() == "UPDATE 1"
    assert RESUMED.story() == "blocked waiting for T1 for 3.0 ms, then succeeded with UPDATE 1"
    assert REFUSED.result() == f"ERROR 40001: {SERIALIZATION}"
    assert READ.result() == "2 rows: 1, 10 | 2, NULL"
    assert READ.story() == "ran without blocking and succeeded with 2 rows: 1, 10 | 2, NULL"
    stuck = outcome("l2", "T2", UPDATE, blocked_by=("T1",), blocked_ns=1, cancelled="T1 had nothing left to run")
    assert stuck.story() == "blocked waiting for T1 and never resumed: T1 had nothing left to run"
    returning = outcome("w", "T1", UPDATE + " RETURNING value", finished_ns=1, status="UPDATE 1", rows=[("11",)])
    assert returning.result() == "UPDATE 1: 1 row: 11"


def test_step_assertions_pass_on_what_happened() -> None:
    run = run_of(READ, RESUMED)
    expectations.step_should_block(run, "w2")
    expectations.step_should_not_block(run, "r1")
    expectations.step_should_succeed(run, "w2", "UPDATE  1")
    expectations.step_should_return(run, "r1", ["1,10", " 2 , NULL "])
    expectations.step_should_fail_with(run_of(REFUSED), "w2", "40001")


@pytest.mark.parametrize(
    ("check", "args", "message"),
    [
        (
            expectations.step_should_block,
            ("r1",),
            "Step r1 (T1: SELECT id, value FROM il_test) did not block: it ran without blocking and "
            "succeeded with 2 rows",
        ),
        (
            expectations.step_should_not_block,
            ("w2",),
            f"Step w2 (T2: {UPDATE}) blocked: it blocked waiting for T1 for 3.0 ms, then succeeded with UPDATE 1.",
        ),
        (
            expectations.step_should_fail_with,
            ("w2", "40001"),
            f"Step w2 (T2: {UPDATE}) did not fail with 40001: it blocked waiting for T1 for 3.0 ms, "
            "then succeeded with UPDATE 1.",
        ),
        (
            expectations.step_should_succeed,
            ("w2", "UPDATE 2"),
            f"Step w2 (T2: {UPDATE}) succeeded with UPDATE 1, expected UPDATE 2.",
        ),
        (
            expectations.step_should_return,
            ("r1", ["1, 10"]),
            "Step r1 (T1: SELECT id, value FROM il_test) returned 2 rows: 1, 10 | 2, NULL, expected 1 row: 1, 10.",
        ),
        (
            expectations.step_should_return,
            ("r1", []),
            "Step r1 (T1: SELECT id, value FROM il_test) returned 2 rows: 1, 10 | 2, NULL, expected no rows.",
        ),
    ],
)
def test_a_step_assertion_that_misses_says_what_the_step_really_did(
    check: Callable[..., None], args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(OutcomeMismatch) as raised:
        check(run_of(READ, RESUMED), *args)
    assert str(raised.value).startswith(message)


def test_a_failed_step_has_no_rows_to_compare() -> None:
    with pytest.raises(
        OutcomeMismatch,
        match=r"returned no rows to compare with 1 row: 10: it blocked waiting for T1 "
        r"for 3\.0 ms, then failed with 40001: could not serialize",
    ):
        expectations.step_should_return(run_of(REFUSED), "w2", ["10"])
    with pytest.raises(OutcomeMismatch, match=r"did not succeed: it blocked waiting for T1 for 3\.0 ms, then failed"):
        expectations.step_should_succeed(run_of(REFUSED), "w2")


def test_assertions_refuse_unknown_steps_sessions_and_sqlstates() -> None:
    run = run_of(READ)
    with pytest.raises(ConfigurationError, match=r"Step 'zz' did not run in permutation 'r1'"):
        expectations.step_should_block(run, "zz")
    with pytest.raises(ConfigurationError, match=r"Session 'T9' is not part of permutation 'r1' \(sessions: T1\)"):
        expectations.session_should_commit(run, "T9")
    with pytest.raises(ConfigurationError, match=r"'serialization' is not a SQLSTATE: give the five-character code"):
        expectations.step_should_fail_with(run, "r1", "serialization")


def ended(*steps: tuple[StepOutcome, bool]) -> SessionTransaction:
    transaction = SessionTransaction(run_of(READ).sessions["T1"])
    for step, in_transaction in steps:
        transaction.after(step, in_transaction)
    return transaction


COMMIT = outcome("c1", "T1", "COMMIT", finished_ns=1, status="COMMIT")
COMMIT_REFUSED = outcome("c1", "T1", "COMMIT", finished_ns=1, status="ROLLBACK")
FAILED = outcome("w1", "T1", UPDATE, finished_ns=1, sqlstate="40001", error=SERIALIZATION)
IGNORED = outcome("w1b", "T1", UPDATE, finished_ns=1, sqlstate="25P02", error="current transaction is aborted")


def test_a_session_transaction_ends_as_its_steps_say() -> None:
    assert ended((COMMIT, False)).summary() == "committed (at c1)"
    failed = ended((FAILED, True), (IGNORED, True), (COMMIT_REFUSED, False))
    assert failed.state is TransactionState.ROLLED_BACK
    assert failed.summary() == (
        f"rolled back (c1 (COMMIT) answered ROLLBACK: the transaction had failed at w1 (40001: {SERIALIZATION}))"
    )
    commit_failed = outcome("c1", "T1", "COMMIT", finished_ns=1, sqlstate="40001", error="read/write dependencies")
    assert ended((commit_failed, False)).summary() == (
        "rolled back (c1 failed with 40001: read/write dependencies, which ended the transaction)"
    )
    rollback = outcome("a1", "T1", "ROLLBACK", finished_ns=1, status="ROLLBACK")
    assert ended((rollback, False)).summary() == "rolled back (at a1)"
    after_commit = ended(
        (COMMIT, False),
        (outcome("x", "T1", "SELECT 1/0", finished_ns=1, sqlstate="22012", error="division by zero"), False),
    )
    assert after_commit.state is TransactionState.COMMITTED, "an error outside the transaction does not undo it"
    left = ended()
    left.ended_by_stampede()
    assert left.summary() == "rolled back (left open by the permutation; Stampede rolled it back at the end)"


def test_session_assertions_say_how_the_transaction_really_ended() -> None:
    transactions = {"T1": ended((FAILED, True), (COMMIT_REFUSED, False))}
    run = run_of(READ, transactions=transactions)
    expectations.session_should_roll_back(run, "T1")
    refused = r"^Session T1 did not commit: its transaction rolled back \(c1 \(COMMIT\) answered ROLLBACK: the "
    with pytest.raises(OutcomeMismatch, match=refused + r"transaction had failed at w1 \(40001"):
        expectations.session_should_commit(run, "T1")
    with pytest.raises(OutcomeMismatch, match=r"^Session T1 did not roll back: its transaction committed \(at c1\)\.$"):
        expectations.session_should_roll_back(run_of(READ, transactions={"T1": ended((COMMIT, False))}), "T1")


# --------------------------------------------------------------------------- tables


def test_the_timeline_has_sessions_as_columns_and_ends_with_each_transaction() -> None:
    headers, rows = timeline_table(run_of(READ, RESUMED))
    assert headers == ["#", "T1 (read committed)", "T2 (read committed)"]
    assert rows == [["1", "2 rows: 1, 10 | 2, NULL", ""], ["2", "", "UPDATE 1"], ["end", "open", "open"]]


def test_the_timeline_shows_a_set_up_block_under_the_first_session_and_a_spec_session_without_level() -> None:
    run = run_of(READ)
    run.sessions = {"T1": Session("T1", None)}
    run.timeline.insert(0, TimelineEntry("", "", "the permutation set-up SQL output", EntryKind.OUTPUT))
    headers, rows = timeline_table(run)
    assert headers == ["#", "T1"]
    assert rows[0] == ["1", "the permutation set-up SQL output"]


def test_the_matrix_says_what_each_level_did_and_how() -> None:
    matrix = AnomalyMatrix()
    matrix.record("P4 lost update", run_of(RESUMED), SHOWN, "t1")
    matrix.record("P4 lost update", run_of(REFUSED, isolation=IsolationLevel.REPEATABLE_READ), NOT_SHOWN, "t2")
    matrix.record("G1a aborted read", run_of(READ), NOT_SHOWN, "t3")
    matrix.record("G1a aborted read", run_of(READ, isolation=IsolationLevel.SERIALIZABLE), NOT_SHOWN, "t4")
    headers, rows = matrix.summary_table()
    assert headers == ["anomaly", "read committed", "repeatable read", "serializable"]
    assert rows == [
        ["P4 lost update", "allowed", "prevented (blocking + 40001)", "not tested"],
        ["G1a aborted read", "prevented (snapshot)", "not tested", "prevented (snapshot)"],
    ]
    _, details = matrix.details_table()
    assert [row[3] for row in details] == [
        "—",
        "blocking: w2 blocked waiting for T1; 40001 serialization failure on w2",
        "snapshot: each statement reads only data committed before it began",
        "snapshot: every read sees the data as of the transaction's first statement",
    ]


def test_the_matrix_needs_one_isolation_level_and_a_name() -> None:
    mixed = run_of(READ, RESUMED)
    mixed.sessions["T2"] = type(mixed.sessions["T2"])("T2", IsolationLevel.SERIALIZABLE)
    with pytest.raises(
        ConfigurationError,
        match=r"needs every session at one isolation level, but permutation "
        r"'r1 w2' ran T1 at read committed, T2 at serializable",
    ):
        AnomalyMatrix().record("P4", mixed, SHOWN)
    with pytest.raises(ConfigurationError, match="Name the anomaly"):
        AnomalyMatrix().record(" ", run_of(READ), SHOWN)


def test_the_anomaly_shows_only_when_every_piece_of_its_evidence_holds() -> None:
    committed = {"T1": ended((COMMIT, False)), "T2": SessionTransaction(Session("T2", IsolationLevel.READ_COMMITTED))}
    run = run_of(READ, RESUMED, transactions=committed)
    read = StepReturns("r1", ("1, 10", "2, NULL"))
    assert observe(run, [read]) == Observation(True, ("r1 returned 2 rows: 1, 10 | 2, NULL",))
    assert observe(run, [read, SessionCommits("T1")]).shown
    other = observe(run, [read, SessionCommits("T2")])
    assert not other.shown and other.text == "r1 returned 2 rows: 1, 10 | 2, NULL; T2 open"
    assert observe(run, [StepReturns("r1", ("1, 11", "2, NULL"))]).text == "r1 returned 2 rows: 1, 10 | 2, NULL"
    refused = observe(run_of(REFUSED), [StepReturns("w2", ())])
    assert not refused.shown and refused.text.startswith("w2 blocked waiting for T1 for 3.0 ms, then failed with 40001")


def test_evidence_must_name_a_defined_step_or_session() -> None:
    spec = InterleavingSpec()
    spec.add_session("T1")
    spec.add_step("T1", "r1", "SELECT 1")
    assert check_evidence(spec, StepReturns("r1", ("1",))) == StepReturns("r1", ("1",))
    with pytest.raises(ConfigurationError, match=r"names step 'r2', which is not defined \(defined: r1\)"):
        check_evidence(spec, StepReturns("r2", ()))
    with pytest.raises(ConfigurationError, match=r"names session 'T9', which is not defined \(defined: T1\)"):
        check_evidence(spec, SessionCommits("T9"))
