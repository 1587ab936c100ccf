"""What the agent service keeps in Redis: the session registry (one per user) and locks."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from .protocol import RunFailure
from .store import ToolFailure

_FIRST_RETRY = 0.005  # seconds; doubled per try up to _LAST_RETRY, jittered so waiters do not march in step
_LAST_RETRY = 0.05

# Delete or touch a key only while it still holds our value: another holder's must survive.
_DELETE_IF_OURS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_EXPIRE_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class SessionRegistry:
    """``<prefix>agent:session:<user>`` holds the id of the user's one session, with a TTL.

    ``allow_second`` is the second_session bug: a claim overwrites instead of refusing.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_ms: int, *, allow_second: bool) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.allow_second = allow_second

    def key(self, user_id: str) -> str:
        return f"{self.prefix}agent:session:{user_id}"

    async def claim(self, user_id: str, session_id: str) -> bool:
        """Register ``session_id`` as the user's session; False if the user has one already."""
        nx = not self.allow_second
        return bool(await self.client.set(self.key(user_id), session_id, nx=nx, px=self.ttl_ms))

    async def refresh(self, claims: Sequence[tuple[str, str]]) -> list[bool]:
        """Push out the expiry of each ``(user_id, session_id)``, in one round trip; False where the key is not ours."""
        async with self.client.pipeline(transaction=False) as pipeline:
            for user_id, session_id in claims:
                if self.allow_second:
                    pipeline.pexpire(self.key(user_id), self.ttl_ms)
                else:
                    pipeline.eval(_EXPIRE_IF_OURS, 1, self.key(user_id), session_id, self.ttl_ms)
            return [bool(ours) for ours in await pipeline.execute()]

    async def release(self, user_id: str, session_id: str) -> None:
        await self.client.eval(_DELETE_IF_OURS, 1, self.key(user_id), session_id)


class RedisLocks:
    """Locks as ``<prefix>agent:lock:<name>`` keys holding a random token, with a TTL."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_ms: int, wait_ms: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms

    def key(self, name: str) -> str:
        return f"{self.prefix}agent:lock:{name}"

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        """Hold lock ``name``; raise ToolFailure(lock_timeout) after waiting ``wait_ms``."""
        key, token = self.key(name), secrets.token_hex(8)
        deadline = asyncio.get_running_loop().time() + self.wait_ms / 1000
        retry = _FIRST_RETRY
        while not await self.client.set(key, token, nx=True, px=self.ttl_ms):
            if asyncio.get_running_loop().time() >= deadline:
                raise ToolFailure(RunFailure.LOCK_TIMEOUT, f"lock {name} stayed taken for {self.wait_ms} ms")
            await asyncio.sleep(random.uniform(retry / 2, retry))
            retry = min(retry * 2, _LAST_RETRY)
        try:
            yield
        finally:
            await self.client.eval(_DELETE_IF_OURS, 1, key, token)
