"""Every lock implementation against a real Redis and PostgreSQL: correct locks keep holders apart, the broken one is
caught, leases run out under slow holders, fencing keeps the data right, nothing is left behind."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from stampede.checkers.fencing import check_fencing, check_protected_data
from stampede.checkers.lease_expiry import check_leases_outlived
from stampede.checkers.lock_records import lock_attempts
from stampede.checkers.mutual_exclusion import (
    check_holders_never_overlap,
    check_never_granted_twice,
    check_single_active_session,
)
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.locks import LockSpec, ReleaseAnswer, make_lock
from stampede.locks.resource import FencedCounter
from stampede.outcomes import Outcome
from stampede.records.snapshots import ResourceState
from stampede.services.postgres_target import PostgresTarget, open_postgres
from stampede.services.redis_target import RedisTarget, open_redis
from stampede.verdicts import Verdict
from stampede.workloads.lock_contention import LockContentionTool, LockScope, LockWork

from . import lock_adapters

SHORT_WORK = LockWork(hold=0.003)
STALLS = {"hold": 0.005, "stall": 0.09, "stall_every": 3}
POSTGRES_LOCKS = ["advisory session", "advisory transaction", "for update"]
ADAPTERS = f"python:{lock_adapters.__name__}"
# Each lock with the lease it has: python-redis-lock's expire is in whole seconds.
REDIS_LOCKS = {
    "stampede redis": 0.5,
    "redis-py": 0.5,
    "python:stampede.locks.in_process:asyncio_lock": None,
    "python:stampede.locks.in_process:threading_lock": None,
    f"{ADAPTERS}:RedisLock": 1.0,
    f"{ADAPTERS}:PotteryRedlock": 0.5,
}


class FencingLock:
    """A user's in-process lock that hands out fencing numbers (acquire returns an int), one for every agent.

    Its objects share one asyncio lock per key: per launch, so a test run against two servers (each with an
    event loop of its own) never meets a lock bound to the other's loop.
    """

    issues_fences = True
    _numbers = itertools.count(1)
    _locks: ClassVar[dict[str, asyncio.Lock]] = {}

    def __init__(self, key: str) -> None:
        self._lock = self._locks.setdefault(key, asyncio.Lock())

    async def acquire(self) -> int:
        await self._lock.acquire()
        return next(self._numbers)

    def release(self) -> None:
        self._lock.release()


@dataclass
class Targets:
    redis: RedisTarget
    postgres_target: PostgresTarget | None = None

    @property
    def postgres(self) -> PostgresTarget:
        assert self.postgres_target is not None, "this test opened no PostgreSQL"
        return self.postgres_target


@dataclass
class LockRun:
    tool: LockContentionTool
    result: LaunchResult
    states: dict[str, ResourceState]

    @property
    def history(self) -> object:
        return self.result.history

    def passes(self, *verdicts: Verdict) -> None:
        for verdict in verdicts:
            assert verdict.passed, verdict.message


async def run_lock(
    targets: Targets,
    lock: str,
    work: LockWork,
    *,
    lease: float | None = None,
    agents: int = 4,
    iterations: int = 5,
    users: int | None = None,
    operation_timeout: float = 10.0,
) -> LockRun:
    made = make_lock(LockSpec.parse(lock), lease, targets)
    tool = LockContentionTool("guard", made, FencedCounter(targets.redis, "guard", fencing=work.fencing), work)
    result = await launch(
        tool,
        LaunchPlan(
            agents=agents, iterations=iterations, users=users, operation_timeout=operation_timeout, run_timeout=30
        ),
    )
    assert not result.timed_out and not result.agent_errors, result.agent_errors
    return LockRun(tool, result, await tool.resource_states())


async def _backends_gone(postgres: PostgresTarget, within: float = 3.0) -> bool:
    """Whether the run's backends leave pg_stat_activity within ``within`` s (a closed one takes a moment)."""
    deadline = time.monotonic() + within
    while await postgres.backends():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def with_services(redis_url: str, run_id: str, pg_dsn: str | None, body: Callable[[Targets], Awaitable[None]]) -> None:
    async def main() -> None:
        redis_target = await open_redis(redis_url, run_id=run_id)
        postgres = await open_postgres(pg_dsn, run_id=run_id) if pg_dsn else None
        try:
            await body(Targets(redis_target, postgres))
            if postgres is not None:
                assert await _backends_gone(postgres), "holders left connections open"
        finally:
            if postgres is not None:
                await postgres.close()
            await redis_target.close()
        observer = aioredis.Redis.from_url(redis_url)
        try:
            # Lock libraries put keys of their own around the one they are given ('redlock:<key>'): '*' in front.
            left = [key async for key in observer.scan_iter(match=f"*{redis_target.prefix}*")]
            assert not left, f"keys left behind: {left}"
        finally:
            await observer.aclose()

    asyncio.run(main())


# --------------------------------------------------------------------------- work shorter than the lease


@pytest.mark.parametrize("lock", REDIS_LOCKS)
def test_each_redis_or_python_lock_keeps_holders_apart(redis_url: str, run_id: str, lock: str) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, lock, SHORT_WORK, lease=REDIS_LOCKS[lock])
        run.passes(
            check_holders_never_overlap(run.history),
            check_never_granted_twice(run.history),
            check_leases_outlived(run.history),
            check_protected_data(run.history, run.states),
        )
        assert run.states == {"guard": ResourceState(20, 20, run.states["guard"].highest_fence)}

    with_services(redis_url, run_id, None, body)


@pytest.mark.parametrize("lock", POSTGRES_LOCKS)
def test_each_postgresql_lock_keeps_holders_apart_and_hands_out_rising_fences(
    redis_url: str, pg_dsn: str, run_id: str, lock: str
) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, lock, LockWork(hold=0.003, fencing=True))
        run.passes(
            check_holders_never_overlap(run.history),
            check_fencing(run.history, fencing=True),
            check_protected_data(run.history, run.states),
        )
        holds = sorted(lock_attempts(run.history), key=lambda attempt: attempt.acquire_reply)
        fences = [hold.fence for hold in holds]
        assert fences == sorted(fences) and len(set(fences)) == 20, fences

    with_services(redis_url, run_id, pg_dsn, body)


def test_a_postgresql_lock_refuses_a_lease(redis_url: str, pg_dsn: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        refused = (
            r"^The advisory session lock has no lease: PostgreSQL holds it until it is released or the "
            r"connection ends\. Leave lease out\.$"
        )
        with pytest.raises(ConfigurationError, match=refused):
            make_lock(LockSpec.parse("advisory session"), 0.1, targets)

    with_services(redis_url, run_id, pg_dsn, body)


@pytest.mark.parametrize("lock", ["redis-py", "broken", f"{ADAPTERS}:PotteryRedlock"])
def test_fencing_needs_a_lock_that_issues_fencing_numbers(redis_url: str, run_id: str, lock: str) -> None:
    # Before, a python: lock was let through and its fencing check said "not judged" after the launch.
    async def body(targets: Targets) -> None:
        made = make_lock(LockSpec.parse(lock), 0.5, targets)
        refused = rf"^Fencing needs fencing numbers, and the {lock} lock issues none: use stampede redis, advisory"
        if lock.startswith("python:"):
            refused += r".*, or make its lock objects say issues_fences = True and return the number from acquire\(\)"
        with pytest.raises(ConfigurationError, match=refused):
            LockContentionTool(
                "guard", made, FencedCounter(targets.redis, "guard", fencing=True), LockWork(fencing=True)
            )

    with_services(redis_url, run_id, None, body)


def test_a_users_python_lock_can_hand_out_fencing_numbers(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, f"python:{__name__}:FencingLock", LockWork(hold=0.002, fencing=True))
        run.passes(check_holders_never_overlap(run.history), check_fencing(run.history, fencing=True))

    with_services(redis_url, run_id, None, body)


# --------------------------------------------------------------------------- holds and leases, one holder at a time


def test_stampede_lock_waits_for_the_holder_and_answers_not_owned_after_its_lease(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        lock = make_lock(LockSpec.parse("stampede redis"), 0.05, targets)
        first, second = await lock.holder("k", wait=1.0), await lock.holder("k", wait=0.01)
        grant = await first.acquire("one")
        assert grant is not None and grant.fence is not None
        assert await second.acquire("two") is None, "the lock is held: a 10 ms wait must give up"
        await asyncio.sleep(0.08)
        later = await second.acquire("two")
        assert later is not None and later.fence == grant.fence + 1
        assert await first.release() is ReleaseAnswer.NOT_OWNED, "the first lease ran out"
        assert await second.release() is ReleaseAnswer.RELEASED

    with_services(redis_url, run_id, None, body)


def test_a_session_advisory_lock_ends_with_its_holders_connection(redis_url: str, pg_dsn: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        lock = make_lock(LockSpec.parse("advisory session"), None, targets)
        await lock.setup(2)
        try:
            first, second = await lock.holder("k", wait=0.05), await lock.holder("k", wait=0.05)
            assert await first.acquire("one") is not None
            started = time.monotonic()
            assert await second.acquire("two") is None, "lock_timeout ends the wait"
            assert time.monotonic() - started < 1.0
            await first.close()  # back to the pool, which unlocks everything the connection held
            assert await second.acquire("two") is not None
            assert await second.release() is ReleaseAnswer.RELEASED
            await second.close()
        finally:
            await lock.teardown()

    with_services(redis_url, run_id, pg_dsn, body)


def test_a_holder_cut_off_mid_hold_lets_go_of_a_postgresql_lock(redis_url: str, pg_dsn: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(
            targets, "advisory transaction", LockWork(hold=1.0, wait=2.0), agents=3, iterations=1, operation_timeout=0.2
        )
        outcomes = [op.outcome for op in run.result.history]
        assert outcomes == [Outcome.TIMEOUT] * 3, "each holder is cut off, and the next one still gets the lock"

    with_services(redis_url, run_id, pg_dsn, body)


# --------------------------------------------------------------------------- work longer than the lease


def test_holders_stalled_past_the_lease_overlap_but_the_lock_is_never_granted_twice(
    redis_url: str, run_id: str
) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, "stampede redis", LockWork(**STALLS), lease=0.05, iterations=6)
        overlap = check_holders_never_overlap(run.history)
        assert not overlap.passed and "it outlived its lease" in overlap.message, overlap.message
        assert "granted twice" not in overlap.message
        run.passes(check_never_granted_twice(run.history))
        outlived = check_leases_outlived(run.history)
        # 24 grants, every 3rd stalls: at least those 8 releases come too late (on a busy machine, more may)
        assert not outlived.passed and outlived.value >= 8, outlived.message
        lost = check_protected_data(run.history, run.states)
        assert not lost.passed and lost.message.startswith("Protected data went wrong"), lost.message
        assert not check_fencing(run.history, fencing=False).passed

    with_services(redis_url, run_id, None, body)


def test_fencing_refuses_stale_holders_and_keeps_the_data_right(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, "stampede redis", LockWork(**STALLS, fencing=True), lease=0.05, iterations=6)
        assert not check_holders_never_overlap(run.history).passed, "holders still overlap"
        run.passes(check_fencing(run.history, fencing=True), check_protected_data(run.history, run.states))
        refused = [op for op in run.result.history if op.error == "stale_fence"]
        assert refused, "stalled holders came back with stale numbers"

    with_services(redis_url, run_id, None, body)


def test_redis_py_lock_releases_answer_not_owned_once_the_lease_ran_out(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, "redis-py", LockWork(hold=0.06), lease=0.03, agents=3, iterations=3)
        answers = {attempt.release_answer for attempt in lock_attempts(run.history)}
        assert answers == {"not owned"}
        run.passes(check_never_granted_twice(run.history))

    with_services(redis_url, run_id, None, body)


def test_the_broken_lock_is_caught_granting_itself_twice(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        run = await run_lock(targets, "broken", LockWork(**STALLS), lease=0.05, iterations=6)
        twice = check_never_granted_twice(run.history)
        assert not twice.passed and twice.message.startswith("Lock granted twice: "), twice.message
        assert twice.details and "held" in twice.details[0]["first holder"]

    with_services(redis_url, run_id, None, body)


# --------------------------------------------------------------------------- one session per user


def test_one_active_session_per_user_holds_with_stampede_lock_and_fails_with_the_broken_one(
    redis_url: str, run_id: str
) -> None:
    async def body(targets: Targets) -> None:
        per_user = {"scope": LockScope.PER_USER}
        good = await run_lock(
            targets, "stampede redis", LockWork(hold=0.005, **per_user), lease=1.0, agents=8, iterations=3, users=2
        )
        good.passes(check_single_active_session(good.history))
        assert set(good.states) == {"guard:user-1", "guard:user-2"}
        broken = await run_lock(
            targets, "broken", LockWork(**STALLS, **per_user), lease=0.05, agents=8, iterations=3, users=2
        )
        verdict = check_single_active_session(broken.history)
        assert not verdict.passed and verdict.message.startswith("Users had two sessions active at once"), (
            verdict.message
        )

    with_services(redis_url, run_id, None, body)


# --------------------------------------------------------------------------- third-party locks, used right and naively


def test_a_python_lock_is_made_once_per_agent_with_its_key_lease_and_the_redis_in_use(
    redis_url: str, run_id: str
) -> None:
    async def body(targets: Targets) -> None:
        lock_adapters.GivenArguments.made.clear()
        run = await run_lock(targets, f"{ADAPTERS}:GivenArguments", SHORT_WORK, lease=0.5, agents=3, iterations=2)
        run.passes(check_holders_never_overlap(run.history), check_leases_outlived(run.history))
        checked, *per_agent = lock_adapters.GivenArguments.made
        assert checked["key"] == targets.redis.key("lock:definition-check"), "one call when the lock is made"
        assert len(per_agent) == 3, "one lock object per agent, not one shared by all"
        for given in per_agent:
            assert given == {
                "key": targets.redis.key("lock:guard"),
                "lease": 0.5,
                "redis": targets.redis.client,
                "redis_url": redis_url,  # the password in it intact: the adapter connects with it
            }

    with_services(redis_url, run_id, None, body)


def test_one_python_redis_lock_object_shared_by_every_agent_fails_naming_the_acquires_that_raised(
    redis_url: str, run_id: str
) -> None:
    # Before: the acquires that raised AlreadyAcquired vanished from the history and the checks judged the rest.
    async def body(targets: Targets) -> None:
        try:
            run = await run_lock(targets, f"{ADAPTERS}:shared_redis_lock", LockWork(hold=0.01), lease=5.0)
        finally:
            lock_adapters.forget_shared()
        for verdict in (check_holders_never_overlap(run.history), check_protected_data(run.history, run.states)):
            assert not verdict.passed, verdict.message
            assert re.match(
                r"^Lock attempts raised: [1-9]\d* of 20 acquires raised 'AlreadyAcquired: Already acquired from this "
                r"Lock instance\.' \(\d+×\)[.;,] ",
                verdict.message,
            ), verdict.message

    with_services(redis_url, run_id, None, body)


def test_redlock_releases_that_raise_after_the_lease_fail_the_lease_check_as_raised_not_as_released(
    redis_url: str, run_id: str
) -> None:
    # Before: every release raised ReleaseUnlockedLock, and the lease check said each holder finished within its lease.
    async def body(targets: Targets) -> None:
        run = await run_lock(
            targets, f"{ADAPTERS}:RaisingRedlock", LockWork(hold=0.08), lease=0.05, agents=3, iterations=2
        )
        verdict = check_leases_outlived(run.history)
        assert not verdict.passed and "each answered" not in verdict.message, verdict.message
        assert re.match(r"^Lock attempts raised: 6 of 6 releases raised 'ReleaseUnlockedLock: ", verdict.message)
        allowed = check_leases_outlived(run.history, errors_allowed=True)
        assert allowed.inconclusive and not allowed.passed, "no release answered: nothing to judge"

    with_services(redis_url, run_id, None, body)


def test_redlock_with_a_lease_the_tool_was_not_told_of_warns_instead_of_a_bare_granted_twice(
    redis_url: str, run_id: str
) -> None:
    async def body(targets: Targets) -> None:
        work = LockWork(hold=2 * lock_adapters.SHORT_LEASE)
        run = await run_lock(targets, f"{ADAPTERS}:ShortLeaseRedlock", work, agents=3, iterations=3)
        for verdict in (check_never_granted_twice(run.history), check_leases_outlived(run.history)):
            assert not verdict.passed
            assert re.search(
                r'^The lock has a lease Stampede was not told of: [1-9]\d* releases? answered "not owned" though the '
                r"tool declares no lease, .* Judged without it: ",
                verdict.message,
            ), verdict.message
        # Told of the lease, the same lock is seen to keep its promise: holders outlived it, no second grant.
        told = await run_lock(
            targets, f"{ADAPTERS}:PotteryRedlock", work, lease=lock_adapters.SHORT_LEASE, agents=3, iterations=3
        )
        run.passes(check_never_granted_twice(told.history))
        assert not check_leases_outlived(told.history).passed

    with_services(redis_url, run_id, None, body)


def test_a_python_lock_that_cannot_be_polled_is_refused_when_made(redis_url: str, run_id: str) -> None:
    # Before: every acquire raised TypeError during the launch, and the checks judged the empty rest.
    async def body(targets: Targets) -> None:
        with pytest.raises(ConfigurationError, match=r"calls as acquire\(blocking=False\) and polls, but it takes no"):
            make_lock(LockSpec.parse(f"{ADAPTERS}:NoBlocking"), None, targets)

    with_services(redis_url, run_id, None, body)


def test_what_a_factory_raises_is_said_with_what_it_was_given(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        key = targets.redis.key("lock:definition-check")
        refused = (
            rf"^python:{ADAPTERS[7:]}:RedisLock raised ValueError when called with key='{key}', lease=0\.2, "
            rf"redis_url='{re.escape(targets.redis.display_url)}': python-redis-lock's expire is whole seconds: "
            r"give lease=1 s, 2 s, …$"
        )
        with pytest.raises(ConfigurationError, match=refused) as caught:
            make_lock(LockSpec.parse(f"{ADAPTERS}:RedisLock"), 0.2, targets)
        password = urlsplit(targets.redis.url).password
        assert not password or password not in str(caught.value), "the message shows the URL with its password"

    with_services(redis_url, run_id, None, body)
