"""Two third-party Redis lock libraries plugged into Stampede as ``python:`` locks, used right and used naively.

Each adapter is what a user would write after reading the library's README:
python-redis-lock (``redis_lock.Lock``) and pottery (``Redlock``), both on a
synchronous ``redis.Redis`` of their own, made from the URL Stampede gives.
The naive ones are the mistakes the documentation makes easy: one lock object
shared by every agent, a release that lets the library's "not owned" exception
through, a lease fixed in the adapter that the tool was never told of.
"""

from __future__ import annotations

from typing import Any, ClassVar

import redis_lock
from pottery import Redlock, ReleaseUnlockedLock
from redis import Redis

SHORT_LEASE = 0.05
"""The lease the misconfigured Redlock adapter fixes, shorter than the work the tests give it."""


class RedisLock:
    """python-redis-lock as its README shows it, with a lease in whole seconds (its ``expire``).

    The adapter of ``Define Lock Tool``'s documentation, word for word.
    """

    def __init__(self, key: str, lease: float | None, redis_url: str) -> None:
        if lease is None or lease != int(lease):
            raise ValueError("python-redis-lock's expire is whole seconds: give lease=1 s, 2 s, …")
        self.client = Redis.from_url(redis_url)
        self.lock = redis_lock.Lock(self.client, key, expire=int(lease))

    def acquire(self, blocking: bool = False) -> bool:
        return bool(self.lock.acquire(blocking=blocking))

    def release(self) -> bool:
        try:
            self.lock.release()
        except redis_lock.NotAcquired:
            return False  # the lease ran out first
        return True

    def close(self) -> None:
        self.client.close()


_shared: dict[str, RedisLock] = {}


def shared_redis_lock(key: str, redis_url: str) -> RedisLock:
    """Naive: one python-redis-lock object for every agent, which keeps its owner's state in itself."""
    if key not in _shared:
        _shared[key] = RedisLock(key, 5.0, redis_url)
    return _shared[key]


def forget_shared() -> None:
    """Close the shared objects' clients (Stampede closes each, but a shared one only once it is forgotten)."""
    while _shared:
        _shared.popitem()[1].close()


class PotteryRedlock:
    """pottery's Redlock on one master, its ``auto_release_time`` the tool's lease."""

    def __init__(self, key: str, lease: float, redis_url: str) -> None:
        self.client = Redis.from_url(redis_url)
        self.lock = Redlock(key=key, masters={self.client}, auto_release_time=lease)

    def acquire(self, blocking: bool = False) -> bool:
        return self.lock.acquire(blocking=blocking)

    def release(self) -> bool:
        try:
            self.lock.release()
        except ReleaseUnlockedLock:
            return False  # the lease ran out first
        return True

    def close(self) -> None:
        self.client.close()


class RaisingRedlock(PotteryRedlock):
    """Naive: the release lets pottery's ``ReleaseUnlockedLock`` through instead of answering "not owned"."""

    def release(self) -> bool:
        self.lock.release()
        return True


class ShortLeaseRedlock(PotteryRedlock):
    """Misconfigured: a lease fixed here, which the tool (declaring none) knows nothing of."""

    def __init__(self, key: str, redis_url: str) -> None:
        super().__init__(key, SHORT_LEASE, redis_url)


class GivenArguments:
    """Records what each call of the factory was given, so a test can see one object per agent."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, key: str, lease: float | None, redis: Any, redis_url: str) -> None:
        self.given = {"key": key, "lease": lease, "redis": redis, "redis_url": redis_url}
        self.made.append(self.given)
        self.lock = Redlock(key=key, masters={Redis.from_url(redis_url)}, auto_release_time=lease or 1.0)

    def acquire(self, blocking: bool = False) -> bool:
        return self.lock.acquire(blocking=blocking)

    def release(self) -> bool:
        self.lock.release()
        return True

    def close(self) -> None:
        for master in self.lock.masters:
            master.close()


class NoBlocking:
    """A plain acquire() without the ``blocking`` Stampede polls it with."""

    def acquire(self) -> bool:
        return True

    def release(self) -> bool:
        return True
