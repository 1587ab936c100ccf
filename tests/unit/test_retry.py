"""Retrying on concurrency conflicts: how often, when to stop, how long to wait."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable

import pytest

from stampede.agents import OpResult
from stampede.errors import ConfigurationError
from stampede.outcomes import Outcome
from stampede.retry import NO_RETRIES, RetryPolicy, with_retries

FAST = RetryPolicy(max_retries=5, base_delay=0.0, max_delay=0.0)


class SqlStateError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def scripted(steps: Iterable[Outcome | Exception]) -> tuple[Callable[[], Awaitable[OpResult]], list[int]]:
    """An attempt that plays ``steps`` in order (returning outcomes, raising exceptions) and counts calls."""
    remaining = list(steps)
    calls = [0]

    async def attempt() -> OpResult:
        calls[0] += 1
        step = remaining.pop(0)
        if isinstance(step, Exception):
            raise step
        return OpResult(step, read={"attempt": calls[0]})

    return attempt, calls


def retried(steps: Iterable[Outcome | Exception], policy: RetryPolicy = FAST) -> tuple[OpResult, int]:
    attempt, calls = scripted(steps)
    result = asyncio.run(with_retries(attempt, policy))
    return result, calls[0]


def test_conflicts_are_retried_until_success() -> None:
    result, calls = retried([Outcome.CONFLICT, Outcome.SERIALIZATION_FAILURE, Outcome.DEADLOCK, Outcome.OK])
    assert calls == 4
    assert result.outcome is Outcome.OK and result.read == {"attempt": 4}
    assert result.retries == 3
    assert result.retry_causes == (Outcome.CONFLICT, Outcome.SERIALIZATION_FAILURE, Outcome.DEADLOCK)
    assert not result.exhausted


def test_exceptions_carrying_conflict_sqlstates_are_retried() -> None:
    result, calls = retried([SqlStateError("40001"), SqlStateError("40P01"), SqlStateError("55P03"), Outcome.OK])
    assert calls == 4 and result.outcome is Outcome.OK
    assert result.retry_causes == (Outcome.SERIALIZATION_FAILURE, Outcome.DEADLOCK, Outcome.CONFLICT)


def test_retries_stop_at_the_maximum_and_mark_exhaustion() -> None:
    result, calls = retried([Outcome.CONFLICT] * 10, RetryPolicy(max_retries=3, base_delay=0.0, max_delay=0.0))
    assert calls == 4
    assert result.outcome is Outcome.CONFLICT
    assert result.retries == 3 and result.retry_causes == (Outcome.CONFLICT,) * 3
    assert result.exhausted


def test_exhausted_by_an_exception_keeps_its_code() -> None:
    result, calls = retried([SqlStateError("40001")] * 3, RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0))
    assert calls == 3
    assert (result.outcome, result.error, result.exhausted) == (Outcome.SERIALIZATION_FAILURE, "40001", True)


def test_without_retries_a_conflict_is_returned_as_is() -> None:
    result, calls = retried([Outcome.CONFLICT, Outcome.OK], NO_RETRIES)
    assert calls == 1
    assert (result.outcome, result.retries, result.exhausted) == (Outcome.CONFLICT, 0, False)


@pytest.mark.parametrize(
    ("failure", "outcome", "code"),
    [
        (ValueError("bad row"), Outcome.ERROR, "ValueError"),
        (SqlStateError("23505"), Outcome.ERROR, "23505"),
        (TimeoutError(), Outcome.TIMEOUT, "timeout"),
        (SqlStateError("57014"), Outcome.TIMEOUT, "57014"),
    ],
)
def test_first_non_conflict_error_stops_retrying(failure: Exception, outcome: Outcome, code: str) -> None:
    result, calls = retried([Outcome.CONFLICT, failure, Outcome.OK])
    assert calls == 2
    assert (result.outcome, result.error) == (outcome, code)
    assert result.retries == 1 and result.retry_causes == (Outcome.CONFLICT,)
    assert not result.exhausted


def test_a_returned_timeout_is_not_retried() -> None:
    result, calls = retried([Outcome.TIMEOUT, Outcome.OK])
    assert calls == 1 and result.outcome is Outcome.TIMEOUT and result.retries == 0


def test_cancellation_is_not_swallowed() -> None:
    async def attempt() -> OpResult:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(with_retries(attempt, FAST))


def test_backoff_waits_grow_and_stop_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # always the longest allowed wait
    attempt, _ = scripted([Outcome.CONFLICT] * 7)
    policy = RetryPolicy(max_retries=6, base_delay=0.01, max_delay=0.05)

    async def scenario() -> OpResult:
        monkeypatch.setattr(asyncio, "sleep", record_sleep)
        return await with_retries(attempt, policy)

    result = asyncio.run(scenario())
    assert result.exhausted
    assert slept == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05, 0.05])


def test_backoff_delays_are_jittered_within_bounds() -> None:
    policy = RetryPolicy(max_retries=100, base_delay=0.002, max_delay=0.1)
    for retry in range(0, 30):
        ceiling = min(0.1, 0.002 * 2**retry)
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
    assert len({policy.delay(5) for _ in range(50)}) > 1, "delays must be jittered"
    assert 0.0 <= policy.delay(5_000) <= 0.1  # no overflow after very many retries


def test_real_backoff_is_short_with_the_default_policy() -> None:
    result, calls = retried([Outcome.CONFLICT] * 5 + [Outcome.OK], RetryPolicy())
    assert calls == 6 and result.outcome is Outcome.OK


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"max_retries": -1}, "max retries must be 0 or more, got -1"),
        ({"base_delay": -0.1}, r"backoff must satisfy 0 <= base \(-0.1 s\) <= cap \(0.1 s\)"),
        ({"base_delay": 0.5, "max_delay": 0.1}, r"base \(0.5 s\) <= cap \(0.1 s\)"),
    ],
)
def test_retry_policy_rejects_what_cannot_work(settings: dict[str, float], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        RetryPolicy(**settings)  # type: ignore[arg-type]


def test_retry_policy_accepts_no_backoff() -> None:
    assert RetryPolicy(max_retries=0, base_delay=0.0, max_delay=0.0).delay(3) == 0.0
