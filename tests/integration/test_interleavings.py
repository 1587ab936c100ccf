"""The interleaving runner against a real PostgreSQL: blocked steps noticed, deadlocks, steps that never end, 25P02."""

from __future__ import annotations

import time

import asyncpg
import pytest

from stampede.errors import ConfigurationError
from stampede.interleavings.outcome import PermutationRun, TransactionState
from stampede.interleavings.runner import run_every_permutation, run_permutation
from stampede.interleavings.spec import InterleavingSpec
from stampede.services.postgres_target import PostgresTarget
from stampede.workloads.isolation import IsolationLevel

from .support import with_target

SETUP = (
    "DROP TABLE IF EXISTS il_rows; CREATE TABLE il_rows (id int PRIMARY KEY, value int); "
    "INSERT INTO il_rows VALUES (1, 10), (2, 20)"
)
WRITE_X = "UPDATE il_rows SET value = value + 1 WHERE id = 1"
WRITE_Y = "UPDATE il_rows SET value = value + 1 WHERE id = 2"


def spec_of(
    *sessions: str, steps: dict[str, tuple[str, str]], isolation: IsolationLevel = IsolationLevel.READ_COMMITTED
) -> InterleavingSpec:
    spec = InterleavingSpec(setup=SETUP)
    for name in sessions:
        spec.add_session(name, isolation)
    for step, (session, sql) in steps.items():
        spec.add_step(session, step, sql)
    return spec


def timeline(run: PermutationRun) -> list[str]:
    """Step names in the order the timeline shows them, ``w2 resumed`` for a blocked step's completion."""
    return [entry.step + (" resumed" if " resumed after " in entry.text else "") for entry in run.timeline]


def test_a_step_waiting_for_a_lock_is_noticed_and_its_completion_reported_in_order(pg_dsn: str, run_id: str) -> None:
    spec = spec_of(
        "T1",
        "T2",
        steps={
            "w1": ("T1", WRITE_X),
            "w2": ("T2", WRITE_X),
            "c1": ("T1", "COMMIT"),
            "c2": ("T2", "COMMIT"),
            "check": ("T1", "SELECT value FROM il_rows WHERE id = 1"),
        },
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "w1 w2 c1 c2 check")

    run = with_target(pg_dsn, run_id, body)
    w2 = run.outcome("w2")
    assert w2.blocked_by == ("T1",) and w2.status == "UPDATE 1" and w2.cancelled is None
    assert not run.outcome("w1").blocked and not run.outcome("c1").blocked
    assert timeline(run) == ["w1", "w2", "c1", "w2 resumed", "c2", "check"], run.timeline
    assert run.timeline[1].text.endswith("→ blocked (waiting for T1)")
    assert run.outcome("check").rows == (("12",),)
    assert {name: t.state for name, t in run.transactions.items()} == {
        "T1": TransactionState.COMMITTED,
        "T2": TransactionState.COMMITTED,
    }


def test_a_deadlock_between_two_sessions_surfaces_as_40P01_on_exactly_one(pg_dsn: str, run_id: str) -> None:
    spec = spec_of(
        "T1",
        "T2",
        steps={
            "x1": ("T1", WRITE_X),
            "y2": ("T2", WRITE_Y),
            "y1": ("T1", WRITE_Y),
            "x2": ("T2", WRITE_X),
            "c1": ("T1", "COMMIT"),
            "c2": ("T2", "COMMIT"),
        },
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "x1 y2 y1 x2 c1 c2", step_timeout=15)

    run = with_target(pg_dsn, run_id, body)
    crossing = [run.outcome("y1"), run.outcome("x2")]
    assert all(outcome.blocked for outcome in crossing)
    victims = [outcome for outcome in crossing if outcome.sqlstate == "40P01"]
    assert len(victims) == 1, [outcome.story() for outcome in crossing]
    (survivor,) = [outcome for outcome in crossing if outcome is not victims[0]]
    assert survivor.succeeded and survivor.status == "UPDATE 1" and survivor.cancelled is None
    states = {name: t.state for name, t in run.transactions.items()}
    assert states[survivor.step.session] is TransactionState.COMMITTED
    assert states[victims[0].step.session] is TransactionState.ROLLED_BACK


def test_a_step_blocked_forever_is_cancelled_at_once_and_reported(pg_dsn: str, run_id: str) -> None:
    spec = spec_of("T1", "T2", steps={"l1": ("T1", WRITE_X), "l2": ("T2", WRITE_X)})

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "l1 l2", step_timeout=30)

    run = with_target(pg_dsn, run_id, body)
    l2 = run.outcome("l2")
    assert l2.blocked_by == ("T1",) and l2.sqlstate == "57014"
    assert l2.cancelled == "T1 had nothing left to run when the permutation ended; Stampede cancelled it"
    assert l2.story().startswith("blocked waiting for T1 and never resumed: T1 had nothing left to run")
    assert run.seconds < 5, "a step that can never resume must not wait for the step timeout"
    assert "left open by the permutation" in run.transactions["T1"].summary()
    assert run.transactions["T2"].state is TransactionState.ROLLED_BACK


def test_a_session_whose_step_can_never_resume_is_freed_for_its_next_step(pg_dsn: str, run_id: str) -> None:
    spec = spec_of(
        "T1", "T2", steps={"l1": ("T1", WRITE_X), "l2": ("T2", WRITE_X), "c2": ("T2", "COMMIT"), "c1": ("T1", "COMMIT")}
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "l1 l2 c2 c1", step_timeout=30)

    run = with_target(pg_dsn, run_id, body)
    assert (
        run.outcome("l2").cancelled == "T1 had nothing left to run when T2 had its next step to run; "
        "Stampede cancelled it"
    )
    assert run.outcome("c2").status == "ROLLBACK"
    assert run.transactions["T1"].state is TransactionState.COMMITTED
    assert run.seconds < 5


def test_when_the_permutation_ends_a_chain_of_waits_is_cut_at_its_root(pg_dsn: str, run_id: str) -> None:
    spec = spec_of(
        "T1",
        "T2",
        "T3",
        steps={"x1": ("T1", WRITE_X), "y2": ("T2", WRITE_Y), "x2": ("T2", WRITE_X), "y3": ("T3", WRITE_Y)},
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "x1 y2 x2 y3", step_timeout=30)

    run = with_target(pg_dsn, run_id, body)
    assert run.outcome("x2").cancelled is not None and run.outcome("x2").sqlstate == "57014"
    y3 = run.outcome("y3")
    assert y3.blocked_by == ("T2",) and y3.cancelled is None and y3.status == "UPDATE 1", y3.story()
    assert run.seconds < 5


def test_a_step_stuck_behind_a_chain_of_waits_names_the_idle_session_at_its_root(pg_dsn: str, run_id: str) -> None:
    spec = spec_of(
        "T1",
        "T2",
        "T3",
        steps={
            "x1": ("T1", WRITE_X),
            "y2": ("T2", WRITE_Y),
            "x2": ("T2", WRITE_X),
            "y3": ("T3", WRITE_Y),
            "c3": ("T3", "COMMIT"),
        },
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "x1 y2 x2 y3 c3", step_timeout=30)

    run = with_target(pg_dsn, run_id, body)
    y3 = run.outcome("y3")
    assert y3.blocked_by == ("T2",) and y3.sqlstate == "57014"
    assert y3.cancelled == "T1 had nothing left to run when T3 had its next step to run; Stampede cancelled it"
    assert run.outcome("c3").status == "ROLLBACK"
    assert run.seconds < 5


def test_a_step_that_neither_finishes_nor_waits_on_a_session_is_cancelled_as_hung(pg_dsn: str, run_id: str) -> None:
    spec = spec_of("T1", steps={"sleep": ("T1", "SELECT pg_sleep(60)"), "after": ("T1", "SELECT 1 AS one")})

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "sleep after", step_timeout=0.5)

    began = time.monotonic()
    run = with_target(pg_dsn, run_id, body)
    sleep = run.outcome("sleep")
    assert not sleep.blocked and sleep.sqlstate == "57014"
    assert sleep.story() == (
        "hung: neither finished nor blocked by another session within 500.0 ms; Stampede cancelled it"
    )
    assert run.outcome("after").sqlstate == "25P02"
    assert time.monotonic() - began < 10


def test_a_lock_held_outside_the_run_is_not_mistaken_for_a_session_of_the_run(pg_dsn: str, run_id: str) -> None:
    spec = spec_of("T1", steps={"w1": ("T1", WRITE_X)})

    async def body(target: PostgresTarget) -> PermutationRun:
        outsider = await target.connect()
        try:
            await outsider.execute(SETUP)
            async with outsider.transaction():
                await outsider.execute(WRITE_X)
                spec.setup = ""
                return await run_permutation(target, spec, "w1", step_timeout=0.5)
        finally:
            await outsider.close()

    run = with_target(pg_dsn, run_id, body)
    w1 = run.outcome("w1")
    assert not w1.blocked and w1.sqlstate == "57014" and w1.story().startswith("hung: neither finished nor blocked")


def test_a_failed_step_aborts_its_transaction_so_the_next_gets_25P02_and_commit_rolls_back(
    pg_dsn: str, run_id: str
) -> None:
    spec = spec_of(
        "T1",
        "T2",
        steps={
            "boom": ("T1", "SELECT 1 / 0"),
            "next": ("T1", "SELECT 1 AS one"),
            "r2": ("T2", "SELECT value FROM il_rows WHERE id = 1"),
            "c1": ("T1", "COMMIT"),
            "after": ("T1", "SELECT 2 AS two"),
        },
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "boom next r2 c1 after")

    run = with_target(pg_dsn, run_id, body)
    assert run.outcome("boom").sqlstate == "22012" and run.outcome("boom").error == "division by zero"
    assert run.outcome("next").sqlstate == "25P02"
    assert run.outcome("r2").rows == (("10",),), "another session is unaffected"
    assert run.outcome("c1").status == "ROLLBACK"
    assert run.outcome("after").rows == (("2",),), "after the transaction, the session works again"
    transaction = run.transactions["T1"]
    assert transaction.state is TransactionState.ROLLED_BACK
    assert transaction.summary() == (
        "rolled back (c1 (COMMIT) answered ROLLBACK: the transaction had failed at boom (22012: division by zero))"
    )


@pytest.mark.parametrize("isolation", list(IsolationLevel), ids=lambda level: level.value.replace(" ", "_"))
def test_every_transaction_of_a_session_runs_at_its_isolation_level(
    pg_dsn: str, run_id: str, isolation: IsolationLevel
) -> None:
    level = "SELECT current_setting('transaction_isolation') AS level"
    spec = spec_of(
        "T1", steps={"inside": ("T1", level), "c1": ("T1", "COMMIT"), "later": ("T1", level)}, isolation=isolation
    )

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "inside c1 later")

    run = with_target(pg_dsn, run_id, body)
    assert run.outcome("inside").rows == run.outcome("later").rows == ((isolation.value,),)


def test_every_permutation_runs_on_fresh_data_and_keeps_each_sessions_order(pg_dsn: str, run_id: str) -> None:
    spec = spec_of(
        "T1",
        "T2",
        steps={
            "w1": ("T1", WRITE_X),
            "c1": ("T1", "COMMIT"),
            "r2": ("T2", "SELECT value FROM il_rows WHERE id = 1"),
            "c2": ("T2", "COMMIT"),
        },
    )

    async def body(target: PostgresTarget) -> list[PermutationRun]:
        return await run_every_permutation(target, spec)

    runs = with_target(pg_dsn, run_id, body)
    assert sorted(run.label for run in runs) == sorted(
        ["w1 c1 r2 c2", "w1 r2 c1 c2", "w1 r2 c2 c1", "r2 w1 c1 c2", "r2 w1 c2 c1", "r2 c2 w1 c1"]
    )
    for run in runs:
        expected = 11 if run.label.index("c1") < run.label.index("r2") else 10
        assert run.outcome("r2").rows == ((str(expected),),), run.label


def test_a_transaction_left_open_is_rolled_back_and_its_locks_released(pg_dsn: str, run_id: str) -> None:
    spec = spec_of("T1", steps={"w1": ("T1", WRITE_X)})

    async def body(target: PostgresTarget) -> tuple[PermutationRun, list[asyncpg.Record]]:
        run = await run_permutation(target, spec, "w1")
        check = await target.connect()
        try:
            await check.execute("SET lock_timeout = '2s'")
            return run, await check.fetch("UPDATE il_rows SET value = 0 WHERE id = 1 RETURNING value")
        finally:
            await check.close()

    run, rows = with_target(pg_dsn, run_id, body)
    assert run.transactions["T1"].state is TransactionState.ROLLED_BACK
    assert run.timeline[-1].text == "Stampede rolled back the transaction left open"
    assert [row["value"] for row in rows] == [0]


def test_set_up_sql_that_fails_says_so_and_leaves_nothing_open(pg_dsn: str, run_id: str) -> None:
    spec = spec_of("T1", steps={"r1": ("T1", "SELECT 1")})
    spec.setup = "INSERT INTO il_missing VALUES (1)"

    async def body(target: PostgresTarget) -> None:
        with pytest.raises(ConfigurationError, match=r"set-up SQL failed with 42P01: relation \"il_missing\""):
            await run_permutation(target, spec, "r1")

    with_target(pg_dsn, run_id, body)
