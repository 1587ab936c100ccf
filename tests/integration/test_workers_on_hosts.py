"""Two "hosts" (network namespaces on a bridge, each with its monotonic clock shifted) running ``dask worker``.

The scheduler and a PostgreSQL run on this side, listening on the bridge's
address, as on a server machine; each worker runs on a host of its own whose
monotonic clock is ahead of this one by a known amount and reaches them over
its veth. The clock probe must find each shift within its ε, the histories
must come back on this process's timeline, the seeded read-then-write must
still lose updates with its agents split across the two, and a host's worker
killed mid-launch must fail it by name and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stampede.checkers.lost_updates import check_lost_updates
from stampede.launcher import LaunchPlan
from stampede.services import EmbeddedPostgres
from stampede.services.postgres_target import PostgresTarget
from stampede.workers import WorkersFailed, launch_on_workers
from stampede.workloads.credits import create_accounts, total_balance
from stampede.workloads.python_tool import PythonTool, ServiceEndpoints

from .netns_hosts import STARTUP_SECONDS, Lan, dask_on, hosts_unavailable, lan
from .support import with_target

TOOLS = Path(__file__).resolve().parents[2] / "libraries" / "stampede_robot" / "resources" / "credit_tools.py"
SHIFTS_SECONDS = (1000, 2500)

STEADY = """
import asyncio
import pathlib


class Steady:
    def __init__(self, context):
        self.context = context

    async def run(self):
        pathlib.Path(__file__).with_name("running").touch()
        await asyncio.sleep(0.05)
"""

_UNAVAILABLE = hosts_unavailable()
pytestmark = [
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"no network hosts here: {_UNAVAILABLE}"),
    # No test here uses the user's services (the PostgreSQL is one of its own, on the LAN): the external pass
    # would only repeat them.
    pytest.mark.embedded_only,
]


@contextlib.contextmanager
def dask_on_hosts(logs: Path) -> Iterator[tuple[Lan, str]]:
    """A scheduler on this side of a LAN and a ``dask worker`` on each of its hosts; the LAN and its address."""
    with lan(SHIFTS_SECONDS) as hosts, dask_on(hosts, logs) as address:
        yield hosts, address


def test_the_probe_finds_each_hosts_shift_and_a_read_then_write_still_loses_updates(
    tmp_path: Path, run_id: str
) -> None:
    agents, iterations, balance = 20, 3, 10_000

    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, balance)
        services = ServiceEndpoints(postgres_dsn=target.client_dsn())
        factory = f"{TOOLS}:NaiveDeduction"
        tool = PythonTool(name="naive", factory=factory, settings={"account": account}, services=services)
        plan = LaunchPlan(agents=agents, iterations=iterations)
        result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, len(SHIFTS_SECONDS), cluster=address)
        start = result.workers_start
        assert start is not None
        shifts = sorted(float(clock.split(" ms")[0]) / 1000 for clock in start.clocks)
        assert shifts == pytest.approx(SHIFTS_SECONDS, abs=0.01), start.clocks
        assert 0 < start.clock_error_ns < 10_000_000, f"ε {start.clock_error_ns} ns"
        assert start.gate_spread_ns is not None and start.gate_spread_ns < 20_000_000 + 2 * start.clock_error_ns
        now = time.monotonic_ns()
        assert all(now - 120e9 < op.start_ns <= now for op in result.history), "times on this process's clock"
        assert all(0 < op.clock_error_ns <= start.clock_error_ns for op in result.history), "each row with its ε"
        assert {op.agent for op in result.history} == set(range(1, agents + 1)), "agents on both hosts"
        lost = check_lost_updates(result.history)
        assert not lost.passed and lost.value, lost.message
        assert await total_balance(target, [account]) > balance - agents * iterations

    with dask_on_hosts(tmp_path) as (hosts, address), EmbeddedPostgres(interface=str(hosts.interface)) as postgres:
        assert postgres.dsn.split("@")[1].startswith(f"{hosts.address}:"), "the hosts reach it on the LAN"
        with_target(postgres.dsn, run_id, body)


def test_a_hosts_worker_killed_mid_launch_fails_it_naming_the_shard_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "steady.py"
    path.write_text(STEADY, encoding="utf-8")
    tool = PythonTool(name="steady", factory=f"{path}:Steady")
    plan = LaunchPlan(agents=4, duration=30.0, operation_timeout=2.0)
    with dask_on_hosts(tmp_path) as (hosts, address):
        second_worker = hosts.processes[-1]  # started last

        def kill_the_second_hosts_worker_once_it_runs() -> None:
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline and not (tmp_path / "running").exists():
                time.sleep(0.1)
            second_worker.kill()

        killer = threading.Thread(target=kill_the_second_hosts_worker_once_it_runs)
        killer.start()
        began = time.monotonic()
        named = rf"shard 2 \(agents 3-4\): its worker tcp://{hosts.hosts[1].address}:\d+ left the cluster"
        with pytest.raises(WorkersFailed, match=named) as failed:
            launch_on_workers(tool.recipe(), plan, len(SHIFTS_SECONDS), cluster=address)
        killer.join()
        assert time.monotonic() - began < 25, "nothing hangs: the launch would have run 30 s"
        kept = failed.value.kept
        assert kept is not None and {op.agent for op in kept.history} == {1, 2}, "the first host's shard is kept"
        assert _tasks_on_scheduler(address) == 0, "the launch left no task on the cluster"
    assert all(process.returncode is not None for process in hosts.processes), "a worker or the scheduler was left"
    assert not [child for child in psutil.Process().children(recursive=True) if "dask" in " ".join(child.cmdline())]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True)
    assert not [host.namespace for host in hosts.hosts if host.namespace in namespaces.stdout], "a netns was left"


def _tasks_on_scheduler(address: str) -> int:
    from distributed import Client

    with Client(address, timeout=STARTUP_SECONDS) as client:
        return int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))
