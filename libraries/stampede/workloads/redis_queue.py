"""The work queue in Redis: a sorted set of waiting items and a hash of items in progress.

Keys (under the run's prefix): ``queue:<name>:<n>:waiting`` (sorted set),
``…:in_progress`` (hash item → agent) and ``…:ids`` (counter). An item's
score is ``priority × 2³² − id``, so ``ZPOPMAX`` takes the highest priority
first and, within a priority, the oldest item. Enqueue (capacity check and
add) and claim (pop and mark in progress) are Lua scripts, atomic on the server.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, cast

from ..agents import AgentContext
from .work_queue import CapacityCheck, Claimed, ClaimStrategy, QueueBackend, QueueSettings, WorkQueueTool

if TYPE_CHECKING:
    from ..services.redis_target import RedisTarget

ID_SPAN = 2**32

# ARGV[1] is the capacity, or -1 for "the caller counted already".
_ENQUEUE = """
local capacity, priority = tonumber(ARGV[1]), tonumber(ARGV[2])
if capacity >= 0 and redis.call('ZCARD', KEYS[1]) >= capacity then return -1 end
local id = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], priority * 4294967296 - id, id)
return id
"""
_CLAIM = """
local popped = redis.call('ZPOPMAX', KEYS[1])
if #popped == 0 then return false end
redis.call('HSET', KEYS[2], popped[1], ARGV[1])
return popped
"""
_UNCHECKED = -1
_queue_numbers = itertools.count(1)


def priority_of(score: float) -> int:
    """The priority a score encodes (``priority × 2³² − id`` with ``1 ≤ id < 2³²``)."""
    return math.ceil(float(score) / ID_SPAN)


class RedisWorkQueue(WorkQueueTool):
    """A work queue in Redis."""

    def __init__(self, target: RedisTarget, name: str, settings: QueueSettings) -> None:
        assert settings.backend is QueueBackend.REDIS, "Redis settings"
        super().__init__(name, settings)
        self.target = target
        base = f"queue:{name}:{next(_queue_numbers)}"
        self.waiting_key = target.key(f"{base}:waiting")
        self.in_progress_key = target.key(f"{base}:in_progress")
        self.ids_key = target.key(f"{base}:ids")
        self._enqueue = target.client.register_script(_ENQUEUE)
        self._pop = target.client.register_script(_CLAIM)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "keys": f"{self.waiting_key}, {self.in_progress_key}"}

    async def enqueue(self, agent: AgentContext, priority: int) -> int | None:
        keys = [self.waiting_key, self.ids_key]
        if self.settings.capacity_check is CapacityCheck.ATOMIC:
            item = await self._enqueue(keys=keys, args=[self.capacity, priority])
        else:
            if await self.target.client.zcard(self.waiting_key) >= self.capacity:
                return None
            await self.think()
            item = await self._enqueue(keys=keys, args=[_UNCHECKED, priority])
        return None if int(item) < 0 else int(item)

    async def claim(self, agent: AgentContext) -> Claimed | None:
        if self.settings.claim_strategy is ClaimStrategy.NAIVE:
            return await self._claim_naive(agent)
        popped = await self._pop(keys=[self.waiting_key, self.in_progress_key], args=[agent.agent])
        if not popped:
            return None
        member, score = popped
        return Claimed(int(member), priority_of(float(score)))

    async def _claim_naive(self, agent: AgentContext) -> Claimed | None:
        client = self.target.client
        top = await client.zrange(self.waiting_key, 0, 0, desc=True, withscores=True)
        if not top:
            return None
        member, score = cast("tuple[bytes, float]", top[0])
        await self.think()
        await client.zrem(self.waiting_key, member)  # whether it was still there goes unchecked: the bug
        await client.hset(self.in_progress_key, member, agent.agent)
        return Claimed(int(member), priority_of(score))

    async def complete(self, agent: AgentContext, item: int) -> None:
        await self.target.client.hdel(self.in_progress_key, str(item))

    async def contents(self) -> dict[int, str]:
        client = self.target.client
        waiting = cast("list[bytes]", await client.zrange(self.waiting_key, 0, -1))
        found = {int(member): "waiting" for member in waiting}
        found.update({int(member): "in progress" for member in await client.hkeys(self.in_progress_key)})
        return found
