"""List-append transactions on Redis written as Python tools (`Define Python Tool`): a store Stampede has no
tool for, judged by the list-append checker all the same, because ``run()`` returns its micro-operations in the
record shape of ``stampede/records/list_append.py``.

Each transaction is 1 to ``length`` micro-operations on ``keys`` lists: append a value unique to this agent
(``RPUSH``) or read a whole list (``LRANGE``). ``AtomicListAppend`` sends them as one ``MULTI``/``EXEC``
transaction, which Redis runs alone: strict serializable. ``InterleavedListAppend`` sends them one by one, as a
client without transactions would: other agents' commands run in between.
"""

from __future__ import annotations

import asyncio
import random
from itertools import count
from typing import Any

import redis.asyncio as redis


class _ListAppend:
    def __init__(self, context: Any) -> None:
        self.url = context.services.redis_url
        prefix = f"{context.services.redis_prefix}{context.settings.get('namespace', 'lists')}:"
        self.keys = [f"{prefix}{n}" for n in range(int(context.settings.get("keys", 3)))]
        self.length = int(context.settings.get("length", 4))
        self.values = count(context.agent * 1_000_000)  # unique across agents, so each value is appended once
        self.random = random.Random(context.agent)
        self.client: redis.Redis | None = None

    async def setup(self) -> None:
        self.client = redis.from_url(self.url)

    async def teardown(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def plan(self) -> list[list[Any]]:
        return [
            ["r", key, None] if self.random.random() < 0.5 else ["append", key, next(self.values)]
            for key in (self.random.choice(self.keys) for _ in range(self.random.randint(1, self.length)))
        ]


class AtomicListAppend(_ListAppend):
    """The transaction in one MULTI/EXEC: Redis runs it with no other command in between."""

    async def run(self) -> dict[str, Any]:
        assert self.client is not None
        ops = self.plan()
        async with self.client.pipeline(transaction=True) as pipe:
            for f, key, value in ops:
                pipe.rpush(key, value) if f == "append" else pipe.lrange(key, 0, -1)
            results = await pipe.execute()
        for op, result in zip(ops, results, strict=True):
            if op[0] == "r":
                op[2] = [int(value) for value in result]
        return {"written": ops}


class InterleavedListAppend(_ListAppend):
    """Each micro-operation on its own: other agents' appends land between a transaction's reads and writes."""

    async def run(self) -> dict[str, Any]:
        assert self.client is not None
        ops = self.plan()
        for op in ops:
            if op[0] == "append":
                await self.client.rpush(op[1], op[2])
            else:
                op[2] = [int(value) for value in await self.client.lrange(op[1], 0, -1)]
            await asyncio.sleep(0)
        return {"written": ops}
