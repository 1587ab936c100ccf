"""What can happen to one operation, and how exceptions map onto it."""

from __future__ import annotations

import asyncio
from enum import StrEnum


class Outcome(StrEnum):
    """The class of an operation's result, as recorded in the history."""

    OK = "ok"
    CONFLICT = "conflict"
    SERIALIZATION_FAILURE = "serialization_failure"
    DEADLOCK = "deadlock"
    TIMEOUT = "timeout"
    ERROR = "error"

    @property
    def is_concurrency_conflict(self) -> bool:
        """True for the outcomes a correct program expects under contention and retries."""
        return self in _CONCURRENCY_CONFLICTS


_CONCURRENCY_CONFLICTS = frozenset({Outcome.CONFLICT, Outcome.SERIALIZATION_FAILURE, Outcome.DEADLOCK})

# SQLSTATE classes: https://www.postgresql.org/docs/current/errcodes-appendix.html
_SQLSTATE_OUTCOMES = {
    "40001": Outcome.SERIALIZATION_FAILURE,  # serialization_failure
    "40P01": Outcome.DEADLOCK,  # deadlock_detected
    "55P03": Outcome.CONFLICT,  # lock_not_available (NOWAIT)
    "57014": Outcome.TIMEOUT,  # query_canceled (statement_timeout)
}


class ConflictError(Exception):
    """Raised to end an attempt as a conflict (its transaction rolled back, retried by policy), named by ``code``.

    A tool raises it where a guard found the data changed under it: a version
    check that matched no row, a claim that found nothing left to claim.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


def classify_exception(error: BaseException) -> tuple[Outcome, str]:
    """Return the outcome an exception stands for and a short code naming it.

    The code is the SQLSTATE when the error carries one, a :class:`ConflictError`'s
    own code, else the exception class.
    """
    if isinstance(error, ConflictError):
        return Outcome.CONFLICT, error.code
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return _SQLSTATE_OUTCOMES.get(sqlstate, Outcome.ERROR), sqlstate
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return Outcome.TIMEOUT, "timeout"
    return Outcome.ERROR, type(error).__name__
