"""Stampede's own Redis lock: ``SET NX PX`` with a token, a fencing number from ``INCR``, release by script.

Acquire is one Lua script: set the lock key to the holder's token only if it is
free, with the lease as its expiry, and on success ``INCR`` the lock's fence
counter and return it. Grant and fence come from the same atomic step, so a
later grant always carries a higher number (Kleppmann, "How to do distributed
locking", 2016): a resource that remembers the highest number it has seen can
refuse a holder that lost the lock while it was paused. Release is a second
script that deletes the key only if it still holds this holder's token; ``0``
means the lease ran out first ("not owned"), and nothing of another holder's
is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Grant, Lock, LockHolder, LockKind, LockSpec, ReleaseAnswer, lease_milliseconds, poll

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from ..services.redis_target import RedisTarget

DEFAULT_LEASE = 0.5

# KEYS[1]: the lock, KEYS[2]: its fence counter; ARGV[1]: token, ARGV[2]: lease in ms. Returns the fence or nil.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return redis.call('INCR', KEYS[2])
end
return false
"""
# KEYS[1]: the lock; ARGV[1]: token. Returns 1 when this token's lock was deleted, 0 when it was not held.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeaseLock(Lock):
    """A lease lock in Redis: keys under the run's prefix, a lease in whole milliseconds."""

    def __init__(self, spec: LockSpec, target: RedisTarget, lease: float | None) -> None:
        self.spec = spec
        self.target = target
        self.lease = DEFAULT_LEASE if lease is None else lease
        self.lease_ms = lease_milliseconds(self.lease)

    def lock_key(self, key: str) -> str:
        return self.target.key(f"lock:{key}")


class StampedeRedisLock(RedisLeaseLock):
    issues_fences = True

    def __init__(self, target: RedisTarget, lease: float | None) -> None:
        super().__init__(LockSpec(LockKind.STAMPEDE_REDIS), target, lease)
        self.acquire_script = target.client.register_script(_ACQUIRE)
        self.release_script = target.client.register_script(_RELEASE)

    async def holder(self, key: str, wait: float) -> LockHolder:
        return _StampedeHolder(self, key, wait)


class _StampedeHolder(LockHolder):
    def __init__(self, lock: StampedeRedisLock, key: str, wait: float) -> None:
        self.lock = lock
        self.keys = [lock.lock_key(key), lock.lock_key(f"{key}:fence")]
        self.wait = wait
        self.token: str | None = None

    async def acquire(self, token: str) -> Grant | None:
        script: AsyncScript = self.lock.acquire_script

        async def try_once() -> int | None:
            fence = await script(keys=self.keys, args=[token, self.lock.lease_ms])
            return None if fence is None else int(fence)

        fence, tried = await poll(try_once, self.wait)
        if fence is None:
            return None
        self.token = token
        return Grant(fence, tried)

    async def release(self) -> ReleaseAnswer:
        token, self.token = self.token, None
        if token is None:
            return ReleaseAnswer.NOT_OWNED
        deleted = await self.lock.release_script(keys=self.keys[:1], args=[token])
        return ReleaseAnswer.RELEASED if deleted else ReleaseAnswer.NOT_OWNED
