"""Retrying an attempt on concurrency conflicts, with capped exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .agents import OpResult
from .errors import ConfigurationError
from .outcomes import Outcome, classify_exception


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry an attempt that met a conflict.

    Delays follow "full jitter": uniform in [0, min(max_delay, base_delay * 2**n)],
    which spreads retrying agents apart instead of having them collide again.
    """

    max_retries: int = 20
    base_delay: float = 0.002
    max_delay: float = 0.1

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"max retries must be 0 or more, got {self.max_retries}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ConfigurationError(
                f"backoff must satisfy 0 <= base ({self.base_delay} s) <= cap ({self.max_delay} s)"
            )

    def delay(self, retry: int) -> float:
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** min(retry, 64)))


DEFAULT_RETRY = RetryPolicy()
NO_RETRIES = RetryPolicy(max_retries=0)


async def with_retries(attempt: Callable[[], Awaitable[OpResult]], policy: RetryPolicy) -> OpResult:
    """Run ``attempt`` until it succeeds, fails with a non-conflict, or retries run out."""
    causes: list[Outcome] = []
    while True:
        try:
            result = await attempt()
        except Exception as error:  # noqa: BLE001 - every failure is classified and recorded
            outcome, code = classify_exception(error)
            result = OpResult(outcome, error=code)
        if not result.outcome.is_concurrency_conflict:
            break
        if len(causes) >= policy.max_retries:
            result.exhausted = policy.max_retries > 0
            break
        causes.append(result.outcome)
        await asyncio.sleep(policy.delay(len(causes) - 1))
    result.retries = len(causes)
    result.retry_causes = tuple(causes)
    return result
