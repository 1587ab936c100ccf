"""A seeded broken Redis lock, as it is often written: ``SETNX``, then ``EXPIRE``, and release by plain ``DEL``.

Two mistakes. Taking the lock and giving it a lease are two commands, so a
holder that dies between them leaves a lock that never expires. And release
deletes the key whoever holds it: a holder that outlived its lease deletes the
lock of the holder that took over, and a third holder gets in while the second
is still inside its lease. That is the lock granted twice, which
:func:`stampede.checkers.mutual_exclusion.check_never_granted_twice` must
catch. ``DEL`` answers "released" whenever a key was there, so the release
cannot tell that the lock was someone else's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Grant, LockHolder, LockKind, LockSpec, ReleaseAnswer, poll
from .redis_lock import RedisLeaseLock

if TYPE_CHECKING:
    from ..services.redis_target import RedisTarget


class BrokenRedisLock(RedisLeaseLock):
    def __init__(self, target: RedisTarget, lease: float | None) -> None:
        super().__init__(LockSpec(LockKind.BROKEN), target, lease)

    async def holder(self, key: str, wait: float) -> LockHolder:
        return _BrokenHolder(self, self.lock_key(key), wait)


class _BrokenHolder(LockHolder):
    def __init__(self, lock: BrokenRedisLock, key: str, wait: float) -> None:
        self.client = lock.target.client
        self.lease_ms = lock.lease_ms
        self.key = key
        self.wait = wait

    async def acquire(self, token: str) -> Grant | None:
        async def try_once() -> bool | None:
            if not await self.client.setnx(self.key, token):
                return None
            await self.client.pexpire(self.key, self.lease_ms)
            return True

        got, tried = await poll(try_once, self.wait)
        return None if got is None else Grant(None, tried)

    async def release(self) -> ReleaseAnswer:
        deleted = await self.client.delete(self.key)
        return ReleaseAnswer.RELEASED if deleted else ReleaseAnswer.NOT_OWNED
