"""The shared resource lock holders work on: a counter in Redis that can check fencing numbers.

A holder reads the counter, works, and writes back the value it read plus one:
a read-modify-write that is right only if no other holder ran in between. So
the counter's final value counts the writes that were really protected; with
two holders at once, one increment is lost.

The resource remembers the highest fencing number it has seen, on reads and
writes alike. With fencing on, it rejects any access whose number is below that
highest one: a holder that lost the lock while paused is refused, and because
the read of the new holder already raised the highest number, the paused
holder cannot slip its write in before the new holder's either (Kleppmann,
"How to do distributed locking", 2016). With fencing off it takes every
access, and still reports the highest number it had seen, so a checker can
show the stale writes that went through. Every access is one Lua script, atomic
on the server; every accepted write gets the next serial number, the order in
which the resource applied them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..records.snapshots import ResourceState

if TYPE_CHECKING:
    from ..services.redis_target import RedisTarget

# KEYS[1]: the resource (a hash). ARGV[1]: fence ('' when the lock issues none), ARGV[2]: '1' to reject stale
# fences, ARGV[3]: the value to write ('' to read). Returns {accepted, value, highest fence before, write serial}.
_ACCESS = """
local fence = tonumber(ARGV[1])
local highest = tonumber(redis.call('HGET', KEYS[1], 'highest_fence'))
if fence and highest and fence < highest and ARGV[2] == '1' then
    return {0, false, highest}
end
if fence and (not highest or fence > highest) then
    redis.call('HSET', KEYS[1], 'highest_fence', fence)
end
if ARGV[3] == '' then
    return {1, tonumber(redis.call('HGET', KEYS[1], 'value') or '0'), highest or false}
end
redis.call('HSET', KEYS[1], 'value', ARGV[3])
return {1, tonumber(ARGV[3]), highest or false, redis.call('HINCRBY', KEYS[1], 'writes', 1)}
"""


@dataclass(frozen=True)
class Access:
    """One read or write of the resource as the holder saw it (times in monotonic ns)."""

    fence: int | None
    accepted: bool
    value: int | None
    highest_before: int | None
    serial: int | None
    invoke_ns: int
    reply_ns: int

    def record(self) -> dict[str, Any]:
        """The access as the history keeps it."""
        record: dict[str, Any] = {
            "fence": self.fence,
            "accepted": self.accepted,
            "value": self.value,
            "highest_before": self.highest_before,
            "at": [self.invoke_ns, self.reply_ns],
        }
        if self.serial is not None:
            record["serial"] = self.serial
        return record


class FencedCounter:
    """One counter per lock key under ``resource:<tool>:<key>``."""

    def __init__(self, target: RedisTarget, tool: str, *, fencing: bool) -> None:
        self.target = target
        self.tool = tool
        self.fencing = fencing
        self._access = target.client.register_script(_ACCESS)

    def key_of(self, lock_key: str) -> str:
        return self.target.key(f"resource:{self.tool}:{lock_key}")

    async def reset(self, lock_key: str) -> None:
        """Start the counter at 0, with no fencing number seen and no write made."""
        await self.target.client.delete(self.key_of(lock_key))

    async def read(self, lock_key: str, fence: int | None) -> Access:
        return await self._run(lock_key, fence, "")

    async def write(self, lock_key: str, fence: int | None, value: int) -> Access:
        return await self._run(lock_key, fence, str(value))

    async def _run(self, lock_key: str, fence: int | None, value: str) -> Access:
        invoked = time.monotonic_ns()
        reply = await self._access(
            keys=[self.key_of(lock_key)], args=["" if fence is None else fence, "1" if self.fencing else "0", value]
        )
        replied = time.monotonic_ns()
        accepted, read, highest = reply[:3]
        serial = reply[3] if len(reply) > 3 else None
        return Access(fence, bool(accepted), _int(read), _int(highest), _int(serial), invoked, replied)

    async def state(self, lock_key: str) -> ResourceState:
        fields = await self.target.client.hgetall(self.key_of(lock_key))
        found = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in fields.items()}
        return ResourceState(found.get("value", 0), found.get("writes", 0), found.get("highest_fence"))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
