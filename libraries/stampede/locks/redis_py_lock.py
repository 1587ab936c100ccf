"""redis-py's own lock (``redis.asyncio.lock.Lock``), one object per holder, as its documentation asks.

It takes the lock with ``SET NX PX`` and a token and releases it with a
token-checked script, raising ``LockNotOwnedError`` when the lease ran out
first. It issues no fencing number. Stampede polls it with ``blocking=False``,
so the try that won the lock, and with it the earliest start of the lease, is
known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio.lock import Lock as RedisPyLockObject
from redis.exceptions import LockNotOwnedError

from .base import Grant, LockHolder, LockKind, LockSpec, ReleaseAnswer, poll
from .redis_lock import RedisLeaseLock

if TYPE_CHECKING:
    from ..services.redis_target import RedisTarget


class RedisPyLock(RedisLeaseLock):
    def __init__(self, target: RedisTarget, lease: float | None) -> None:
        super().__init__(LockSpec(LockKind.REDIS_PY), target, lease)

    async def holder(self, key: str, wait: float) -> LockHolder:
        # thread_local=False: the token belongs to this object (one per holder), not to the engine's thread.
        lock = RedisPyLockObject(
            self.target.client, self.lock_key(key), timeout=self.lease_ms / 1000, blocking=False, thread_local=False
        )
        return _RedisPyHolder(lock, wait)


class _RedisPyHolder(LockHolder):
    def __init__(self, lock: RedisPyLockObject, wait: float) -> None:
        self.lock = lock
        self.wait = wait

    async def acquire(self, token: str) -> Grant | None:
        async def try_once() -> bool | None:
            return True if await self.lock.acquire(blocking=False, token=token) else None

        got, tried = await poll(try_once, self.wait)
        return None if got is None else Grant(None, tried)

    async def release(self) -> ReleaseAnswer:
        try:
            await self.lock.release()
        except LockNotOwnedError:
            return ReleaseAnswer.NOT_OWNED
        return ReleaseAnswer.RELEASED
