"""Stampede's MCP tool, launcher included, against a bare ``mcp`` SDK asyncio loop doing the same calls.

Both talk to the reference MCP server (its own process, on an embedded PostgreSQL or
``STAMPEDE_PG_DSN``) in each era, and report this process's CPU time (user +
system), so the server's work is not counted, and the wall time:

- per session set-up: ``--sessions`` sessions opened (``initialize`` + ``notifications/initialized``),
  all at once (the stateless era has no set-up: what is left is the client's own);
- per call: ``--calls`` ``tools/call`` of the ``balance`` tool in each of those sessions, the
  sessions calling at once (answers as SSE streams scoped to each request).

Stampede's side is a whole launch (``Launch Agents``: barrier, history, timings) of the MCP tool,
its set-up measured from the end of the tool's ``setup`` to the first call, its calls from the
first call to the end of the last. The SDK opens each session with its own transport on one
shared httpx2 client; the MCP tool shares one aiohttp pool. Both run on uvloop, as the engine's
loop does. ``--scale 100,250,500,1000`` then launches that many sessions (2 calls each) in each
era, and stops an era at its first count with an error: the largest held with 0 errors.

Run: .venv/bin/python bench/mcp_clients.py [--sessions 50] [--calls 40] [--scale 100,250,500,1000]
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

from _common import figure, machine_line, postgres, raise_open_files_limit, run
from stampede.agents import AgentContext, OpResult
from stampede.launcher import LaunchPlan, launch
from stampede.outcomes import Outcome
from stampede.services.embedded_mcp_server import EmbeddedMcpServer
from stampede.services.postgres_target import open_postgres
from stampede.workloads.mcp_tool import ERAS, McpTool

ARGUMENTS = {"nonce": "{nonce}"}
SDK_MODES = {"session": "legacy", "stateless": ERAS["stateless"]}
BOUND = 120.0  # seconds for all sessions to open, and again for all calls
Figures = tuple[float, float, float]
"""CPU seconds per session set-up, wall seconds for all set-ups, CPU seconds per call."""
Held = list[tuple[int, int, float]]
"""Per session count: errors, wall seconds of the launch."""


def _now() -> tuple[float, float]:
    return time.process_time(), time.monotonic()


class _TimedTool(McpTool):
    """The MCP tool with this process's CPU and wall time read where the launch's phases meet."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.marks: dict[str, tuple[float, float]] = {}

    async def setup(self, agents: int) -> None:
        await super().setup(agents)
        self.marks["opening"] = _now()

    async def run(self, agent: AgentContext) -> OpResult:
        self.marks.setdefault("calling", _now())
        result = await super().run(agent)
        self.marks["called"] = _now()
        return result


async def _sdk(url: str, token: str, era: str, sessions: int, calls: int) -> Figures:
    """Each session is one task from opening to closing (anyio's cancel scopes want that)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    opened, called = asyncio.Barrier(sessions + 1), asyncio.Barrier(sessions + 1)
    go, close = asyncio.Event(), asyncio.Event()

    async def session(http: httpx2.AsyncClient) -> None:
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
        started, began = _now()
        tasks = [asyncio.ensure_future(session(http)) for _ in range(sessions)]
        async with asyncio.timeout(BOUND):
            await opened.wait()
        setup, setup_wall = (time.process_time() - started) / sessions, time.monotonic() - began
        started = time.process_time()
        go.set()
        async with asyncio.timeout(BOUND):
            await called.wait()
        per_call = (time.process_time() - started) / (sessions * calls)
        close.set()
        await asyncio.gather(*tasks)
    return setup, setup_wall, per_call


def _errors(result: Any) -> int:
    return sum(1 for op in result.history if op.outcome != Outcome.OK) + len(result.agent_errors)


async def _launched(url: str, token: str, era: str, sessions: int, calls: int) -> Figures:
    tool = _TimedTool(url, "balance", ARGUMENTS, tokens=token, era=era)
    plan = LaunchPlan(agents=sessions, iterations=calls, operation_timeout=60, run_timeout=2 * BOUND)
    result = await launch(tool, plan)
    assert _errors(result) == 0 and len(result.history) == sessions * calls, result.agent_errors
    (opening, began), (calling, first), (called, _) = (tool.marks[m] for m in ("opening", "calling", "called"))
    return (calling - opening) / sessions, first - began, (called - calling) / (sessions * calls)


async def _held(url: str, token: str, era: str, sessions: int) -> tuple[int, float]:
    """Errors of a launch of ``sessions`` sessions making 2 calls each, and its wall time."""
    plan = LaunchPlan(agents=sessions, iterations=2, operation_timeout=60, run_timeout=2 * BOUND)
    began = time.monotonic()
    result = await launch(McpTool(url, "balance", ARGUMENTS, tokens=token, era=era, call_timeout=50), plan)
    return _errors(result), time.monotonic() - began


async def _measure(dsn: str, args: argparse.Namespace) -> tuple[dict[tuple[str, str], Figures], dict[str, Held]]:
    target = await open_postgres(dsn, run_id=f"b_{int(time.time())}")
    server = EmbeddedMcpServer.for_target(target)
    clients: dict[str, Callable[[str, str, str, int, int], Awaitable[Figures]]] = {
        "Stampede": _launched,
        "mcp SDK": _sdk,
    }
    try:
        server.start()
        token = server.token_for("bench")
        figures, held = {}, {}
        for era in ERAS:
            for name, client in clients.items():
                await client(server.url, token, era, 5, 5)  # warm up: imports, first connections
                figures[era, name] = await client(server.url, token, era, args.sessions, args.calls)
        for era in ERAS:
            held[era] = []
            for count in args.scale:
                errors, took = await _held(server.url, token, era, count)
                held[era].append((count, errors, took))
                if errors:
                    break
        return figures, held
    finally:
        server.stop()
        await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--scale", type=lambda text: [int(n) for n in text.split(",") if n], default=[])
    args = parser.parse_args()
    raise_open_files_limit()
    print(machine_line())
    with postgres() as dsn:
        measured = run(_measure(dsn, args))
    assert isinstance(measured, tuple)
    figures, held = measured
    for (era, name), (setup, setup_wall, per_call) in figures.items():
        figure(f"{era} era, {name}: client CPU per session set-up", f"{setup * 1e3:.2f} ms", "lower is better", None)
        if era == "session":
            figure(f"{era} era, {name}: sessions set up per second per client core", f"{1 / setup:.0f}", "-", None)
            figure(f"{era} era, {name}: sessions set up per second", f"{args.sessions / setup_wall:.0f}", "-", None)
        figure(f"{era} era, {name}: client CPU per tool call", f"{per_call * 1e3:.3f} ms", "lower is better", None)
        figure(f"{era} era, {name}: tool calls per second per client core", f"{1 / per_call:.0f}", "-", None)
    for era in ERAS:
        ratio = figures[era, "mcp SDK"][2] / figures[era, "Stampede"][2]
        figure(f"{era} era: Stampede ÷ bare SDK, calls per client core", f"{ratio:.2f}", "≥ 0.95", ratio >= 0.95)
        for count, errors, took in held[era]:
            name = f"{era} era: {count} sessions, 2 calls each"
            figure(name, f"{errors} errors in {took:.1f} s", "0 errors", not errors)


if __name__ == "__main__":
    main()
