"""Spec files and the runner's new powers against a real PostgreSQL: transcripts, notices, setups, waits, releases."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampede.interleavings.outcome import EntryKind, PermutationRun, WaitKind
from stampede.interleavings.runner import SpecSetupError, run_permutation, run_spec
from stampede.interleavings.spec import InterleavingSpec
from stampede.interleavings.spec_file import parse_spec
from stampede.interleavings.transcript import SpecRun
from stampede.services.postgres_target import PostgresTarget

from .support import with_target

TABLE = """
setup { CREATE TABLE it_rows (id int PRIMARY KEY, v int); INSERT INTO it_rows VALUES (1, 10); }
teardown { DROP TABLE it_rows; }
"""


def spec_text(run: list[PermutationRun], sessions: int) -> str:
    return SpecRun(Path("x.spec"), sessions, tuple(run)).text


def test_a_blocked_step_its_release_and_a_notice_read_as_isolationtester_writes_them(pg_dsn: str, run_id: str) -> None:
    spec = parse_spec(
        TABLE
        + """
session s1
setup { BEGIN; }
step s1u { UPDATE it_rows SET v = 11 WHERE id = 1; }
step s1n { DO $$ BEGIN RAISE NOTICE 'about to commit'; END $$; COMMIT; }
session s2
step s2u { UPDATE it_rows SET v = v + 1 WHERE id = 1 RETURNING v; }
permutation s1u s2u s1n
"""
    )

    async def body(target: PostgresTarget) -> list[PermutationRun]:
        return await run_spec(target, spec)

    runs = with_target(pg_dsn, run_id, body)
    assert spec_text(runs, 2) == (
        "Parsed test spec with 2 sessions\n\n"
        "starting permutation: s1u s2u s1n\n"
        "step s1u: UPDATE it_rows SET v = 11 WHERE id = 1;\n"
        "step s2u: UPDATE it_rows SET v = v + 1 WHERE id = 1 RETURNING v; <waiting ...>\n"
        "s1: NOTICE:  about to commit\n"
        "step s1n: DO $$ BEGIN RAISE NOTICE 'about to commit'; END $$; COMMIT;\n"
        "step s2u: <... completed>\n"
        " v\n--\n12\n(1 row)\n\n"
    )
    (run,) = runs
    assert run.outcome("s2u").released_by == "s1n"
    assert [notice.message for notice in run.outcome("s1n").notices] == ["about to commit"]
    assert [(e.step, e.kind) for e in run.timeline] == [
        ("s1u", EntryKind.COMPLETED),
        ("s2u", EntryKind.BLOCKED),
        ("s1n", EntryKind.COMPLETED),
        ("s2u", EntryKind.RESUMED),
    ]


def test_a_step_of_several_statements_keeps_the_rows_before_its_error(pg_dsn: str, run_id: str) -> None:
    spec = parse_spec(TABLE + "session s1\nstep both { SELECT v FROM it_rows; SELECT 1/0; SELECT 2; }\n")

    async def body(target: PostgresTarget) -> list[PermutationRun]:
        return await run_spec(target, spec)

    (run,) = with_target(pg_dsn, run_id, body)
    both = run.outcome("both")
    assert (both.sqlstate, both.error) == ("22012", "division by zero")
    assert both.rows == (("10",),)
    assert spec_text([run], 1).endswith(
        "step both: SELECT v FROM it_rows; SELECT 1/0; SELECT 2;\n v\n--\n10\n(1 row)\n\nERROR:  division by zero\n"
    )


def test_annotations_hold_a_completion_back_and_a_repeated_step_is_told_apart(pg_dsn: str, run_id: str) -> None:
    spec = parse_spec(
        TABLE
        + """
session s1
step r { SELECT v FROM it_rows; }
session s2
step w { UPDATE it_rows SET v = v + 1; }
step n { DO $$ BEGIN RAISE NOTICE 'one'; END $$; }
permutation r(*) w r(n notices 1) n
"""
    )

    async def body(target: PostgresTarget) -> list[PermutationRun]:
        return await run_spec(target, spec)

    (run,) = with_target(pg_dsn, run_id, body)
    lines = spec_text([run], 2).splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps == [
        "step r: SELECT v FROM it_rows; <waiting ...>",
        "step w: UPDATE it_rows SET v = v + 1;",
        "step r: <... completed>",
        "step r: SELECT v FROM it_rows; <waiting ...>",
        "step n: DO $$ BEGIN RAISE NOTICE 'one'; END $$;",
        "step r: <... completed>",
    ]
    # (*) holds back only the report: as in isolationtester, w is sent without waiting for r's answer, so the
    # first r may read v before or after w's update. The second r is sent after w committed.
    assert run.outcome("r").rows in ((("10",),), (("11",),))
    assert run.outcome("r#2").rows == (("11",),)
    assert run.outcome("r#2").released_by == "n"


def test_a_session_setup_may_begin_a_deferrable_transaction_that_waits_for_a_safe_snapshot(
    pg_dsn: str, run_id: str
) -> None:
    spec = InterleavingSpec(
        setup="CREATE TABLE it_rows (id int PRIMARY KEY, v int); INSERT INTO it_rows VALUES (1, 10)"
    )
    spec.teardown = "DROP TABLE it_rows"
    spec.add_session("W", "serializable")
    spec.add_session("R", "serializable", setup="BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE")
    spec.add_session("L", "read committed", setup="SET lock_timeout = '1s'", teardown="SHOW lock_timeout")
    spec.add_step("W", "w", "UPDATE it_rows SET v = 11")
    spec.add_step("W", "c", "COMMIT")
    spec.add_step("R", "r", "SELECT v FROM it_rows")
    spec.add_step("L", "t", "SHOW lock_timeout")

    async def body(target: PostgresTarget) -> PermutationRun:
        return await run_permutation(target, spec, "w r t c")

    run = with_target(pg_dsn, run_id, body)
    r = run.outcome("r")
    assert r.blocked_by == ("W",) and r.waited_for is WaitKind.SAFE_SNAPSHOT and r.released_by == "c"
    assert r.rows == (("10",),)
    assert run.outcome("t").rows == (("1s",),)
    assert run.timeline[1].text == "r: SELECT v FROM it_rows → blocked (waiting for a safe snapshot (W))"


def test_a_spec_run_waits_for_a_server_timeout_instead_of_cancelling_at_once(pg_dsn: str, run_id: str) -> None:
    spec = parse_spec(
        TABLE
        + """
session s1
setup { BEGIN; }
step lock { LOCK TABLE it_rows; }
session s2
setup { SET lock_timeout = '200ms'; }
step read { SELECT * FROM it_rows; }
permutation lock read
"""
    )

    async def body(target: PostgresTarget) -> list[PermutationRun]:
        return await run_spec(target, spec, step_timeout=5)

    (run,) = with_target(pg_dsn, run_id, body)
    read = run.outcome("read")
    assert (read.sqlstate, read.cancelled) == ("55P03", None)
    assert spec_text([run], 2).endswith(
        "step read: SELECT * FROM it_rows; <waiting ...>\nstep read: <... completed>\n"
        "ERROR:  canceling statement due to lock timeout\n"
    )


def test_a_failing_session_setup_stops_the_spec_saying_which_session(pg_dsn: str, run_id: str) -> None:
    spec = parse_spec("session s1\nsetup { SELECT * FROM it_missing; }\nstep a { SELECT 1; }\n")

    async def body(target: PostgresTarget) -> list[PermutationRun]:
        return await run_spec(target, spec)

    with pytest.raises(
        SpecSetupError, match=r'^The setup of session s1 failed with 42P01: relation "it_missing" does not exist'
    ):
        with_target(pg_dsn, run_id, body)


def test_a_set_up_block_that_hangs_is_cancelled_after_the_step_timeout(pg_dsn: str, run_id: str) -> None:
    spec = parse_spec("setup { SELECT * FROM it_held; }\nsession s1\nstep a { SELECT 1; }\n")

    async def body(target: PostgresTarget) -> str:
        holder = await target.connect()
        try:
            await holder.execute("CREATE TABLE it_held (id int)")
            await holder.execute("BEGIN; LOCK TABLE it_held")
            with pytest.raises(SpecSetupError) as refused:
                await run_spec(target, spec, step_timeout=0.5)
            return str(refused.value)
        finally:
            await holder.close()

    message = with_target(pg_dsn, run_id, body)
    assert message.startswith("The permutation set-up SQL did not finish within 500.0 ms (a lock held outside the run")
