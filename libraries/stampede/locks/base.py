"""What every lock agents compete for offers: a holder per agent that acquires, releases and lets go.

A :class:`Lock` is one implementation (Stampede's Redis lock, redis-py's,
PostgreSQL advisory locks, ``SELECT … FOR UPDATE``, a Python lock of the
user's, the seeded broken one). Each agent gets its own :class:`LockHolder` for
one lock key, as each client of a real service would.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TypeVar

from ..errors import ConfigurationError

T = TypeVar("T")
PYTHON_PREFIX = "python:"
# A holder waiting for a lock that only answers "taken" tries again after 1 ms, backing off to 8 ms with jitter:
# prompt hand-overs without a busy loop hammering the server.
FIRST_POLL, LAST_POLL = 0.001, 0.008


class LockKind(Enum):
    """The lock implementations Stampede can test; see :mod:`stampede.locks`."""

    STAMPEDE_REDIS = "stampede redis"
    REDIS_PY = "redis-py"
    ADVISORY_SESSION = "advisory session"
    ADVISORY_TRANSACTION = "advisory transaction"
    FOR_UPDATE = "for update"
    PYTHON = "python"
    BROKEN = "broken"


@dataclass(frozen=True)
class LockSpec:
    """A lock as a suite names it: ``stampede redis``, ``advisory session``, ``python:pkg.mod:make_lock`` …"""

    kind: LockKind
    factory: str | None = None
    """For ``python:`` locks, ``module:callable`` that makes the lock."""

    @classmethod
    def parse(cls, text: str) -> LockSpec:
        raw = str(text).strip()
        if raw.lower().startswith(PYTHON_PREFIX):
            factory = raw[len(PYTHON_PREFIX) :].strip()
            if not factory:
                raise ConfigurationError(
                    "A Python lock is written python:<module>:<callable>, e.g. "
                    "python:stampede.locks.in_process:asyncio_lock; the path is missing"
                )
            return cls(LockKind.PYTHON, factory)
        words = " ".join(raw.replace("_", " ").lower().split())
        for kind in LockKind:
            if kind is not LockKind.PYTHON and words in (kind.value, kind.value.replace("-", " ")):
                return cls(kind)
        names = ", ".join(kind.value for kind in LockKind if kind is not LockKind.PYTHON)
        raise ConfigurationError(f"Unknown lock {text!r}; use one of {names}, or python:<module>:<callable>.")

    @property
    def label(self) -> str:
        return f"{PYTHON_PREFIX}{self.factory}" if self.kind is LockKind.PYTHON else self.kind.value


@dataclass(frozen=True)
class Grant:
    """A granted acquire: the fencing number the lock issued (if it issues them) and when the granted try was sent.

    ``tried_ns`` bounds the lease from below: the lock service cannot have
    started a lease before the request that won it left the client.
    """

    fence: int | None
    tried_ns: int


class ReleaseAnswer(StrEnum):
    """What the lock said to a release."""

    RELEASED = "released"
    NOT_OWNED = "not owned"


class LockHolder(ABC):
    """One agent's handle on one lock key."""

    @abstractmethod
    async def acquire(self, token: str) -> Grant | None:
        """Take the lock, waiting at most the holder's wait bound; ``None`` when it stayed taken."""

    @abstractmethod
    async def release(self) -> ReleaseAnswer:
        """Give the lock back, and say whether the lock still knew this holder as its owner."""

    def abandon(self) -> None:  # noqa: B027 - most locks need nothing: their lease ends the hold
        """Let go of a hold cut off mid-way, without a round trip (the lock may be unreachable)."""

    async def close(self) -> None:  # noqa: B027 - a holder with nothing of its own to close
        """Give back what the holder borrowed (a connection); the hold, if any, ends with it."""


class Lock(ABC):
    """One lock implementation, shared by the holders of one tool."""

    spec: LockSpec
    lease: float | None = None
    """Seconds after which the lock lets go of a holder on its own; ``None``: held until released."""
    issues_fences: bool = False

    def describe(self) -> dict[str, str]:
        lease = "none (held until released)" if self.lease is None else f"{self.lease * 1000:g} ms"
        return {
            "lock": self.spec.label,
            "lease": lease,
            "fencing numbers": "issued on every grant" if self.issues_fences else "none",
        }

    def caveat(self) -> str:
        """What the user should know of this lock as configured, before it runs (``''``: nothing)."""
        return ""

    async def setup(self, agents: int) -> None:  # noqa: B027 - locks that need no preparation
        """Prepare for a launch of ``agents`` holders."""

    @abstractmethod
    async def holder(self, key: str, wait: float) -> LockHolder:
        """A new holder of lock ``key`` whose acquires wait at most ``wait`` seconds."""

    async def teardown(self) -> None:  # noqa: B027 - locks with nothing to give back
        """Give back what :meth:`setup` took."""

    async def sweep(self) -> None:  # noqa: B027 - locks that leave nothing of their own behind
        """Delete what the lock left in its service, once every holder of the launch has ended (in any process)."""


def lease_milliseconds(lease: float) -> int:
    """The lease as Redis takes it (whole milliseconds), refusing leases Redis would round to nothing."""
    milliseconds = round(lease * 1000)
    if milliseconds < 1:
        raise ConfigurationError(f"a lease must be at least 1 ms, got {lease * 1000:g} ms")
    return milliseconds


async def poll(try_once: Callable[[], Awaitable[T | None]], wait: float) -> tuple[T | None, int]:
    """Call ``try_once`` until it returns something or ``wait`` seconds pass; return it and when its try was sent."""
    deadline = time.monotonic_ns() + int(wait * 1e9)
    delay = FIRST_POLL
    while True:
        tried = time.monotonic_ns()
        got = await try_once()
        if got is not None:
            return got, tried
        left = (deadline - time.monotonic_ns()) / 1e9
        if left <= 0:
            return None, tried
        await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.0)))
        delay = min(delay * 2, LAST_POLL)
