"""Locks agents compete for, each behind one interface (:class:`~stampede.locks.base.Lock`).

======================  ==========================================================  ========  =======
lock                    how                                                         lease     fencing
======================  ==========================================================  ========  =======
stampede redis          ``SET NX PX`` + ``INCR`` in one script; token-checked DEL   yes       yes
redis-py                ``redis.asyncio.lock.Lock``, one object per holder          yes       no
advisory session        ``pg_advisory_lock`` / ``pg_advisory_unlock``               no        yes
advisory transaction    ``pg_advisory_xact_lock``, released by ``COMMIT``           no        yes
for update              ``SELECT … FOR UPDATE`` on a lock row, ``COMMIT``           no        yes
python:<module:name>    lock objects of the user's, one per holder                  optional  optional
broken                  ``SETNX`` then ``EXPIRE``; release by plain ``DEL``          yes       no
======================  ==========================================================  ========  =======
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .base import Grant, Lock, LockHolder, LockKind, LockSpec, ReleaseAnswer
from .broken_lock import BrokenRedisLock
from .postgres_locks import PostgresLock
from .python_lock import PythonLock
from .redis_lock import StampedeRedisLock
from .redis_py_lock import RedisPyLock

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget
    from ..services.redis_target import RedisTarget

__all__ = ["Grant", "Lock", "LockHolder", "LockKind", "LockSpec", "ReleaseAnswer", "make_lock"]


class Targets(Protocol):
    """Where the services are; a lock asks only for the one it lives in."""

    @property
    def redis(self) -> RedisTarget: ...

    @property
    def postgres(self) -> PostgresTarget: ...


def make_lock(spec: LockSpec, lease: float | None, targets: Targets) -> Lock:
    """The lock ``spec`` names, with ``lease`` seconds (``None``: the lock's default, or none)."""
    kind = spec.kind
    if kind is LockKind.STAMPEDE_REDIS:
        return StampedeRedisLock(targets.redis, lease)
    if kind is LockKind.REDIS_PY:
        return RedisPyLock(targets.redis, lease)
    if kind is LockKind.BROKEN:
        return BrokenRedisLock(targets.redis, lease)
    if kind is LockKind.PYTHON:
        return PythonLock(spec, lease, targets.redis)
    return PostgresLock(kind, targets.postgres, lease)
