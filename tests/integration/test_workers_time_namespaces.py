"""Two workers on this machine's network whose monotonic clocks are shifted (time namespaces, ``unshare -T``).

The services these tests use listen on loopback only (the embedded Redis, the
reference agent service), so the workers share this network and differ only by
their clocks: what the tools record inside each operation (lock timings, the
WebSocket messages and sessions) must come back on this process's timeline with
the rows' times, and the seeded bugs must still be caught across the two. The
rows' own times, the probe and a lost worker are tested across network hosts in
``test_workers_on_hosts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stampede.checkers.lock_records import lock_attempts
from stampede.checkers.mutual_exclusion import check_holders_never_overlap, check_never_granted_twice
from stampede.launcher import LaunchPlan
from stampede.workloads.lock_contention import LockWork

from .netns_hosts import dask_on, shifted_clocks, time_namespaces_unavailable
from .test_locks import STALLS, Targets, with_services
from .test_websocket_agents import Reference, scenario
from .test_workers import lock_on_workers, websocket_agents_on_workers

SHIFTS_SECONDS = (1000, 2500)

_UNAVAILABLE = time_namespaces_unavailable()
pytestmark = pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"no time namespaces here: {_UNAVAILABLE}")


@pytest.fixture
def shifted_cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler here and one worker per shift, each in a time namespace that far ahead; its address."""
    with shifted_clocks(SHIFTS_SECONDS) as hosts, dask_on(hosts, tmp_path) as address:
        yield address


@pytest.mark.parametrize("lock", ["stampede redis", "broken"])
def test_lock_timings_come_back_on_this_clock_a_correct_lock_passes_and_the_broken_one_is_caught(
    shifted_cluster: str, redis_url: str, run_id: str, lock: str
) -> None:
    async def body(targets: Targets) -> None:
        work, lease = (LockWork(hold=0.003), 0.5) if lock == "stampede redis" else (LockWork(**STALLS), 0.05)
        plan = LaunchPlan(agents=6, iterations=6)
        _, result = await lock_on_workers(targets, lock, work, lease, plan, shifted_cluster)
        start = result.workers_start
        assert start is not None and start.clock_error_ns > 0
        attempts = lock_attempts(result.history)
        instants = [i for a in attempts for i in (a.acquire_invoke, a.acquire_reply, a.release_invoke) if i is not None]
        assert all(result.started_ns <= i <= result.ended_ns for i in instants), "lock timings on this clock"
        assert all(0 < a.clock_error_ns <= start.clock_error_ns for a in attempts), "each attempt with its ε"
        twice = check_never_granted_twice(result.history)
        if lock == "broken":
            assert not twice.passed and twice.message.startswith("Lock granted twice: "), twice.message
        else:
            # A hand-over closer than the clocks' ε would be inconclusive: never a violation.
            for verdict in (check_holders_never_overlap(result.history), twice):
                assert verdict.held, verdict.message

    with_services(redis_url, run_id, None, body)


def test_websocket_messages_come_back_on_this_clock_and_a_leak_between_hosts_is_caught(
    shifted_cluster: str, embedded: tuple[str, str], run_id: str
) -> None:
    async def body(ref: Reference) -> None:
        launched = await websocket_agents_on_workers(ref, 10, shifted_cluster, answer_timeout=2.0, run_timeout=2.0)
        began, ended = launched.result.started_ns, launched.result.ended_ns
        assert all(began <= message.t_ns <= ended for message in launched.tool.messages), "on this clock"
        sessions = [op.read["session"]["since_ns"] for op in launched.result.history if op.read.get("session")]
        assert sessions and all(began <= since <= ended for since in sessions)
        verdict = launched.verdicts()["contamination"]
        assert not verdict.passed and not verdict.inconclusive, verdict.message

    scenario(*embedded, run_id, body, bugs="leak", settings={"think_ms": 200})
