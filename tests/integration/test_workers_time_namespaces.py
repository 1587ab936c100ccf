"""Two "hosts" whose monotonic clocks are shifted (time namespaces, ``unshare -T``) running ``dask worker``.

The scheduler runs on this side; each worker runs in a time namespace of its
own whose monotonic clock is ahead of this one by a known amount. The clock
probe must find each shift within its ε, the histories must come back on this
process's timeline, and the seeded read-then-write must still lose updates
with its agents split across the two; the lock timings the lock tool records
in its payload come back on this timeline too, and the broken lock is caught.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stampede.checkers.lock_records import lock_attempts
from stampede.checkers.lost_updates import check_lost_updates
from stampede.checkers.mutual_exclusion import check_holders_never_overlap, check_never_granted_twice
from stampede.launcher import LaunchPlan, LaunchResult
from stampede.services.postgres_target import PostgresTarget
from stampede.workers import launch_on_workers
from stampede.workloads.credits import create_accounts, total_balance
from stampede.workloads.lock_contention import LockWork
from stampede.workloads.python_tool import PythonTool, ServiceEndpoints

from .support import with_target
from .test_locks import STALLS, Targets, with_services
from .test_websocket_agents import Reference, scenario
from .test_workers import lock_on_workers, websocket_agents_on_workers

TOOLS = Path(__file__).resolve().parents[2] / "libraries" / "stampede_robot" / "resources" / "credit_tools.py"
DASK = Path(sys.executable).with_name("dask")
SHIFTS_SECONDS = (1000, 2500)
STARTUP_SECONDS = 30.0
SCHEDULER_OPTIONS = ("--host", "127.0.0.1", "--port", "0", "--no-dashboard")
WORKER_OPTIONS = ("--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard")


def _time_namespaces_allowed() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-T", "--monotonic", "10", "true"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _time_namespaces_allowed(), reason="this sandbox allows no time namespaces")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def shifted_cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler here and one worker per shift, each in a time namespace that far ahead; its address."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [
        subprocess.Popen(
            [str(DASK), "scheduler", *SCHEDULER_OPTIONS, "--scheduler-file", str(scheduler_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text(encoding="utf-8"))["address"]
        for shift in SHIFTS_SECONDS:
            processes.append(
                subprocess.Popen(
                    ["unshare", "-T", "--monotonic", str(shift), str(DASK), "worker", address, *WORKER_OPTIONS],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        yield address
    finally:
        _stop(processes)
        assert all(process.returncode is not None for process in processes), "a worker or the scheduler was left"


def test_the_probe_finds_each_hosts_shift_and_a_read_then_write_still_loses_updates(
    shifted_cluster: str, pg_dsn: str, run_id: str
) -> None:
    agents, iterations, balance = 20, 3, 10_000

    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, balance)
        services = ServiceEndpoints(postgres_dsn=target.client_dsn())
        factory = f"{TOOLS}:NaiveDeduction"
        tool = PythonTool(name="naive", factory=factory, settings={"account": account}, services=services)
        plan = LaunchPlan(agents=agents, iterations=iterations)
        result = await asyncio.to_thread(_launch_when_both_joined, tool, plan, shifted_cluster)
        start = result.workers_start
        assert start is not None
        shifts = sorted(float(clock.split(" ms")[0]) / 1000 for clock in start.clocks)
        assert shifts == pytest.approx(SHIFTS_SECONDS, abs=0.01), start.clocks
        assert 0 < start.clock_error_ns < 10_000_000, f"ε {start.clock_error_ns} ns"
        assert start.gate_spread_ns is not None and start.gate_spread_ns < 20_000_000 + 2 * start.clock_error_ns
        now = time.monotonic_ns()
        assert all(now - 120e9 < op.start_ns <= now for op in result.history), "times on this process's clock"
        assert all(0 < op.clock_error_ns <= start.clock_error_ns for op in result.history), "each row with its ε"
        lost = check_lost_updates(result.history)
        assert not lost.passed and lost.value, lost.message
        assert await total_balance(target, [account]) > balance - agents * iterations

    with_target(pg_dsn, run_id, body)


def _launch_when_both_joined(tool: PythonTool, plan: LaunchPlan, address: str) -> LaunchResult:
    _both_joined(address)
    return launch_on_workers(tool.recipe(), plan, len(SHIFTS_SECONDS), cluster=address)


def _both_joined(address: str) -> None:
    from distributed import Client

    with Client(address, timeout=STARTUP_SECONDS) as client:
        client.wait_for_workers(len(SHIFTS_SECONDS), timeout=STARTUP_SECONDS)


@pytest.mark.parametrize("lock", ["stampede redis", "broken"])
def test_lock_timings_come_back_on_this_clock_a_correct_lock_passes_and_the_broken_one_is_caught(
    shifted_cluster: str, redis_url: str, run_id: str, lock: str
) -> None:
    async def body(targets: Targets) -> None:
        await asyncio.to_thread(_both_joined, shifted_cluster)
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
        await asyncio.to_thread(_both_joined, shifted_cluster)
        launched = await websocket_agents_on_workers(ref, 10, shifted_cluster, answer_timeout=2.0, run_timeout=2.0)
        began, ended = launched.result.started_ns, launched.result.ended_ns
        assert all(began <= message.t_ns <= ended for message in launched.tool.messages), "on this clock"
        sessions = [op.read["session"]["since_ns"] for op in launched.result.history if op.read.get("session")]
        assert sessions and all(began <= since <= ended for since in sessions)
        verdict = launched.verdicts()["contamination"]
        assert not verdict.passed and not verdict.inconclusive, verdict.message

    scenario(*embedded, run_id, body, bugs="leak", settings={"think_ms": 200})
