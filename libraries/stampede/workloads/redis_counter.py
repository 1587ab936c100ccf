"""A Redis counter that agents increment once per operation, each increment tagged with its operation id.

One Lua script adds the operation's id to the launch's set of applied ids and
increments the counter only if the id was new, atomically, in one round trip.
So an agent whose connection was killed under it can retry the same operation
on a fresh connection without risk: if the first try had been applied, the
retry says so and changes nothing. The set is the ledger: the check after the
run (:mod:`stampede.checkers.ledger`) finds no increment lost or doubled.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from redis import exceptions as rx

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError, StampedeError
from ..outcomes import Outcome
from ..records.snapshots import LedgerSnapshot

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..services.redis_target import RedisTarget

# KEYS[1]: applied ids, KEYS[2]: counter; ARGV[1]: operation id. Returns {1 if applied now, counter}.
_APPLY_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    return {1, redis.call('INCR', KEYS[2])}
end
return {0, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
# A dropped connection and a connection-level timeout are worth a retry; a server error is not.
_RETRIED = (rx.ConnectionError, rx.TimeoutError)


class RedisCounterTool(BaseTool):
    """Increments ``counter`` once per operation, retrying a lost connection up to ``max_retries`` times."""

    def __init__(
        self, target: RedisTarget, *, name: str = "count", counter: str = "counter", max_retries: int = 3
    ) -> None:
        if max_retries < 0:
            raise ConfigurationError(f"max retries must be 0 or more, got {max_retries}")
        self.target = target
        self.name = name
        self.counter_key = target.key(f"counter:{counter}")
        self.max_retries = max_retries
        self.launch_key: str | None = None
        self.initial: int | None = None

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "counter": self.counter_key,
            "max retries": str(self.max_retries),
            "ledger key": self.launch_key or "",
        }

    def applied_key(self, launch_key: str) -> str:
        return self.target.key(f"counter:applied:{launch_key}")

    async def setup(self, agents: int) -> None:
        self.launch_key = secrets.token_hex(6)
        self.initial = int(await self.target.client.get(self.counter_key) or 0)

    async def run(self, agent: AgentContext) -> OpResult:
        assert self.launch_key is not None, "setup() runs before agents"
        operation = f"{agent.agent}:{agent.iteration}"
        keys = [self.applied_key(self.launch_key), self.counter_key]
        causes: list[Outcome] = []
        while True:
            try:
                applied, value = await self.target.client.eval(_APPLY_ONCE, 2, *keys, operation)
                break
            except _RETRIED:
                if len(causes) >= self.max_retries:
                    raise
                causes.append(Outcome.ERROR)
        result = OpResult(written={"operation": operation, "counter": int(value), "applied by this try": bool(applied)})
        result.retries = len(causes)
        result.retry_causes = tuple(causes)
        return result

    async def ledger_snapshot(self, launch_key: str, target: RedisTarget | None = None) -> LedgerSnapshot:
        """The counter before the launch with ``launch_key`` and now, and the operations that launch applied."""
        if self.initial is None:
            raise StampedeError(f"Tool {self.name!r} has not run yet, so it has no applied operations to read.")
        client = (target or self.target).client
        try:
            members, final = await self._read(client, launch_key)
        except _RETRIED:  # connections killed by a fault fail once each: start afresh (the launch is over)
            await client.connection_pool.disconnect()
            members, final = await self._read(client, launch_key)
        entries = {}
        for member in members:
            agent, iteration = (member.decode() if isinstance(member, bytes) else member).split(":")
            entries[(int(agent), int(iteration))] = 1
        return LedgerSnapshot(self.initial, final, entries, sign=1, unit="increments")

    async def _read(self, client: Redis, launch_key: str) -> tuple[set[bytes | str], int]:
        members = await client.smembers(self.applied_key(launch_key))
        return members, int(await client.get(self.counter_key) or 0)
