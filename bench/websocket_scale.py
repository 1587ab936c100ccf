"""WebSocket agents at scale against the reference agent service.

For each count (default 1,000, 5,000 and 10,000) the agents are released at once (or, with
--rate, started at that many per second); each connects, authenticates, starts one run and
reads it to its done event. Reported per count:
wall time, errors, connect and run latency p99, and harness memory per agent (the growth of
this process's peak RSS during the launch, sampled every 100 ms, divided by the agents).
Target: 10,000 agents with zero errors in under 60 s and under 50 KB of harness memory per agent.

The service (the bundled reference agent service, its own process) and embedded PostgreSQL
and Redis are started by the benchmark; the open-files limit is raised to its hard limit.
Each count runs in a fresh child process (with its own service), so memory freed by one
count cannot hide another's growth.

With --service-processes N the service serves its WebSocket port from N processes (one core each);
its CPU is summed over all of them.

Run: .venv/bin/python bench/websocket_scale.py [--agents 1000 5000 10000] [--rate 0] [--think-ms 50]
[--service-processes 1] [--cpus 1.2]

With --cpus X the benchmark, the service, PostgreSQL and Redis share X cores' worth of CPU time (a cgroup
quota): how much slower a machine the figure holds on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_quota, figure, machine_line, postgres, raise_open_files_limit, redis, run
from stampede.launcher import LaunchPlan, launch
from stampede.metrics import summarize
from stampede.outcomes import Outcome
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede.services.postgres_target import open_postgres
from stampede.services.redis_target import open_redis
from stampede.shapes import AllAtOnce, RampInBatches
from stampede.workloads.websocket_agents import WebSocketAgentTool
from stampede.workloads.websocket_protocol import reference_service

TARGET_SECONDS = 60.0
TARGET_KB_PER_AGENT = 50.0


@dataclass
class Scale:
    agents: int
    wall_s: float
    errors: int
    error_codes: dict[str, int]
    connect_p99_s: float
    run_p99_s: float
    kb_per_agent: float
    harness_cpu_s: float
    service_cpu_s: float
    loop_late_s: float


class PeakRss:
    """This process's peak RSS while a launch runs, sampled on the loop every 100 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.peak = self.process.memory_info().rss
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)
        if self._task is not None:
            self._task.cancel()


def service_cpu_seconds(service: EmbeddedAgentService) -> float:
    """User + system CPU of the service's process and every process it started (its serving processes)."""
    parent = psutil.Process(service.pid)
    return sum(sum(process.cpu_times()[:2]) for process in [parent, *parent.children(recursive=True)])


async def one_scale(service: EmbeddedAgentService, agents: int, rate: int) -> Scale:
    tool = WebSocketAgentTool(
        reference_service(service.url),
        tokens=service.token_for,
        connect_timeout=30.0,
        answer_timeout=30.0,
        run_timeout=60.0,
    )
    shape = RampInBatches(batch_size=max(1, rate // 10), interval=0.1) if rate else AllAtOnce()
    plan = LaunchPlan(agents, iterations=1, shape=shape, operation_timeout=tool.operation_bound, run_timeout=300)
    harness = psutil.Process()
    harness_cpu, service_cpu = sum(harness.cpu_times()[:2]), service_cpu_seconds(service)
    with PeakRss() as rss:
        result = await launch(tool, plan)
    harness_cpu = sum(harness.cpu_times()[:2]) - harness_cpu
    service_cpu = service_cpu_seconds(service) - service_cpu
    summary = summarize(result)
    failed = [op for op in result.history if op.outcome is not Outcome.OK]
    codes: dict[str, int] = {}
    for op in failed:
        codes[op.error or op.outcome.value] = codes.get(op.error or op.outcome.value, 0) + 1
    for error in result.agent_errors.values():
        codes[error[:80]] = codes.get(error[:80], 0) + 1
    for op in failed[:3]:
        print(f"  agent {op.agent} failed: {op.error}: {op.read}", flush=True)
    missing = agents - len(result.history)
    return Scale(
        agents=agents,
        wall_s=result.wall_seconds,
        errors=len(failed) + len(result.agent_errors) + max(missing - len(result.agent_errors), 0),
        error_codes=codes,
        connect_p99_s=summary.metrics.get("connect_p99", 0.0),
        run_p99_s=summary.metrics.get("run_p99", 0.0),
        kb_per_agent=(rss.peak - rss.baseline) / 1024 / agents,
        harness_cpu_s=harness_cpu,
        service_cpu_s=service_cpu,
        loop_late_s=max(result.loop_lag_ns, default=0) / 1e9,
    )


def report_service_warnings(service: EmbeddedAgentService) -> None:
    """What the service logged as going wrong, counted by kind (the text after the user id)."""
    if service.log_path is None or not service.log_path.exists():
        return
    kinds: dict[str, int] = {}
    for line in service.log_path.read_text(errors="replace").splitlines():
        if "WARNING" in line or "ERROR" in line:
            kind = re.sub(r"user-\d+", "user-N", line.split(": ", 1)[-1])[:120] or "(no message)"
            kinds[kind] = kinds.get(kind, 0) + 1
    for kind, count in sorted(kinds.items(), key=lambda item: -item[1])[:5]:
        print(f"  the service logged {count} × {kind}", flush=True)


async def scales(
    pg_dsn: str, redis_url: str, counts: list[int], settings: dict[str, int], rate: int, processes: int
) -> list[Scale]:
    run_id = f"bench_{secrets.token_hex(4)}"
    postgres_target = await open_postgres(pg_dsn, run_id=run_id)
    redis_target = await open_redis(redis_url, run_id=run_id)
    service = EmbeddedAgentService.for_targets(postgres_target, redis_target, settings=settings, processes=processes)
    found = []
    try:
        await asyncio.to_thread(service.start)
        print(f"service: {processes} process(es), pids {', '.join(map(str, service.pids))}", flush=True)
        for agents in counts:
            started = time.monotonic()
            scale = await one_scale(service, agents, rate)
            found.append(scale)
            codes = ", ".join(f"{code} × {count}" for code, count in scale.error_codes.items()) or "none"
            print(
                f"{agents:>6} agents: wall {scale.wall_s:.1f} s, errors {scale.errors} ({codes}), connect p99 "
                f"{scale.connect_p99_s * 1e3:.0f} ms, run p99 {scale.run_p99_s * 1e3:.0f} ms, harness memory "
                f"{scale.kb_per_agent:.1f} KB per agent; CPU: harness {scale.harness_cpu_s:.1f} s, service "
                f"{scale.service_cpu_s:.1f} s (measured in {time.monotonic() - started:.0f} s); the harness's loop "
                f"was late by up to {scale.loop_late_s:.1f} s",
                flush=True,
            )
    finally:
        report_service_warnings(service)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(service.stop)
        await redis_target.close()
        await postgres_target.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--think-ms", type=int, default=50, help="the service's think time per run")
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="agents started per second, in batches every 100 ms (0: all at once behind the barrier)",
    )
    parser.add_argument(
        "--service-processes", type=int, default=1, help="processes the reference service serves its port from"
    )
    parser.add_argument(
        "--pg-pool-size", type=int, default=10, help="PostgreSQL connections each service process holds at most"
    )
    parser.add_argument(
        "--cpus",
        type=float,
        default=None,
        help="run everything the benchmark starts within this many cores' worth of CPU (a cgroup quota; needs root)",
    )
    parser.add_argument("--pg-dsn", default=None)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    limit = raise_open_files_limit()
    quota = "" if args.cpus is None else f", within {args.cpus:g} cores' worth of CPU"
    print(machine_line(), f"open-files limit {limit}{quota}", flush=True)
    with cpu_quota(args.cpus), postgres(args.pg_dsn) as pg_dsn, redis(args.redis_url) as redis_url:
        if len(args.agents) > 1:
            for agents in args.agents:
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--agents",
                        str(agents),
                        "--think-ms",
                        str(args.think_ms),
                        "--rate",
                        str(args.rate),
                        "--service-processes",
                        str(args.service_processes),
                        "--pg-pool-size",
                        str(args.pg_pool_size),
                        "--pg-dsn",
                        pg_dsn,
                        "--redis-url",
                        redis_url,
                    ],
                    check=True,
                    timeout=900,
                )
            return
        (scale,) = run(
            scales(
                pg_dsn,
                redis_url,
                args.agents,
                dict(think_ms=args.think_ms, pg_pool_size=args.pg_pool_size),
                args.rate,
                args.service_processes,
            )
        )
    figure(
        f"{scale.agents} WebSocket agents, wall time",
        f"{scale.wall_s:.1f} s",
        f"< {TARGET_SECONDS:g} s",
        scale.wall_s < TARGET_SECONDS,
    )
    figure(
        f"{scale.agents} WebSocket agents, errors (service processes: {args.service_processes})",
        str(scale.errors),
        "0",
        scale.errors == 0,
    )
    figure(
        f"{scale.agents} WebSocket agents, harness memory per agent",
        f"{scale.kb_per_agent:.1f} KB",
        f"< {TARGET_KB_PER_AGENT:g} KB",
        scale.kb_per_agent < TARGET_KB_PER_AGENT,
    )


if __name__ == "__main__":
    main()
