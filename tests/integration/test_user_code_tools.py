"""User code as tools on a real PostgreSQL: Python tools over asyncpg, SQL transactions, SQL invariants.

Each seeded race (a read-then-write, a transfer in two transactions) must be
caught by its check, and each correct variant must pass it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stampede.checkers.invariants import check_invariant
from stampede.checkers.lost_updates import check_lost_updates
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, launch, start_launch
from stampede.services.postgres_target import PostgresTarget
from stampede.workloads.credits import create_accounts, total_balance
from stampede.workloads.python_tool import PythonTool, ServiceEndpoints
from stampede.workloads.sql_invariant import InvariantQuery, sample_during, sample_now
from stampede.workloads.sql_transaction_tool import SqlTransactionTool

from .support import with_target

TOOLS = Path(__file__).resolve().parents[2] / "libraries" / "stampede_robot" / "resources" / "credit_tools.py"
AGENTS = 20
ITERATIONS = 3
BALANCE = 10_000
READ_THEN_WRITE = [
    "SELECT balance FROM accounts WHERE id = :account",
    "UPDATE accounts SET balance = :balance - :amount WHERE id = :account",
]
FOR_UPDATE = [
    "SELECT balance FROM accounts WHERE id = :account FOR UPDATE",
    "UPDATE accounts SET balance = :balance - :amount WHERE id = :account",
]
VERSION_CHECK = [
    "SELECT balance, version FROM accounts WHERE id = :account",
    "UPDATE accounts SET balance = :balance - :amount, version = :version + 1 "
    "WHERE id = :account AND version = :version",
]


def _python_tool(target: PostgresTarget, factory: str, **settings: object) -> PythonTool:
    services = ServiceEndpoints(postgres_dsn=target.client_dsn())
    return PythonTool(name=factory, factory=f"{TOOLS}:{factory}", settings=settings, services=services)


@pytest.mark.parametrize("factory", ["NaiveDeduction", "AtomicDeduction"])
def test_a_python_tool_over_asyncpg_loses_updates_only_when_it_reads_then_writes(
    pg_dsn: str, run_id: str, factory: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        tool = _python_tool(target, factory, account=account)
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        assert not result.agent_errors, result.agent_errors
        assert all(op.ok for op in result.history), {op.error for op in result.history}
        lost = check_lost_updates(result.history)
        final = await total_balance(target, [account])
        if factory == "NaiveDeduction":
            assert not lost.passed and lost.value, lost.message
            assert final > BALANCE - AGENTS * ITERATIONS
        else:
            assert lost.passed, lost.message
            assert final == BALANCE - AGENTS * ITERATIONS

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize(
    ("statements", "loses"),
    [(READ_THEN_WRITE, True), (FOR_UPDATE, False), (VERSION_CHECK, False)],
    ids=["read_then_write", "for_update", "version_check"],
)
def test_a_sql_transaction_at_read_committed_loses_updates_unless_it_locks_or_checks_a_version(
    pg_dsn: str, run_id: str, statements: list[str], loses: bool
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        tool = SqlTransactionTool(
            target, name="deduct", statements=statements, constants={"account": str(account), "amount": "1"}
        )
        await tool.validate()
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        assert all(op.ok for op in result.history), {op.error for op in result.history}
        assert result.history[0].read is not None and result.history[0].read["account"] == account
        lost = check_lost_updates(result.history)
        final = await total_balance(target, [account])
        if loses:
            assert not lost.passed and lost.value, lost.message
            assert final > BALANCE - AGENTS * ITERATIONS
        else:
            assert lost.passed, lost.message
            assert final == BALANCE - AGENTS * ITERATIONS
        if statements is VERSION_CHECK:
            assert any(op.retries for op in result.history), "one shared row must make version checks miss"
            causes = {cause for op in result.history for cause in op.retry_causes}
            assert {cause.value for cause in causes} == {"conflict"}

    with_target(pg_dsn, run_id, body)


def test_a_transaction_whose_second_statement_does_not_parse_is_refused_naming_it(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        await create_accounts(target, 1, BALANCE)
        statements = ["SELECT balance FROM accounts WHERE id = :account", "UPDATE accounts SET WHERE id = :account"]
        tool = SqlTransactionTool(target, name="broken", statements=statements, constants={"account": "1"})
        with pytest.raises(
            ConfigurationError,
            match=r"^Statement 2 of SQL transaction tool 'broken' does not run on PostgreSQL: 42601 syntax error",
        ):
            await tool.validate()

    with_target(pg_dsn, run_id, body)


def test_a_parameter_no_earlier_statement_returns_is_refused_naming_what_there_is(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        await create_accounts(target, 1, BALANCE)
        statements = ["SELECT balance FROM accounts WHERE id = 1", "UPDATE accounts SET version = :version + 1"]
        tool = SqlTransactionTool(target, name="unknown", statements=statements)
        with pytest.raises(
            ConfigurationError,
            match=r"^Statement 2 of SQL transaction tool 'unknown' uses parameter\(s\) :version that have no value\."
            r".*earlier statements return balance",
        ):
            await tool.validate()

    with_target(pg_dsn, run_id, body)


def test_sql_that_robot_read_as_a_named_argument_is_explained() -> None:
    with pytest.raises(ConfigurationError, match=r"looks like SQL that Robot read as a named argument.*'\\='"):
        SqlTransactionTool(None, name="t", statements=["SELECT 1"], constants={"UPDATE a SET b ": " 2"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "expected", "holds"),
    [
        ("SELECT sum(balance) = 20000 FROM accounts", None, True),
        ("SELECT sum(balance) = 19999 FROM accounts", None, False),
        ("SELECT sum(balance) FROM accounts", "20000", True),
        ("SELECT sum(balance) FROM accounts", "1", False),
        ("SELECT NULL::boolean", None, False),
    ],
)
def test_an_invariant_after_a_launch_holds_or_fails_on_its_value(
    pg_dsn: str, run_id: str, sql: str, expected: str | None, holds: bool
) -> None:
    async def body(target: PostgresTarget) -> None:
        await create_accounts(target, 2, BALANCE)
        async with InvariantQuery(target, sql, expected) as query:
            samples = await sample_now(query)
        verdict = check_invariant(samples, query=sql, expected=query.expected)
        assert verdict.passed is holds, verdict.message
        if not holds:
            assert verdict.message.startswith(f"Invariant broken: {sql} returned "), verdict.message

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize(
    ("sql", "expected", "message"),
    [
        ("SELECT id = 1 FROM accounts", None, r"returned 2 rows, not 1: it must return one row with one value"),
        ("SELECT id = 1 FROM accounts WHERE false", None, r"returned 0 rows, not 1"),
        ("SELECT true, false", None, r"returns 2 columns, not 1"),
        ("SELECT sum(balance) FROM accounts", None, r"returns a numeric, not true or false: write it as a condition"),
        ("SELECT sum(balance) FROM acounts", None, r"does not run on PostgreSQL: 42P01"),
        ("SELECT count(*) FROM accounts", "many", r"parameter :expected must be of type int8, got 'many'"),
    ],
)
def test_an_invariant_query_of_the_wrong_shape_is_a_clear_error(
    pg_dsn: str, run_id: str, sql: str, expected: str | None, message: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        await create_accounts(target, 2, BALANCE)
        with pytest.raises(ConfigurationError, match=message):
            async with InvariantQuery(target, sql, expected) as query:
                await sample_now(query)

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize("factory", ["TwoStepTransfer", "OneTransactionTransfer"])
def test_an_invariant_sampled_during_a_launch_catches_money_in_flight(pg_dsn: str, run_id: str, factory: str) -> None:
    sql = "SELECT sum(balance) = 20000 FROM accounts"

    async def body(target: PostgresTarget) -> None:
        source, sink = await create_accounts(target, 2, BALANCE)
        tool = _python_tool(target, factory, account=source, to=sink)
        running = start_launch(tool, LaunchPlan(agents=5, duration=1.0))
        async with InvariantQuery(target, sql) as query:
            samples = await sample_during(query, running, every=0.02, bound=30)
        result = await running.task
        assert not result.agent_errors and result.history
        verdict = check_invariant(samples, query=sql, expected=True, during=True, every=0.02)
        assert sum(sample.during for sample in samples) >= 10 and not samples[-1].during
        if factory == "TwoStepTransfer":
            assert not verdict.passed, verdict.message
            assert verdict.message.startswith(f"Invariant broken: {sql} returned false ")
            assert " into the launch (sample " in verdict.message
            assert samples[-1].value is True, "every transfer has landed once the launch is over"
        else:
            assert verdict.passed, verdict.message

    with_target(pg_dsn, run_id, body)


def test_an_invariant_over_a_launch_that_ended_before_any_sample_is_not_a_pass(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        running = start_launch(_python_tool(target, "AtomicDeduction", account=account), LaunchPlan(agents=1))
        await running.task
        async with InvariantQuery(target, "SELECT true") as query:
            samples = await sample_during(query, running, every=0.05, bound=5)
        verdict = check_invariant(samples, query="SELECT true", expected=True, during=True)
        assert verdict.inconclusive and not verdict.passed
        assert verdict.message.startswith("Invariant not judged: the launch ended before the first sample")

    with_target(pg_dsn, run_id, body)


def test_the_client_dsn_lands_in_the_runs_schema_and_is_cleaned_up_with_it(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        import asyncpg

        connection = await asyncpg.connect(target.client_dsn())
        assert await connection.fetchval("SELECT current_schema()") == target.schema
        assert await target.backends() == 1
        await connection.close()

    with_target(pg_dsn, run_id, body)


def test_sampling_waits_for_the_launch_to_start(pg_dsn: str, run_id: str) -> None:
    """A launch still setting up has no start time: sampling begins when it has one, so times are never negative."""

    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        running = start_launch(
            _python_tool(target, "AtomicDeduction", account=account), LaunchPlan(agents=2, duration=0.3)
        )
        async with InvariantQuery(target, "SELECT true") as query:
            samples = await sample_during(query, running, every=0.05, bound=10)
        await asyncio.wait_for(running.task, 10)
        assert samples and all(sample.at_ns is not None and sample.at_ns >= 0 for sample in samples)

    with_target(pg_dsn, run_id, body)
