"""Agents compete for a lock, work on a shared resource while they hold it, and release it.

One operation is one attempt: acquire (waiting at most ``wait``) → read the
shared counter (:mod:`stampede.locks.resource`) → work for ``hold`` (plus
``stall`` on every ``stall_every``-th grant, like a GC pause) → write the value
read plus one → release. Work longer than the lease lets the lock expire
under the holder; the next holder gets in while the first still thinks it
holds the lock, which the checkers must see.

``scope`` ``shared``: every agent competes for one lock. ``per user``: one lock
per user, so agents of the same user compete (a single active session per user).

Every attempt records in ``Operation.written`` (times are monotonic ns)::

    {"key": "guard", "lock": "stampede redis", "holder": 3, "token": "m-…:0",
     "lease_ns": 100000000, "fencing": true,
     "acquire": [invoke, reply], "acquired": true, "fence": 17, "granted_try_ns": …,
     "stalled": false, "write": {<access>}, "release": [invoke, reply], "release_answer": "released"}

An acquire that raised records ``"acquired": false, "acquire_error": "<Type>: <message>"``; a
release that raised records ``"release_answer": "raised", "release_error": "<Type>: <message>"``.

and in ``Operation.read`` the holder's read of the resource; an access is
``{"fence", "accepted", "value", "highest_before", "at": [invoke, reply]}``
(plus ``serial`` for an accepted write). Timings: ``acquire`` (the whole wait),
``hold`` (acquire reply to release invoke), ``release``. Outcomes: ``ok``;
``conflict`` / ``lock_busy`` when the wait ran out; ``error`` / ``stale_fence``
when the resource refused the holder's fencing number, ``error`` /
``not_owned`` when the release found the lock no longer the holder's; an
acquire or release that raised is classified by its exception.

On workers (:mod:`stampede.workers`) each shard rebuilds the tool from its
recipe, on a Redis client (and PostgreSQL pool) of its own: the lock and the
counter are in the services, shared by every process. A shard's times are read
on its worker's clock; the merge moves them onto the launch's
(:func:`on_launch_clock`) and each row carries the clock's ε, within which the
lock checkers call an overlap inconclusive. ``stall_every`` counts each shard's
grants. An in-process lock excludes no one across processes: it is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..locks import in_process, make_lock
from ..locks.base import Lock, LockHolder, LockKind, LockSpec, ReleaseAnswer
from ..locks.postgres_locks import PostgresLock
from ..locks.resource import Access, FencedCounter
from ..outcomes import Outcome, classify_exception
from ..records.snapshots import ResourceState
from ..services.redis_target import RedisEndpoint, RedisTarget
from ..services.secrets import scrub

if TYPE_CHECKING:
    from ..launcher import LaunchResult
    from ..services.postgres_target import PostgresEndpoint, PostgresTarget

LOCK_BUSY = "lock_busy"
STALE_FENCE = "stale_fence"
NOT_OWNED = "not_owned"
RELEASE_RAISED = "raised"
ERROR_TEXT_LIMIT = 200


def error_text(error: Exception, url: str) -> str:
    """An exception as a lock attempt records it: its type and what it said (no password of ``url``), cut short."""
    said = scrub(" ".join(str(error).split()), url)
    text = f"{type(error).__name__}: {said}" if said else type(error).__name__
    return text if len(text) <= ERROR_TEXT_LIMIT else f"{text[: ERROR_TEXT_LIMIT - 1]}…"


class LockScope(Enum):
    """Which lock an agent competes for."""

    SHARED = "shared"
    PER_USER = "per user"


@dataclass(frozen=True)
class LockWork:
    """How holders behave: work time, stalls, how long they wait, whether the resource checks fences."""

    hold: float = 0.05
    stall: float = 0.0
    stall_every: int = 0
    fencing: bool = False
    wait: float = 5.0
    scope: LockScope = LockScope.SHARED

    def __post_init__(self) -> None:
        for name in ("hold", "stall"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} cannot be negative, got {getattr(self, name) * 1000:g} ms")
        if self.wait <= 0:
            raise ConfigurationError(f"wait must be longer than 0 s, got {self.wait:g} s")
        if isinstance(self.stall_every, bool) or not isinstance(self.stall_every, int) or self.stall_every < 0:
            raise ConfigurationError(f"stall_every must be a whole number, 0 for never, got {self.stall_every!r}")
        if (self.stall > 0) != (self.stall_every > 0):
            raise ConfigurationError(
                "give stall and stall_every together: stall=150 ms stall_every=4 pauses every 4th holder for "
                f"150 ms (got stall={self.stall * 1000:g} ms, stall_every={self.stall_every})"
            )

    def stalls(self, grant: int) -> bool:
        """Whether the ``grant``-th grant of a launch (1-based) stalls."""
        return self.stall_every > 0 and grant % self.stall_every == 0


class LockContentionTool(BaseTool):
    """Holders of ``lock`` doing read-modify-write work on a :class:`FencedCounter`."""

    timed_phases = ("acquire",)

    def __init__(
        self, name: str, lock: Lock, resource: FencedCounter, work: LockWork, own_redis: RedisTarget | None = None
    ) -> None:
        """``own_redis``: the client a worker opened for the rebuilt tool, closed (its keys kept) at teardown."""
        if work.fencing and not lock.issues_fences:
            declare = (
                ", or make its lock objects say issues_fences = True and return the number from acquire()"
                if lock.spec.factory is not None
                else ""
            )
            raise ConfigurationError(
                f"Fencing needs fencing numbers, and the {lock.spec.label} lock issues none: use stampede redis, "
                f"advisory session, advisory transaction or for update{declare}, or fencing=off."
            )
        self.name = name
        self.lock = lock
        self.resource = resource
        self.work = work
        self.keys: set[str] = set()
        self._grants = 0
        self._own_redis = own_redis

    def describe(self) -> dict[str, str]:
        work = self.work
        stalls = f", every {work.stall_every}th holder stalls {work.stall * 1000:g} ms more" if work.stall_every else ""
        return {
            "tool": self.name,
            **self.lock.describe(),
            "work under the lock": f"{work.hold * 1000:g} ms{stalls}",
            "fencing at the resource": "on: stale fencing numbers rejected" if work.fencing else "off",
            "acquire waits at most": f"{work.wait:g} s",
            "lock per": "user" if work.scope is LockScope.PER_USER else "tool (one lock for every agent)",
            "resource": self.resource.key_of("<lock key>"),
        }

    @property
    def lease_ns(self) -> int | None:
        return None if self.lock.lease is None else int(self.lock.lease * 1e9)

    def key_for(self, agent: AgentContext) -> str:
        return f"{self.name}:{agent.user}" if self.work.scope is LockScope.PER_USER else self.name

    async def setup(self, agents: int) -> None:
        self.keys.clear()
        self._grants = 0
        await self.lock.setup(agents)

    async def open_agent(self, agent: AgentContext) -> None:
        key = self.key_for(agent)
        if key not in self.keys:
            self.keys.add(key)
            await self.resource.reset(key)
        agent.state["key"] = key
        agent.state["holder"] = await self.lock.holder(key, self.work.wait)

    async def close_agent(self, agent: AgentContext) -> None:
        holder: LockHolder | None = agent.state.pop("holder", None)
        if holder is not None:
            await holder.close()

    async def teardown(self) -> None:
        try:
            await self.lock.teardown()
            if self._own_redis is None:  # in a worker, other shards may still hold: swept once all have ended
                await self.lock.sweep()
        finally:
            if self._own_redis is not None:
                await self._own_redis.close()

    def recipe(self) -> LockToolRecipe:
        """What rebuilds this tool in a worker process: which lock, its lease, the work, where the services are."""
        spec = self.lock.spec
        if spec.kind is LockKind.PYTHON and str(spec.factory).startswith(f"{in_process.__name__}:"):
            raise ConfigurationError(
                f"Lock tool {self.name!r} cannot run on workers: python:{spec.factory} is one lock object in one "
                "process, so agents in different worker processes would each take a lock of their own and exclude "
                "no one. Launch it with workers=1, or use a lock that lives in a service: stampede redis, redis-py, "
                "advisory session, advisory transaction, for update, or a python: lock on Redis."
            )
        postgres = self.lock.target.endpoint() if isinstance(self.lock, PostgresLock) else None
        return LockToolRecipe(self.name, spec, self.lock.lease, self.work, self.resource.target.endpoint(), postgres)

    async def after_workers(self, result: LaunchResult | None) -> None:
        """After a launch on workers, here: sweep what the lock left once every shard has ended; note its keys."""
        self.keys = set() if result is None else lock_keys(op.written for op in result.history)
        await self.lock.sweep()

    async def resource_states(self) -> dict[str, ResourceState]:
        """What each lock key's resource holds now."""
        return {key: await self.resource.state(key) for key in sorted(self.keys)}

    async def run(self, agent: AgentContext) -> OpResult:
        holder: LockHolder = agent.state["holder"]
        key: str = agent.state["key"]
        token = f"{agent.marker}:{agent.iteration}"
        record: dict[str, Any] = {
            "key": key,
            "lock": self.lock.spec.label,
            "holder": agent.agent,
            "token": token,
            "lease_ns": self.lease_ns,
            "fencing": self.work.fencing,
        }
        invoked = time.monotonic_ns()
        try:
            grant = await holder.acquire(token)
        except Exception as error:  # noqa: BLE001 - an acquire that raised is an attempt too, recorded as such
            raised_at = time.monotonic_ns()
            said = error_text(error, self.resource.target.url)
            record.update(acquire=[invoked, raised_at], acquired=False, acquire_error=said)
            raised, code_raised = classify_exception(error)
            timing = {"acquire": raised_at - invoked}
            return OpResult(raised, error=code_raised, written=record, timings=timing)
        granted = time.monotonic_ns()
        record["acquire"] = [invoked, granted]
        timings = {"acquire": granted - invoked}
        if grant is None:
            record["acquired"] = False
            return OpResult(Outcome.CONFLICT, error=LOCK_BUSY, written=record, timings=timings)
        self._grants += 1
        stalled = self.work.stalls(self._grants)
        record.update(acquired=True, fence=grant.fence, granted_try_ns=grant.tried_ns, stalled=stalled)
        read: Access | None = None
        failure: Exception | None = None
        try:
            read, write = await self._work_on_resource(key, grant.fence, stalled)
            if write is not None:
                record["write"] = write.record()
        except asyncio.CancelledError:
            holder.abandon()
            raise
        except Exception as error:  # noqa: BLE001 - recorded; the lock is released all the same
            failure = error
        answer, release_failure = await self._release(holder, record)
        timings["hold"] = record["release"][0] - granted
        timings["release"] = record["release"][1] - record["release"][0]
        outcome, code = self._outcome(failure or release_failure, read, record, answer)
        return OpResult(
            outcome, error=code, read=None if read is None else read.record(), written=record, timings=timings
        )

    async def _work_on_resource(self, key: str, fence: int | None, stalled: bool) -> tuple[Access, Access | None]:
        read = await self.resource.read(key, fence)
        if not read.accepted:  # refused as stale: the holder learns it lost the lock and does no work
            return read, None
        await asyncio.sleep(self.work.hold + (self.work.stall if stalled else 0.0))
        return read, await self.resource.write(key, fence, (read.value or 0) + 1)

    async def _release(
        self, holder: LockHolder, record: dict[str, Any]
    ) -> tuple[ReleaseAnswer | None, Exception | None]:
        invoked = time.monotonic_ns()
        try:
            answer: ReleaseAnswer | None = await holder.release()
            failure = None
        except asyncio.CancelledError:
            holder.abandon()
            raise
        except Exception as error:  # noqa: BLE001 - a release that failed is recorded as such
            holder.abandon()
            answer, failure = None, error
            record["release_error"] = error_text(error, self.resource.target.url)
        record["release"] = [invoked, time.monotonic_ns()]
        record["release_answer"] = RELEASE_RAISED if answer is None else answer.value
        return answer, failure

    @staticmethod
    def _outcome(
        failure: Exception | None, read: Access | None, record: dict[str, Any], answer: ReleaseAnswer | None
    ) -> tuple[Outcome, str | None]:
        if failure is not None:
            return classify_exception(failure)
        write = record.get("write")
        if (read is not None and not read.accepted) or (write is not None and not write["accepted"]):
            return Outcome.ERROR, STALE_FENCE
        if answer is ReleaseAnswer.NOT_OWNED:
            return Outcome.ERROR, NOT_OWNED
        return Outcome.OK, None


def lock_keys(written: Iterable[Any]) -> set[str]:
    """The lock keys the attempts recorded (``written`` of each operation)."""
    return {str(record["key"]) for record in written if isinstance(record, dict) and "key" in record}


_INSTANT_PAIRS = ("acquire", "release", "at")


def on_launch_clock(read: Any, written: Any, offset_ns: int) -> tuple[Any, Any]:
    """An attempt's ``read`` and ``written`` with every instant in them moved back by its clock's ``offset_ns``."""
    return _moved(read, offset_ns), _moved(written, offset_ns)


def _moved(record: Any, offset_ns: int) -> Any:
    if not isinstance(record, dict):
        return record
    moved = dict(record)
    for name in _INSTANT_PAIRS:
        if isinstance(moved.get(name), list):
            moved[name] = [instant - offset_ns for instant in moved[name]]
    if isinstance(moved.get("granted_try_ns"), int):
        moved["granted_try_ns"] -= offset_ns
    if isinstance(moved.get("write"), dict):
        moved["write"] = _moved(moved["write"], offset_ns)
    return moved


@dataclass(frozen=True)
class _WorkerTargets:
    redis: RedisTarget
    endpoint: PostgresEndpoint | None

    @property
    def postgres(self) -> PostgresTarget:
        assert self.endpoint is not None, "a PostgreSQL lock's recipe carries its endpoint"
        # A lock connects through what an endpoint has (connect, create_pool, schema) only.
        return cast("PostgresTarget", self.endpoint)


@dataclass(frozen=True)
class LockToolRecipe:
    """A lock tool's definition, picklable: a worker rebuilds the lock and the counter on clients of its own."""

    name: str
    spec: LockSpec
    lease: float | None
    work: LockWork
    redis: RedisEndpoint
    postgres: PostgresEndpoint | None

    def build(self) -> LockContentionTool:
        targets = _WorkerTargets(self.redis.target(), self.postgres)  # its client connects on first use
        lock = make_lock(self.spec, self.lease, targets)
        counter = FencedCounter(targets.redis, self.name, fencing=self.work.fencing)
        return LockContentionTool(self.name, lock, counter, self.work, own_redis=targets.redis)

    on_launch_clock = staticmethod(on_launch_clock)
    """What the merge applies to each row's payload: the shard's instants on the launch's clock."""
