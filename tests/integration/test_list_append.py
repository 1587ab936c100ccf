"""List-append transactions on a real PostgreSQL, judged from their history at each isolation level."""

from __future__ import annotations

import asyncio

import pytest

from stampede.checkers.list_append import Analysis, analyse, check_anomalies_include, check_consistency
from stampede.errors import ConfigurationError
from stampede.faults.backends import terminate_backends
from stampede.launcher import LaunchPlan, LaunchResult, launch, start_launch
from stampede.records.list_append import TransactionStatus, transaction_status
from stampede.services.postgres_target import PostgresTarget
from stampede.workloads.isolation import IsolationLevel
from stampede.workloads.list_append import ListAppendTool

from .support import wait_for_operations, with_target

# Opposite lock orders wait this long, then abort, on every server: not each server's deadlock_timeout (1 s by
# default; the embedded server's is 100 ms), which made these tests ten times slower on an external server.
LOCK_TIMEOUT = 0.1


async def run(target: PostgresTarget, agents: int = 10, iterations: int = 60, **options: object) -> LaunchResult:
    options.setdefault("lock_timeout", LOCK_TIMEOUT)
    tool = ListAppendTool(target, name="history", **options)  # type: ignore[arg-type]
    return await launch(tool, LaunchPlan(agents=agents, iterations=iterations, operation_timeout=30))


def launched(pg_dsn: str, run_id: str, **options: object) -> Analysis:
    async def body(target: PostgresTarget) -> Analysis:
        return analyse((await run(target, **options)).history)

    return with_target(pg_dsn, run_id, body)


def test_serializable_shows_no_anomaly(pg_dsn: str, run_id: str) -> None:
    found = launched(pg_dsn, run_id, keys=3, isolation=IsolationLevel.SERIALIZABLE)
    assert found.anomalies == []
    assert found.failed > 0, "transactions on 3 keys from 10 agents must meet serialization failures"
    verdict = check_consistency(found, "strict serializable")
    assert verdict.passed, verdict.message


def test_repeatable_read_is_snapshot_isolation_with_write_skew(pg_dsn: str, run_id: str) -> None:
    # 1,000 transactions on 3 keys: G2-item in 10 runs of 10 (7 a run at 400 transactions; 600 missed it once).
    found = launched(pg_dsn, run_id, iterations=100, keys=3, isolation=IsolationLevel.REPEATABLE_READ)
    assert check_anomalies_include(found, ["G2-item"]).passed, found.counts()
    assert check_consistency(found, "snapshot isolation").passed, check_consistency(found, "snapshot isolation")
    assert not check_consistency(found, "serializable").passed


def test_read_committed_shows_anomalies_snapshot_isolation_forbids(pg_dsn: str, run_id: str) -> None:
    found = launched(pg_dsn, run_id, keys=3, isolation=IsolationLevel.READ_COMMITTED)
    assert {"G-single", "lost update"} & set(found.counts()), found.counts()
    assert check_consistency(found, "read committed").passed, check_consistency(found, "read committed")
    assert not check_consistency(found, "snapshot isolation").passed


def test_every_micro_operation_is_recorded_with_its_values_and_keys_rotate(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> tuple[LaunchResult, LaunchResult]:
        tool = ListAppendTool(target, name="history", keys=2, appends_per_key=3, read_fraction=0.5)
        plan = LaunchPlan(agents=4, iterations=20, operation_timeout=30)
        return await launch(tool, plan), await launch(tool, plan)

    first, second = with_target(pg_dsn, run_id, body)
    ops = [micro for op in first.history for micro in op.written]
    assert {micro[0] for micro in ops} == {"append", "r"}
    reads = [micro[2] for op in first.history if op.ok for micro in op.written if micro[0] == "r"]
    assert all(isinstance(values, list) and len(values) <= 3 for values in reads)
    assert len({micro[1] for micro in ops}) > 2, "keys retire after 3 appends"
    first_keys = {micro[1] for micro in ops}
    assert first_keys.isdisjoint(micro[1] for op in second.history for micro in op.written)
    assert "garbage read" not in analyse(second.history).counts()


def test_a_transaction_cut_off_by_its_timeout_is_unknown_never_committed(pg_dsn: str, run_id: str) -> None:
    found = launched(pg_dsn, run_id, agents=2, iterations=5, transaction_timeout=1e-6)
    assert found.unknown == found.transactions == 10
    verdict = check_consistency(found, "serializable")
    assert verdict.inconclusive
    assert "none of its 10 transactions committed" in verdict.message


def test_terminated_backends_leave_unknown_transactions_and_no_false_anomaly(pg_dsn: str, run_id: str) -> None:
    """Backends killed mid-transaction: those transactions end unknown (57P01 / 08003), their micro-operations
    recorded; none is taken for a commit unless a read saw it, and serializable still shows no anomaly."""

    async def body(target: PostgresTarget) -> tuple[LaunchResult, int]:
        tool = ListAppendTool(
            target, name="history", keys=3, isolation=IsolationLevel.SERIALIZABLE, lock_timeout=LOCK_TIMEOUT
        )
        running = start_launch(tool, LaunchPlan(agents=10, duration=2.0, operation_timeout=30))
        await wait_for_operations(running, 50)
        terminated = 0
        for _ in range(3):
            terminated += len(await terminate_backends(target, 0.5, in_transaction=True, within=2.0))
            await asyncio.sleep(0.2)
        return await running.task, terminated

    result, terminated = with_target(pg_dsn, run_id, body)
    unknown = [op for op in result.history if transaction_status(op.outcome, op.error) is TransactionStatus.UNKNOWN]
    assert terminated and unknown, (terminated, len(unknown))
    assert all(op.written for op in unknown)
    found = analyse(result.history)
    assert found.unknown == len(unknown)
    assert check_consistency(found, "serializable").passed, check_consistency(found, "serializable")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keys": 0}, "keys must be at least 1"),
        ({"read_fraction": 1.5}, "read_fraction must be between 0 and 1"),
        ({"max_transaction_length": 0}, "max_transaction_length must be at least 1"),
        ({"lock_timeout": 0}, "lock_timeout must be above 0 s"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ListAppendTool(None, name="bad", **options)  # type: ignore[arg-type]
