"""The MCP server: its tools on the ``mcp`` SDK's Streamable HTTP app, behind a bearer-JWT check.

Tools (each takes a ``nonce`` and echoes it in its result, so a client can tell
its answer from another's):

- ``deduct(amount, nonce)``: takes ``amount`` of the caller's credits, returns the balance;
- ``balance(nonce)``: the caller's balance;
- ``append_note(note, nonce)``: appends to the caller's notes, returns them all;
- ``read_notes(nonce)``: the caller's notes;
- ``sleep(seconds, nonce, charge=0)``: sleeps in steps, reporting progress, then takes ``charge`` credits.

``GET /sessions`` answers ``{"tracked": n, "open": m}``: the per-session state
the server keeps and the SDK's open session transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference_agent_service.auth import TokenError, verify_token

from .bugs import Bug
from .store import Store

PATH = "/mcp"
SLEEP_STEPS = 4
MAX_SLEEP_SECONDS = 30.0
SESSION_BUFFER_BYTES = 256 * 1024
REPLY_PAUSE = 0.005  # seconds a result waits in the crossed_replies map
_Json = dict[str, Any]


@dataclass
class Sessions:
    """The state the server keeps per MCP session (a work buffer), dropped at the session's DELETE."""

    keep_after_delete: bool
    state: dict[str, bytearray] = field(default_factory=dict)

    def seen(self, session_id: str) -> None:
        if session_id not in self.state:
            self.state[session_id] = bytearray(SESSION_BUFFER_BYTES)

    def deleted(self, session_id: str) -> None:
        if not self.keep_after_delete:
            self.state.pop(session_id, None)


class Tools:
    """The tool bodies, with the bugs they were started with."""

    def __init__(self, store: Store, secret: str, bugs: frozenset[Bug], stdio_user: str | None = None) -> None:
        self.store = store
        self.secret = secret
        self.bugs = bugs
        self.stdio_user = stdio_user
        """Over stdio (no headers): the user the process was started for."""
        self._replies: dict[str, _Json] = {}

    def user(self, ctx: Context) -> str:
        """Who the call's bearer token speaks for (the HTTP layer has refused calls without a valid one)."""
        if ctx.headers is None and self.stdio_user is not None:
            return self.stdio_user
        header = (ctx.headers or {}).get("authorization", "")
        return verify_token(self.secret, header.removeprefix("Bearer ").strip()).user_id

    async def answer(self, ctx: Context, work: Awaitable[_Json]) -> _Json:
        """The tool's result, handed over through a map keyed by request id alone under crossed_replies."""
        result = await work
        if Bug.CROSSED_REPLIES not in self.bugs:
            return result
        key = ctx.request_id
        self._replies[key] = result
        await asyncio.sleep(REPLY_PAUSE)
        return self._replies.get(key, result)

    async def deduct(self, ctx: Context, amount: int, nonce: str) -> _Json:
        balance = await self.store.deduct(self.user(ctx), amount)
        return {"nonce": nonce, "balance": balance}

    async def balance(self, ctx: Context, nonce: str) -> _Json:
        return {"nonce": nonce, "balance": await self.store.balance(self.user(ctx))}

    def notes_owner(self, ctx: Context) -> str:
        """Whose notes a call works on: the caller's (session_keyed_notes: the Mcp-Session-Id header's, or "")."""
        if Bug.SESSION_KEYED_NOTES in self.bugs:
            return (ctx.headers or {}).get("mcp-session-id", "")
        return self.user(ctx)

    async def append_note(self, ctx: Context, note: str, nonce: str) -> _Json:
        return {"nonce": nonce, "notes": await self.store.append_note(self.notes_owner(ctx), note)}

    async def read_notes(self, ctx: Context, nonce: str) -> _Json:
        return {"nonce": nonce, "notes": await self.store.notes(self.notes_owner(ctx))}

    async def sleep(self, ctx: Context, seconds: float, nonce: str, charge: int) -> _Json:
        user = self.user(ctx)
        seconds = min(max(seconds, 0.0), MAX_SLEEP_SECONDS)

        async def work() -> _Json:
            if Bug.BLOCKING_SLEEP in self.bugs:
                time.sleep(seconds)  # the sync tool: nothing else runs meanwhile
            for step in range(1, SLEEP_STEPS + 1):
                if Bug.BLOCKING_SLEEP not in self.bugs:
                    await asyncio.sleep(seconds / SLEEP_STEPS)
                await ctx.report_progress(step, SLEEP_STEPS, f"slept {step}/{SLEEP_STEPS}")
            balance = await self.store.deduct(user, charge) if charge else None
            return {"nonce": nonce, "slept": seconds, "balance": balance}

        if Bug.IGNORE_CANCEL in self.bugs:
            return await asyncio.shield(asyncio.ensure_future(work()))
        return await work()


def build_server(tools: Tools) -> MCPServer:
    """The MCP server with the five tools."""
    mcp = MCPServer("stampede-reference-mcp", version="1")

    @mcp.tool(description="Take amount of the caller's credits; returns the balance after it.")
    async def deduct(amount: int, nonce: str, ctx: Context) -> _Json:
        return await tools.answer(ctx, tools.deduct(ctx, amount, nonce))

    @mcp.tool(description="The caller's credit balance.")
    async def balance(nonce: str, ctx: Context) -> _Json:
        return await tools.answer(ctx, tools.balance(ctx, nonce))

    @mcp.tool(description="Append note to the caller's notes; returns all the caller's notes.")
    async def append_note(note: str, nonce: str, ctx: Context) -> _Json:
        return await tools.answer(ctx, tools.append_note(ctx, note, nonce))

    @mcp.tool(description="The caller's notes, oldest first.")
    async def read_notes(nonce: str, ctx: Context) -> _Json:
        return await tools.answer(ctx, tools.read_notes(ctx, nonce))

    @mcp.tool(description="Sleep seconds (at most 30) in four steps with progress, then take charge credits.")
    async def sleep(seconds: float, nonce: str, ctx: Context, charge: int = 0) -> _Json:
        return await tools.answer(ctx, tools.sleep(ctx, seconds, nonce, charge))

    return mcp


class Gate:
    """ASGI wrapper: a bearer JWT on every MCP request (401 without), per-session state kept and dropped;
    under ignore_cancel, ``notifications/cancelled`` is acknowledged and dropped before the SDK sees it."""

    def __init__(
        self,
        app: ASGIApp,
        secret: str,
        sessions: Sessions,
        open_sessions: Callable[[], int],
        *,
        drop_cancels: bool = False,
    ) -> None:
        self.app = app
        self.secret = secret
        self.sessions = sessions
        self.open_sessions = open_sessions
        self.drop_cancels = drop_cancels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/sessions":
            counts = {"tracked": len(self.sessions.state), "open": self.open_sessions()}
            await JSONResponse(counts)(scope, receive, send)
            return
        headers = Request(scope).headers
        try:
            verify_token(self.secret, headers.get("authorization", "").removeprefix("Bearer ").strip())
        except TokenError as error:
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"unauthorized: {error.reason}"}}
            await JSONResponse(body, status_code=401)(scope, receive, send)
            return
        session_id = headers.get("mcp-session-id")
        if session_id and scope["method"] == "DELETE":
            self.sessions.deleted(session_id)
        elif session_id:
            self.sessions.seen(session_id)
        if self.drop_cancels and scope["method"] == "POST":
            raw, receive = await _buffered(receive)
            if _is_cancel(raw):
                await Response(status_code=202)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request's whole body, and a ``receive`` that hands it to the app again."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _is_cancel(body: bytes) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("method") == "notifications/cancelled"


def application(tools: Tools, sessions: Sessions, session_idle_timeout: float) -> tuple[ASGIApp, MCPServer]:
    """The ASGI app to serve, and the MCP server in it (its lifespan runs the SDK's session manager)."""
    mcp = build_server(tools)
    app = mcp.streamable_http_app(
        streamable_http_path=PATH,
        session_idle_timeout=session_idle_timeout,
        max_sessions=None,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    def open_sessions() -> int:
        return len(mcp.session_manager._server_instances)

    gate = Gate(app, tools.secret, sessions, open_sessions, drop_cancels=Bug.IGNORE_CANCEL in tools.bugs)
    return gate, mcp


@contextlib.asynccontextmanager
async def opened_store(
    dsn: str, schema: str, initial_credits: int, bugs: frozenset[Bug], *, connections: int = 20
) -> AsyncIterator[Store]:
    store = await Store.open(dsn, schema, initial_credits, lost_update=Bug.LOST_UPDATE in bugs, connections=connections)
    try:
        yield store
    finally:
        await store.close()


def ready_line(host: str, port: int, pid: int, bugs: frozenset[Bug]) -> str:
    return json.dumps(
        {
            "ready": True,
            "port": port,
            "pid": pid,
            "url": f"http://{host}:{port}{PATH}",
            "bugs": sorted(bugs),
        }
    )


def describe() -> Mapping[str, object]:
    return {"bugs": {bug.value: bug.description for bug in Bug}}
