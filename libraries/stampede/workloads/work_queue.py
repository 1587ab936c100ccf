"""A priority work queue under load: producers enqueue items, consumers claim and process them.

One launch runs both roles. Agents ``1 … producers`` are producers: together
they offer ``items`` items, one per operation, with priorities taken in turn from
``priorities`` (higher runs first). The queue refuses an item when ``capacity``
items are already waiting; the refusal is recorded as an operation ending in
error ``queue_full``, never dropped silently. Every other agent is a consumer:
each operation claims the waiting item of highest priority (oldest first within
a priority), "processes" it for ``process_time`` and marks it done. A consumer
with nothing to claim polls (with backoff) until an item arrives; once every producer has
finished and the queue is empty it stops, so a launch ends when the queue is
drained (launch with a ``duration`` as the upper bound).

Every operation records what it did in ``written``:

- producer: ``{"role": "producer", "item": 17, "priority": 5}`` (``item`` is
  ``None`` when refused);
- consumer: ``{"role": "consumer", "item": 17, "priority": 5,
  "claim_started_ns": …, "claimed_ns": …}`` (monotonic ns; ``item`` is ``None``
  on the last operation, which found the queue drained).

Claim strategies (which one a backend offers is listed in :data:`CLAIMS`):

==============  ================================================================
skip locked     PostgreSQL: ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)``
atomic pop      Redis: a Lua script pops the highest-scored item and marks it in progress
naive           read the first waiting item, then mark it taken with no lock and no
                condition: two consumers can take the same item (a seeded bug)
oldest first    PostgreSQL: skip locked, but ordered by arrival only: ignores priority
                (a seeded bug)
==============  ================================================================

Capacity checks: ``atomic`` (PostgreSQL: the queue's row locked, then the
waiting items counted; Redis: count and add in one Lua script) or ``count then
insert`` (count, then add without a lock: concurrent producers overfill the
queue, a seeded bug). ``think_time`` pauses between the read and the write of
both seeded bugs to make their race reliable.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome, classify_exception
from ..records.fields import QUEUE_FULL

MAX_PRIORITY = 1000
# An idle consumer polls again after 1 ms, doubling up to 16 ms: prompt, without idle agents hogging the server.
FIRST_POLL, LAST_POLL = 0.001, 0.016


class QueueBackend(Enum):
    """Where the queue lives."""

    POSTGRESQL = "postgresql"
    REDIS = "redis"


class ClaimStrategy(Enum):
    """How a consumer takes the next item; see the module documentation."""

    SKIP_LOCKED = "skip locked"
    ATOMIC_POP = "atomic pop"
    NAIVE = "naive"
    OLDEST_FIRST = "oldest first"


class CapacityCheck(Enum):
    """How a producer makes sure the queue has room."""

    ATOMIC = "atomic"
    COUNT_THEN_INSERT = "count then insert"


CLAIMS = {
    QueueBackend.POSTGRESQL: (ClaimStrategy.SKIP_LOCKED, ClaimStrategy.NAIVE, ClaimStrategy.OLDEST_FIRST),
    QueueBackend.REDIS: (ClaimStrategy.ATOMIC_POP, ClaimStrategy.NAIVE),
}
"""The claim strategies of each backend; the first is its safe default."""


@dataclass(frozen=True)
class QueueSettings:
    """What a work queue holds and how its producers and consumers behave."""

    backend: QueueBackend
    capacity: int = 1000
    producers: int = 1
    items: int = 100
    priorities: tuple[int, ...] = (1,)
    claim: ClaimStrategy | None = None
    capacity_check: CapacityCheck = CapacityCheck.ATOMIC
    process_time: float = 0.0
    think_time: float = 0.0

    def __post_init__(self) -> None:
        for name in ("capacity", "producers", "items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"a work queue's {name} must be a whole number of at least 1, got {value!r}")
        if not self.priorities:
            raise ConfigurationError("a work queue needs at least one priority, e.g. priorities=1, 5, 10")
        for priority in self.priorities:
            if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
                raise ConfigurationError(
                    f"priorities are whole numbers from 0 to {MAX_PRIORITY} (higher runs first), got {priority!r}"
                )
        for name in ("process_time", "think_time"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name.replace('_', ' ')} cannot be negative, got {getattr(self, name)} s")
        offered = CLAIMS[self.backend]
        if self.claim is None:
            object.__setattr__(self, "claim", offered[0])
        elif self.claim not in offered:
            names = ", ".join(repr(claim.value) for claim in offered)
            raise ConfigurationError(
                f"claim {self.claim.value!r} is not available on {self.backend.value}; use one of {names}"
            )

    @property
    def claim_strategy(self) -> ClaimStrategy:
        assert self.claim is not None, "set in __post_init__"
        return self.claim

    def priority_of(self, index: int) -> int:
        """The priority of the ``index``-th item offered (0-based): the priorities in turn."""
        return self.priorities[index % len(self.priorities)]

    def share_of(self, producer: int) -> list[int]:
        """The item indices producer ``producer`` (1-based) offers: every ``producers``-th one."""
        return list(range(producer - 1, self.items, self.producers))


@dataclass(frozen=True)
class Claimed:
    """An item a consumer took."""

    item: int
    priority: int


class WorkQueueTool(BaseTool):
    """Producers and consumers of one queue; a backend subclass stores the items."""

    timed_phases = ("claim", "process")

    def __init__(self, name: str, settings: QueueSettings) -> None:
        self.name = name
        self.settings = settings
        self._active_producers = 0

    @property
    def capacity(self) -> int:
        return self.settings.capacity

    def describe(self) -> dict[str, str]:
        s = self.settings
        return {
            "tool": self.name,
            "backend": s.backend.value,
            "capacity": str(s.capacity),
            "producers": f"{s.producers} offering {s.items} items",
            "priorities": ", ".join(str(p) for p in s.priorities),
            "claim": s.claim_strategy.value,
            "capacity check": s.capacity_check.value,
            "process time": f"{s.process_time * 1000:g} ms",
        }

    async def setup(self, agents: int) -> None:
        if agents < self.settings.producers:
            raise ConfigurationError(
                f"work queue {self.name!r} has {self.settings.producers} producers: launch at least that many "
                f"agents (agents 1 to {self.settings.producers} produce, the others consume), got {agents}"
            )
        self._active_producers = 0

    def is_producer(self, agent: AgentContext) -> bool:
        return agent.agent <= self.settings.producers

    async def open_agent(self, agent: AgentContext) -> None:
        if self.is_producer(agent):
            share = deque(self.settings.share_of(agent.agent))
            agent.state["share"] = share
            agent.finished = not share
            self._active_producers += 1

    async def close_agent(self, agent: AgentContext) -> None:
        if self.is_producer(agent):
            self._active_producers -= 1

    async def run(self, agent: AgentContext) -> OpResult:
        return await (self._produce(agent) if self.is_producer(agent) else self._consume(agent))

    async def _produce(self, agent: AgentContext) -> OpResult:
        share: deque[int] = agent.state["share"]
        priority = self.settings.priority_of(share.popleft())
        agent.finished = not share
        written: dict[str, Any] = {"role": "producer", "item": None, "priority": priority}
        try:
            item = await self.enqueue(agent, priority)
        except Exception as error:  # noqa: BLE001 - recorded with the role, so checkers can count the offer
            outcome, code = classify_exception(error)
            return OpResult(outcome, error=code, written=written)
        if item is None:
            return OpResult(Outcome.ERROR, error=QUEUE_FULL, written=written)
        return OpResult(written={**written, "item": item})

    async def _consume(self, agent: AgentContext) -> OpResult:
        idle_ns = 0
        poll = FIRST_POLL
        while True:
            # Read before claiming: when no producer is left, every enqueue has committed, so empty means drained.
            drained_if_empty = self._active_producers == 0
            started = time.monotonic_ns()
            claimed = await self.claim(agent)
            claimed_ns = time.monotonic_ns()
            if claimed is not None:
                break
            if drained_if_empty:
                agent.finished = True
                return OpResult(written={"role": "consumer", "item": None})
            await asyncio.sleep(poll)
            poll = min(poll * 2, LAST_POLL)
            idle_ns += time.monotonic_ns() - started
        if self.settings.process_time:
            await asyncio.sleep(self.settings.process_time)
        await self.complete(agent, claimed.item)
        written = {
            "role": "consumer",
            "item": claimed.item,
            "priority": claimed.priority,
            "claim_started_ns": started,
            "claimed_ns": claimed_ns,
        }
        timings = {"claim": claimed_ns - started, "process": time.monotonic_ns() - claimed_ns}
        if idle_ns:
            timings["wait_for_work"] = idle_ns
        return OpResult(written=written, timings=timings)

    async def think(self) -> None:
        if self.settings.think_time:
            await asyncio.sleep(self.settings.think_time)

    async def enqueue(self, agent: AgentContext, priority: int) -> int | None:
        """Add an item of ``priority``; return its id, or ``None`` when the queue is full."""
        raise NotImplementedError

    async def claim(self, agent: AgentContext) -> Claimed | None:
        """Take the next item for ``agent``, or ``None`` when nothing is waiting."""
        raise NotImplementedError

    async def complete(self, agent: AgentContext, item: int) -> None:
        """Mark ``item`` done."""
        raise NotImplementedError

    async def contents(self) -> dict[int, str]:
        """The items still in the queue, ``waiting`` or ``in progress`` (claimed, never completed)."""
        raise NotImplementedError
