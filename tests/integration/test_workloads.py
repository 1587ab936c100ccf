"""Workloads against a real PostgreSQL: each strategy does what its documentation promises."""

from __future__ import annotations

import pytest

from stampede.checkers.conservation import check_conservation
from stampede.checkers.fields_kept import check_fields_kept
from stampede.checkers.lost_updates import check_lost_updates
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, launch
from stampede.outcomes import Outcome
from stampede.services.postgres_target import PostgresTarget
from stampede.workloads.credits import CreditDeductionTool, Strategy, create_accounts
from stampede.workloads.isolation import IsolationLevel
from stampede.workloads.json_config import ConfigStrategy, JsonConfigTool, create_config
from stampede.workloads.sql_tool import SqlTool, to_positional

from .support import with_target

AGENTS = 20
ITERATIONS = 3
UNSAFE = {(Strategy.NAIVE, IsolationLevel.READ_COMMITTED), (Strategy.SERIALIZABLE_RETRY, IsolationLevel.READ_COMMITTED)}


@pytest.mark.parametrize("isolation", list(IsolationLevel), ids=lambda level: level.value.replace(" ", "_"))
@pytest.mark.parametrize("strategy", list(Strategy), ids=lambda strategy: strategy.value.replace(" ", "_"))
def test_credit_strategy_keeps_or_loses_credits_as_documented(
    pg_dsn: str, run_id: str, strategy: Strategy, isolation: IsolationLevel
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, 10_000)
        tool = CreditDeductionTool(target, strategy=strategy, isolation=isolation, accounts=[account])
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        assert tool.initial_balance == 10_000
        conservation = check_conservation(10_000, await tool.final_balance(), result.history, tool.amount_of)
        lost = check_lost_updates(result.history)
        if (strategy, isolation) in UNSAFE:
            assert not conservation.passed and not lost.passed
        else:
            assert conservation.passed, conservation.message
            assert lost.passed, lost.message
        if strategy is Strategy.NAIVE and isolation is not IsolationLevel.READ_COMMITTED:
            assert any(op.outcome is Outcome.SERIALIZATION_FAILURE for op in result.history)
        if strategy is not Strategy.NAIVE:
            assert all(op.ok for op in result.history), "retries should carry every deduction through"

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize("strategy", list(ConfigStrategy), ids=lambda strategy: strategy.value.replace(" ", "_"))
def test_json_configuration_fields_survive_only_with_a_version_check(
    pg_dsn: str, run_id: str, strategy: ConfigStrategy
) -> None:
    async def body(target: PostgresTarget) -> None:
        config = await create_config(target)
        tool = JsonConfigTool(target, strategy=strategy, config=config)
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        verdict = check_fields_kept(result.history, await tool.final_document())
        lost = check_lost_updates(result.history, subject="config", version="version")
        if strategy is ConfigStrategy.OPTIMISTIC:
            assert verdict.passed and lost.passed, verdict.message
            assert any(op.retries for op in result.history), "one shared document must produce conflicts"
        else:
            assert not lost.passed

    with_target(pg_dsn, run_id, body)


def test_sql_tool_runs_with_built_in_and_converted_parameters(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        connection = await target.connect()
        await connection.execute("CREATE TABLE visits (agent int, who text, note text, amount int)")
        sql = "INSERT INTO visits VALUES (:agent, :user, ':not_a_parameter', :amount::int * 2) RETURNING amount"
        tool = SqlTool(target, name="visit", sql=sql, constants={"amount": "21"})
        result = await launch(tool, LaunchPlan(agents=5, iterations=2))
        assert all(op.ok for op in result.history), [op.error for op in result.history]
        assert result.history[0].read == [{"amount": 42}]
        assert await connection.fetchval("SELECT count(*) FROM visits WHERE note = ':not_a_parameter'") == 10
        await connection.close()

    with_target(pg_dsn, run_id, body)


def test_sql_tool_with_a_syntax_error_is_refused_by_name(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        with pytest.raises(ConfigurationError, match=r"SQL tool 'broken' does not run on PostgreSQL: 42601"):
            await SqlTool(target, name="broken", sql="UPDATE accounts SET WHERE").validate()

    with_target(pg_dsn, run_id, body)


def test_sql_tool_with_a_parameter_of_the_wrong_type_is_refused(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        with pytest.raises(ConfigurationError, match=r"parameter :n must be of type int4, got 'many'"):
            await SqlTool(target, name="typed", sql="SELECT 1 + :n::int4", constants={"n": "many"}).validate()

    with_target(pg_dsn, run_id, body)


def test_sql_tool_names_parameters_without_values() -> None:
    with pytest.raises(ConfigurationError, match=r":seat"):
        SqlTool(None, name="reserve", sql="UPDATE seats SET taken = true WHERE id = :seat")  # type: ignore[arg-type]


def test_parameters_are_numbered_once_and_casts_and_literals_are_left_alone() -> None:
    sql, names = to_positional("SELECT :a::int, ':b', \"x:y\", :a + :c")
    assert sql == "SELECT $1::int, ':b', \"x:y\", $1 + $2"
    assert names == ["a", "c"]
