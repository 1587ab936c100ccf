"""Which client the MCP tool uses: the official ``mcp`` SDK's against the tool's plain aiohttp JSON-RPC client.

Both talk to the reference MCP server (its own process, on an embedded PostgreSQL or
``STAMPEDE_PG_DSN``) in each era, and report this process's CPU time (user +
system), so the server's work is not counted:

- per session set-up: ``--sessions`` sessions opened (``initialize`` + ``notifications/initialized``),
  ``--concurrency`` at a time (the stateless era has no set-up: what is left is the client's own);
- per call: ``--calls`` ``tools/call`` of the ``balance`` tool in each of those sessions, the
  sessions calling at once (answers as SSE streams scoped to each request).

The SDK opens each session with its own transport on one shared httpx2 client; the plain client
shares one aiohttp pool. Both run on uvloop, as the engine's loop does.

Run: .venv/bin/python bench/mcp_clients.py [--sessions 50] [--calls 40] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, postgres, run
from stampede.agents import AgentContext
from stampede.services.embedded_mcp_server import EmbeddedMcpServer
from stampede.services.postgres_target import open_postgres
from stampede.workloads.mcp_tool import ERAS, McpTool

ARGUMENTS = {"nonce": "{nonce}"}
SDK_MODES = {"session": "legacy", "stateless": ERAS["stateless"]}
BOUND = 120.0  # seconds for all sessions to open, and again for all calls


async def _in_batches(work: Callable[[int], Awaitable[Any]], count: int, concurrency: int) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Any:
        async with gate:
            return await work(index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def _sdk(url: str, token: str, era: str, sessions: int, calls: int, concurrency: int) -> tuple[float, float]:
    """Each session is one task from opening to closing (anyio's cancel scopes want that)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    gate = asyncio.Semaphore(concurrency)
    opened, called = asyncio.Barrier(sessions + 1), asyncio.Barrier(sessions + 1)
    go, close = asyncio.Event(), asyncio.Event()

    async def session(http: httpx2.AsyncClient) -> None:
        async with gate:
            client = Client(streamable_http_client(url, http_client=http), mode=SDK_MODES[era])
            await client.__aenter__()
        try:
            await opened.wait()
            await go.wait()
            for n in range(calls):
                result = await client.call_tool("balance", {"nonce": str(n)})
                assert not result.is_error, result
            await called.wait()
            await close.wait()
        finally:
            await client.__aexit__(None, None, None)

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        started = time.process_time()
        tasks = [asyncio.ensure_future(session(http)) for _ in range(sessions)]
        async with asyncio.timeout(BOUND):
            await opened.wait()
        setup = (time.process_time() - started) / sessions
        started = time.process_time()
        go.set()
        async with asyncio.timeout(BOUND):
            await called.wait()
        per_call = (time.process_time() - started) / (sessions * calls)
        close.set()
        await asyncio.gather(*tasks)
    return setup, per_call


async def _plain(url: str, token: str, era: str, sessions: int, calls: int, concurrency: int) -> tuple[float, float]:
    tool = McpTool(url, "balance", ARGUMENTS, tokens=token, era=era)
    await tool.setup(sessions)
    try:
        agents = [AgentContext(n, "bench", f"m-bench-{n}") for n in range(1, sessions + 1)]
        started = time.process_time()
        await _in_batches(lambda index: tool.open_agent(agents[index]), sessions, concurrency)
        setup = (time.process_time() - started) / sessions

        async def call_all(agent: AgentContext) -> None:
            for n in range(calls):
                agent.iteration = n + 1
                result = await tool.run(agent)
                assert result.error is None, result.read

        started = time.process_time()
        await asyncio.gather(*(call_all(agent) for agent in agents))
        per_call = (time.process_time() - started) / (sessions * calls)
        for agent in agents:
            await tool.close_agent(agent)
    finally:
        await tool.teardown()
    return setup, per_call


async def _measure(dsn: str, args: argparse.Namespace) -> dict[tuple[str, str], tuple[float, float]]:
    target = await open_postgres(dsn, run_id=f"b_{int(time.time())}")
    server = EmbeddedMcpServer.for_target(target)
    try:
        server.start()
        token = server.token_for("bench")
        figures = {}
        for era in ERAS:
            for name, client in (("Stampede", _plain), ("mcp SDK", _sdk)):
                await client(server.url, token, era, 5, 5, 5)  # warm up: imports, first connections
                figures[era, name] = await client(server.url, token, era, args.sessions, args.calls, args.concurrency)
        return figures
    finally:
        server.stop()
        await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    print(machine_line())
    with postgres() as dsn:
        figures = run(_measure(dsn, args))
    assert isinstance(figures, dict)
    for (era, name), (setup, per_call) in figures.items():
        figure(f"{era} era, {name}: client CPU per session set-up", f"{setup * 1e3:.2f} ms", "lower is better", None)
        figure(f"{era} era, {name}: client CPU per tool call", f"{per_call * 1e3:.3f} ms", "lower is better", None)
        figure(f"{era} era, {name}: tool calls per second per client core", f"{1 / per_call:.0f}", "-", None)
    for era in ERAS:
        ratio = figures[era, "mcp SDK"][1] / figures[era, "Stampede"][1]
        figure(f"{era} era: Stampede ÷ bare SDK, calls per client core", f"{ratio:.2f}", "≥ 0.95", ratio >= 0.95)


if __name__ == "__main__":
    main()
