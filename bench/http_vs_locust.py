"""Requests per second per core: Stampede's HTTP agent tool against Locust's FastHttpUser, side by side in one run.

One local HTTP endpoint (bench/http_endpoint.py, aiohttp.web on uvloop in its own process)
answers ``POST /threads/{thread}/runs/wait`` at once, as the reference service's HTTP API
would answer a run that ended. Each client then sends that request, with a JSON body of the
same shape, as fast as it can for ``--seconds`` from ``--users`` concurrent users, in a child
process of its own, one client after the other, ``--rounds`` times. Per request:

- Stampede: ``HttpAgentTool`` in ``wait`` mode (the reference protocol, auth none), launched
  by the launcher with ``--users`` agents for ``--seconds``, on uvloop. It fills the request
  template (path and body with the agent's marker and text), sends it, reads the answer as
  JSON, takes the run's status, id and messages from it, and records the run (a RunAttempt
  with its status code, run id and outcome) and the operation (history: times, outcome,
  read and written values, timings), all bounded by the run timeout;
- Locust: a ``FastHttpUser`` (geventhttpclient) with ``wait_time = constant(0)`` and one task
  posting the body and reading the answer as JSON (``--locust-skips-answer``: not read, less
  work than the others do), ``--users`` users on a local runner; Locust
  records each request into its aggregated statistics (counts, response-time buckets), not
  one record per request;
- bare aiohttp: ``--users`` coroutines posting the body on one ClientSession (aiohttp's
  default 5-minute total timeout) and reading the answer as JSON, nothing recorded, on uvloop
  (so the gap between it and Stampede is Stampede's own cost, the rest the client's).

Figures: each child's requests per second of wall time and per CPU-second of its own
process (user + system, ``time.process_time``, so the machine's other load counts less):
requests/s per core. Printed: each round, then for each client the range over the rounds
and the best, and the ratio Stampede ÷ Locust (best against best, and round by round).
Target: Stampede ahead of Locust per core.
Locust is a benchmark-only requirement: ``.venv/bin/pip install -r requirements-bench.txt``.

Run: .venv/bin/python bench/http_vs_locust.py [--seconds 10] [--users 20] [--rounds 1] [--locust-skips-answer]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, require_bench_packages
from http_endpoint import serve_in_child

BODY = {"input": {"marker": "m-1", "text": "hello", "steps": 3, "step_ms": 20}, "multitask_strategy": "reject"}
PATH = "/threads/t-1/runs/wait"
CLIENTS = ("stampede", "locust", "aiohttp")


def _stampede(url: str, seconds: float, users: int) -> dict[str, float]:
    from _common import run
    from stampede.launcher import LaunchPlan, launch
    from stampede.workloads.http_agents import HttpAgentTool
    from stampede.workloads.http_protocol import HttpProtocol

    tool = HttpAgentTool(HttpProtocol.from_dict({"auth": "none"}, base_url=url), mode="wait")
    plan = LaunchPlan(agents=users, users=users, duration=seconds, operation_timeout=10, run_timeout=seconds + 60)
    cpu = time.process_time()
    result: Any = run(launch(tool, plan))
    cpu = time.process_time() - cpu
    history = list(result.history)
    errors = sum(1 for op in history if op.error)
    wall = (max(op.end_ns for op in history) - min(op.start_ns for op in history)) / 1e9
    return {"requests": len(history), "errors": errors, "wall_s": wall, "cpu_s": cpu}


def _locust(url: str, seconds: float, users: int, *, read_answer: bool = True) -> dict[str, float]:
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    class RunWaiter(FastHttpUser):  # type: ignore[misc]
        host = url
        wait_time = constant(0)

        @task
        def run_wait(self) -> None:
            answer = self.client.post(PATH, json=BODY)
            if read_answer:
                answer.json()  # the run's answer read, as the other two clients do

    environment = Environment(user_classes=[RunWaiter])
    runner = environment.create_local_runner()
    cpu = time.process_time()
    started = time.monotonic()
    runner.start(users, spawn_rate=users)
    gevent.sleep(seconds)
    runner.quit()
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu
    total = environment.stats.total
    return {"requests": total.num_requests, "errors": total.num_failures, "wall_s": wall, "cpu_s": cpu}


def _aiohttp(url: str, seconds: float, users: int) -> dict[str, float]:
    import asyncio

    import aiohttp

    from _common import run

    async def body() -> dict[str, float]:
        counts = [0, 0]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def user(deadline: float) -> None:
                while time.monotonic() < deadline:
                    async with session.post(url + PATH, json=BODY) as answer:
                        await answer.json()
                        counts[answer.status != 200] += 1

            cpu, started = time.process_time(), time.monotonic()
            await asyncio.gather(*(user(started + seconds) for _ in range(users)))
            wall, cpu = time.monotonic() - started, time.process_time() - cpu
        return {"requests": counts[0] + counts[1], "errors": counts[1], "wall_s": wall, "cpu_s": cpu}

    return run(body())  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--locust-skips-answer",
        action="store_true",
        help="Locust leaves the answer unread (as a locustfile that only posts would): less work than the others",
    )
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "locust":
            figures = _locust(args.url, args.seconds, args.users, read_answer=not args.locust_skips_answer)
        else:
            figures = {"stampede": _stampede, "aiohttp": _aiohttp}[args.child](args.url, args.seconds, args.users)
        print(json.dumps(figures), flush=True)
        return
    require_bench_packages("locust")
    print(machine_line())
    print(f"Locust {'leaves the answer unread' if args.locust_skips_answer else 'reads the answer as JSON'}")
    per_core: dict[str, list[float]] = {client: [] for client in CLIENTS}
    with serve_in_child() as url:
        for round_ in range(1, args.rounds + 1):
            for client in CLIENTS:
                figures = _child(client, url, args)
                rate = figures["requests"] / figures["wall_s"]
                core = figures["requests"] / max(figures["cpu_s"], 1e-9)
                per_core[client].append(core)
                print(
                    f"round {round_}, {client}: {figures['requests']:.0f} requests, {figures['errors']:.0f} errors, "
                    f"{rate:,.0f} requests/s, {core:,.0f} requests per CPU-second ({figures['cpu_s']:.2f} s CPU)",
                    flush=True,
                )
    for client, values in per_core.items():
        print(
            f"{client}: {min(values):,.0f}–{max(values):,.0f} requests per CPU-second over {len(values)} round(s), "
            f"best {max(values):,.0f} ({1e6 / max(values):.0f} µs of CPU per request)"
        )
    best = {client: max(values) for client, values in per_core.items()}
    ratio = best["stampede"] / best["locust"]
    rounds = [stampede / locust for stampede, locust in zip(per_core["stampede"], per_core["locust"], strict=True)]
    print(f"Stampede ÷ Locust, round by round: {', '.join(f'{value:.2f}' for value in rounds)}")
    print(f"Stampede ÷ bare aiohttp requests per CPU-second: {best['stampede'] / best['aiohttp']:.2f} (best of each)")
    figure(
        "Stampede ÷ Locust FastHttpUser requests per CPU-second",
        f"{ratio:.2f} ({best['stampede']:,.0f} vs {best['locust']:,.0f}, best of {args.rounds})",
        "> 1",
        ratio > 1,
    )


def _child(client: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", client, "--url", url]
    command += ["--seconds", str(args.seconds), "--users", str(args.users)]
    command += ["--locust-skips-answer"] if args.locust_skips_answer else []
    answer = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 120, check=False)
    if answer.returncode != 0:
        raise SystemExit(f"the {client} run failed:\n{answer.stderr[-2000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    main()
