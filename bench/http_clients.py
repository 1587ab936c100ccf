"""Which HTTP client the HTTP agent tool uses: httpx (+ httpx-sse) against aiohttp, measured in one run.

One local aiohttp.web endpoint (its own process) serves both clients:
``POST /echo`` answers a small JSON body, ``GET /stream`` sends one SSE event and then
holds the stream open. Each client runs in a fresh child process of its own (so one
client's memory cannot hide the other's) and reports:

- client CPU per request: this process's CPU time (user + system) over ``--requests``
  JSON POSTs made ``--concurrency`` at a time on one shared pool, divided by the requests;
- memory per open SSE stream: the growth of the child's RSS while ``--streams`` SSE
  streams are open at once (each has read its first event), divided by the streams.

Both clients run on uvloop, as the engine's own loop does.

Run: .venv/bin/python bench/http_clients.py [--requests 20000] [--concurrency 50] [--streams 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, raise_open_files_limit, require_bench_packages, run
from http_endpoint import serve_in_child

CLIENTS = ("aiohttp", "httpx")


async def _aiohttp(url: str, requests: int, concurrency: int, streams: int) -> dict[str, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(count: int) -> None:
            for i in range(count):
                async with session.post(f"{url}/echo", json={"marker": "m", "n": i}) as answer:
                    await answer.json()

        cpu = await _timed_posts(post, requests, concurrency)
        opened: list[Any] = []
        rss = psutil.Process().memory_info().rss
        for _ in range(streams):
            answer = await session.get(f"{url}/stream")
            await answer.content.readuntil(b"\n\n")
            opened.append(answer)
        grown = psutil.Process().memory_info().rss - rss
        for answer in opened:
            answer.close()
    return {"cpu_per_request_us": cpu, "bytes_per_stream": grown / streams}


async def _httpx(url: str, requests: int, concurrency: int, streams: int) -> dict[str, float]:
    import httpx
    from httpx_sse import aconnect_sse

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def post(count: int) -> None:
            for i in range(count):
                answer = await client.post(f"{url}/echo", json={"marker": "m", "n": i})
                answer.json()

        cpu = await _timed_posts(post, requests, concurrency)
        opened: list[Any] = []
        rss = psutil.Process().memory_info().rss
        for _ in range(streams):
            context = aconnect_sse(client, "GET", f"{url}/stream")
            source = await context.__aenter__()
            events = source.aiter_sse()
            await events.__anext__()
            opened.append((context, events))
        grown = psutil.Process().memory_info().rss - rss
        for context, events in opened:
            await events.aclose()
            await context.__aexit__(None, None, None)
    return {"cpu_per_request_us": cpu, "bytes_per_stream": grown / streams}


async def _timed_posts(post: Any, requests: int, concurrency: int) -> float:
    """Microseconds of this process's CPU time per request, over ``requests`` POSTs ``concurrency`` at a time."""
    await post(concurrency)  # warm the pool and the code paths
    share, extra = divmod(requests, concurrency)
    started = time.process_time()
    await asyncio.gather(*(post(share + (1 if k < extra else 0)) for k in range(concurrency)))
    return (time.process_time() - started) / requests * 1e6


def _child(client: str, url: str, requests: int, concurrency: int, streams: int) -> None:
    measure = _aiohttp if client == "aiohttp" else _httpx
    print(json.dumps(run(measure(url, requests, concurrency, streams))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_files_limit()
    require_bench_packages("httpx", "httpx_sse")
    if args.child:
        _child(args.child, args.url, args.requests, args.concurrency, args.streams)
        return
    print(machine_line())
    results: dict[str, dict[str, float]] = {}
    with serve_in_child() as url:
        for client in CLIENTS:
            answer = subprocess.run(
                [sys.executable, __file__, "--child", client, "--url", url, *_sizes(args)],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if answer.returncode != 0:
                raise SystemExit(f"the {client} run failed:\n{answer.stderr[-2000:]}")
            results[client] = json.loads(answer.stdout.strip().splitlines()[-1])
    for client, figures in results.items():
        print(
            f"{client}: {figures['cpu_per_request_us']:.0f} µs CPU per JSON POST "
            f"({args.requests} requests, {args.concurrency} at a time); "
            f"{figures['bytes_per_stream'] / 1024:.1f} KB RSS per open SSE stream ({args.streams} streams)"
        )
    cpu = {client: figures["cpu_per_request_us"] for client, figures in results.items()}
    memory = {client: figures["bytes_per_stream"] / 1024 for client, figures in results.items()}
    figure("aiohttp / httpx client CPU per request", f"{cpu['aiohttp'] / cpu['httpx']:.2f}", "< 1 for aiohttp", None)
    figure(
        "aiohttp / httpx memory per open SSE stream",
        f"{memory['aiohttp'] / max(memory['httpx'], 0.1):.2f}",
        "< 1 for aiohttp",
        None,
    )


def _sizes(args: argparse.Namespace) -> list[str]:
    return ["--requests", str(args.requests), "--concurrency", str(args.concurrency), "--streams", str(args.streams)]


if __name__ == "__main__":
    main()
