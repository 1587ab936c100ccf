"""MCP tool calls: agents as clients of an MCP tool server over Streamable HTTP, in either era.

In the session era (``era=session``, revision 2025-11-25) each agent opens one
MCP session before the start barrier (``initialize`` with the protocol
version, the ``Mcp-Session-Id`` the server gives, then
``notifications/initialized``) and ends it after the launch (``DELETE``). In
the stateless era (``era=stateless``, 2026-07-28) there is no session: every
request carries the protocol version and client capabilities in its ``_meta``
and the ``Mcp-Method`` / ``Mcp-Name`` headers, and a call is cancelled by
closing its stream (over stdio, which has no stream per request, by
``notifications/cancelled`` in both eras). The
launch first opens a session of its own to list the server's tools: an
unknown tool name, or arguments its input schema refuses, fail the launch
there, naming what to fix. Each
operation is one ``tools/call`` of ``tool`` with the ``arguments`` template
rendered for it (``{user}``, ``{agent}``, ``{marker}``: the call's own
``<agent marker>-<iteration>``, ``{iteration}``, ``{nonce}``: fresh for every
call, ``{text}``). JSON-RPC ids count from 1 in each session, as MCP clients
do, so ids collide across sessions.

The answer is read as JSON or as the SSE stream scoped to the request: every
notification on it (progress, logs) is kept with its arrival time, then the
response (:class:`~stampede.records.mcp.McpCall`). With ``cancel_after`` a call
still running that long is cancelled (``notifications/cancelled``, and its
stream closed). All agents
share one aiohttp connection pool (measured against the ``mcp`` SDK's client in
``bench/mcp_clients.py``: the plain client costs a fraction of the CPU per call
and per session set-up).

Per operation the history holds ``timings`` ``call`` (request → answer) and
``first_notification``; ``read`` the request id, session, HTTP status, number
of notifications and the failure; ``written`` the marker and nonce.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shlex
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jsonschema
import psutil

from .. import __version__
from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError, ServiceUnavailable
from ..outcomes import Outcome
from ..records.mcp import McpCall, McpFailure, McpNotification, McpServerMemory, McpSessionRecord
from ..records.websocket import timeout_text
from .http_pool import check_listening, shared_session
from .mcp_stdio import StdioEnded, StdioServer
from .sse import SseParser
from .websocket_fields import shorten
from .websocket_templates import check_placeholders, compiled, render_text
from .websocket_values import PlaceholderValues, TokenSource

ERAS = {"session": "2025-11-25", "stateless": "2026-07-28"}
"""Each era and the protocol revision the tool speaks in it (in ``initialize``, or in every request's ``_meta``)."""
AUTO = "auto"
"""The era asked for when the server is to say: stateless if it answers ``server/discover``, else session."""
_META = "io.modelcontextprotocol/"
ARGUMENT_PLACEHOLDERS = frozenset({"user", "agent", "marker", "iteration", "nonce", "text"})
CANCEL_GRACE = 1.0  # seconds sending notifications/cancelled may take, and again the listening for a late answer
REQUEST_CANCELLED = -32800
"""The JSON-RPC error a 2025-era server may end a cancelled request's stream with (the SDK does): not a late answer."""
CLOSE_TIMEOUT = 5.0  # seconds a stdio server process gets to end once its stdin is closed
STDIO = "stdio:"
StdioEnv = Callable[[str], Mapping[str, str]] | Mapping[str, str]
"""What a stdio server process gets in its environment: a function of the user, or a mapping with ``{user}`` and
``{token}`` placeholders in its values."""
ACCEPT = "application/json, text/event-stream"
_OUTCOMES = {
    McpFailure.TIMEOUT: Outcome.TIMEOUT,
    McpFailure.CANCELLED: Outcome.CONFLICT,
}


class _Failed(Exception):
    """A request that got no usable JSON-RPC answer."""

    def __init__(self, failure: McpFailure, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail
        self.status = status


@dataclass
class _Session:
    """An agent's MCP session (stateless: its requests): id, protocol version, bearer token, next request id."""

    id: str | None
    version: str
    token: str | None
    stateless: bool = False
    pipe: StdioServer | None = None
    """Over stdio: the session's own server process."""
    next_id: int = 1

    def headers(self, body: Mapping[str, Any] | None = None) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "MCP-Protocol-Version": self.version}
        if self.id is not None:
            headers["Mcp-Session-Id"] = self.id
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.stateless and body is not None:
            headers["Mcp-Method"] = str(body["method"])
            if body["method"] == "tools/call":
                headers["Mcp-Name"] = str(body["params"]["name"])
        return headers

    def framed(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` as this era sends it: a stateless request carries the version and capabilities in ``_meta``."""
        if not self.stateless or "id" not in body:
            return body
        params = dict(body.get("params") or {})
        params["_meta"] = {
            **(params.get("_meta") or {}),
            f"{_META}protocolVersion": self.version,
            f"{_META}clientCapabilities": {},
        }
        return {**body, "params": params}


@dataclass
class _Answer:
    """What one POST got: its status and the JSON-RPC response to the request (None for a notification's 202)."""

    status: int | None
    """The HTTP status (None over stdio)."""
    message: dict[str, Any] | None
    session_id: str | None


class McpTool(BaseTool):
    """Agents calling ``tool`` on the MCP server at ``server`` (see the module documentation).

    ``tokens`` gives each user's bearer token (a function of the user id, a
    mapping, or one token; None sends none). ``connect_timeout`` bounds
    opening a connection, ``call_timeout`` each request from its sending to its
    answer; ``cancel_after`` (seconds) cancels each call still running then.
    ``server`` may be ``stdio: <command>``: each session then runs the command
    as its own process (with ``stdio_env`` added to its environment) and
    speaks JSON-RPC on its stdin/stdout. With ``server_pid`` (the HTTP
    server's process) the tool reads the server's resident memory before the
    launch, once every agent's session is open, and after they were all ended
    (:attr:`memory`).
    """

    timed_phases = ("call", "first_notification")

    def __init__(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any] | str,
        *,
        tokens: TokenSource | None = None,
        name: str = "mcp",
        era: str = "session",
        connect_timeout: float = 10.0,
        call_timeout: float = 30.0,
        cancel_after: float | None = None,
        connections: int | None = None,
        stdio_env: StdioEnv | None = None,
        server_pid: int | None = None,
    ) -> None:
        self.url, self.stdio_argv = _endpoint(server)
        if server_pid is not None and (
            isinstance(server_pid, bool) or not isinstance(server_pid, int) or server_pid < 1
        ):
            raise ConfigurationError(f"server_pid must be the MCP server's process id, got {server_pid!r}")
        if server_pid is not None and self.stdio_argv is not None:
            raise ConfigurationError(
                "server_pid measures one HTTP server's process; a stdio server runs one process per session: leave "
                "server_pid out"
            )
        self.server_pid = server_pid
        self.stdio_env = stdio_env
        if not isinstance(tool, str) or not tool.strip():
            raise ConfigurationError(f"tool must name one of the server's tools, got {tool!r}")
        self.arguments = _arguments(arguments)
        check_placeholders(self.arguments, ARGUMENT_PLACEHOLDERS, where="The MCP tool's arguments")
        for what, seconds in (("connect_timeout", connect_timeout), ("call_timeout", call_timeout)):
            if not seconds > 0:
                raise ConfigurationError(f"{what} must be longer than 0 s, got {seconds!r} s")
        if cancel_after is not None and not 0 < cancel_after < call_timeout:
            raise ConfigurationError(
                f"cancel_after must be longer than 0 s and shorter than call_timeout ({call_timeout:g} s), "
                f"got {cancel_after!r} s"
            )
        if connections is not None and (isinstance(connections, bool) or connections < 1):
            raise ConfigurationError(f"connections must be a whole number of at least 1, got {connections!r}")
        if era not in (*ERAS, AUTO):
            raise ConfigurationError(
                f"era must be session (initialize, Mcp-Session-Id, DELETE), stateless, or auto (stateless when the "
                f"server answers server/discover), got {era!r}"
            )
        if self.stdio_argv is not None and era == AUTO:
            era = "session"
        self.requested_era = era
        self.era = era if era != AUTO else "session"
        """The era in use: the one asked for, or for auto the one found at the latest launch's set-up."""
        self.tool = tool.strip()
        self.name = name
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.cancel_after = cancel_after
        self.connections = connections
        self._render: Callable[[Mapping[str, Any]], Any] = compiled(self.arguments)
        self._values = PlaceholderValues(tokens, 0)
        self.calls: list[McpCall] = []
        self.sessions: list[McpSessionRecord] = []
        self.marker_owners: dict[str, str] = {}
        self.server_tools: list[str] = []
        """The tools the server listed in the latest launch."""
        self.memory: McpServerMemory | None = None
        """The server's memory around the latest launch's sessions (with ``server_pid``)."""
        self._agents = 0
        self._http: aiohttp.ClientSession | None = None
        self._pipes: set[StdioServer] = set()

    @property
    def operation_bound(self) -> float:
        """Seconds one operation can take at most: the launch's operation timeout should be longer."""
        return self.connect_timeout + self.call_timeout + CANCEL_GRACE

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "server": self.url,
            "calls": self.tool,
            "arguments": shorten(self.arguments),
            "era": f"{self.era} ({self.protocol_version})" if self.requested_era != AUTO else "auto",
            "call timeout": timeout_text(self.call_timeout),
            "cancels each call": f"after {timeout_text(self.cancel_after)}" if self.cancel_after else "never",
            "token": "bearer, per user" if self._values.tokens is not None else "(none)",
        }

    # Launch hooks

    async def setup(self, agents: int) -> None:
        self.calls, self.sessions, self.marker_owners, self.server_tools = [], [], {}, []
        self._agents = agents
        self.memory = McpServerMemory(self.server_pid, _rss(self.server_pid)) if self.server_pid else None
        if self.stdio_argv is None:
            await check_listening(
                self.url, self.connect_timeout, f"the MCP server {self.url}", "start it, or fix server"
            )
        self._http = shared_session(self.connections, self.connect_timeout)
        probe = AgentContext(1, self._probe_user(), "m-probe-1")
        try:
            if self.requested_era == AUTO:
                self.era = await self._discovered_era(self._http, probe.user)
            started = time.monotonic_ns()
            session = await self._initialize(self._http, probe.user)
            try:
                await self._check_tool(self._http, session, probe)
            finally:
                status = await self._delete(self._http, session)
                if session.id is not None:
                    self.sessions.append(
                        McpSessionRecord(0, probe.user, session.id, time.monotonic_ns() - started, status)
                    )
        except BaseException:
            await self.teardown()
            raise

    async def open_agent(self, agent: AgentContext) -> None:
        assert self._http is not None, "setup() opens the connection pool"
        started = time.monotonic_ns()
        agent.state["mcp"] = await self._initialize(self._http, agent.user)
        agent.state["mcp_setup_ns"] = time.monotonic_ns() - started
        memory = self.memory
        if memory is not None and not agent.state["mcp"].stateless:
            memory.open_sessions += 1
            if memory.open_sessions == self._agents:
                memory.held = _rss(memory.pid)

    async def run(self, agent: AgentContext) -> OpResult:
        assert self._http is not None, "setup() opens the connection pool"
        session: _Session = agent.state["mcp"]
        marker = f"{agent.marker}-{agent.iteration}"
        self.marker_owners[marker] = agent.user
        nonce = secrets.token_hex(8)
        arguments = self._render(self._placeholders(agent, marker, nonce))
        request_id, session.next_id = session.next_id, session.next_id + 1
        call = McpCall(
            agent.agent, agent.user, session.id, request_id, nonce, marker, self.tool, arguments, time.monotonic_ns()
        )
        self.calls.append(call)
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": self.tool, "arguments": arguments, "_meta": {"progressToken": marker}},
        }
        try:
            await self._call(self._http, session, body, call)
        except _Failed as failed:
            call.failure, call.detail, call.http_status = failed.failure, failed.detail, failed.status
        call.end_ns = call.end_ns or time.monotonic_ns()
        return _result(call)

    async def close_agent(self, agent: AgentContext) -> None:
        session: _Session | None = agent.state.get("mcp")
        if session is None or self._http is None:
            return
        status = await self._delete(self._http, session)
        self.sessions.append(McpSessionRecord(agent.agent, agent.user, session.id, agent.state["mcp_setup_ns"], status))

    async def teardown(self) -> None:
        http, self._http = self._http, None
        pipes, self._pipes = list(self._pipes), set()
        await asyncio.gather(*(pipe.close(CLOSE_TIMEOUT) for pipe in pipes))
        if http is not None:
            await http.close()
        memory = self.memory
        if memory is not None and memory.after is None:
            memory.ended = sum(1 for s in self.sessions if s.delete_status is not None and s.delete_status < 300)
            with contextlib.suppress(ServiceUnavailable):
                memory.after = _rss(memory.pid)

    # The session

    async def _initialize(self, http: aiohttp.ClientSession, user: str) -> _Session:
        """A new session of ``user``; ConfigurationError when the server does not answer ``initialize`` as MCP."""
        token = self._values.token_for(user)
        session = _Session(None, self.protocol_version, token, stateless=self.era == "stateless")
        if self.stdio_argv is not None:
            try:
                session.pipe = await StdioServer.start(self.stdio_argv, self._stdio_env(user, token))
            except StdioEnded as ended:
                raise self._not_mcp(str(ended), None) from None
            self._pipes.add(session.pipe)
        if session.stateless:
            return session
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": self.protocol_version,
                "capabilities": {},
                "clientInfo": {"name": "stampede", "version": __version__},
            },
        }
        try:
            async with asyncio.timeout(self.call_timeout):
                answer = await self._post(http, session, body, 0, None)
        except TimeoutError:
            raise ServiceUnavailable(
                f"The MCP server at {self.url} did not answer initialize within {timeout_text(self.call_timeout)}"
            ) from None
        except _Failed as failed:
            raise self._not_mcp(failed.detail, failed.status) from None
        result = (answer.message or {}).get("result")
        if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), str):
            raise self._not_mcp(f"initialize was answered {shorten(answer.message)}", answer.status)
        session.id, session.version = answer.session_id, result["protocolVersion"]
        try:
            async with asyncio.timeout(self.call_timeout):
                await self._post(http, session, {"jsonrpc": "2.0", "method": "notifications/initialized"}, None, None)
        except (TimeoutError, _Failed) as error:
            raise ServiceUnavailable(
                f"The MCP server at {self.url} refused notifications/initialized: {error}"
            ) from None
        return session

    @property
    def protocol_version(self) -> str:
        return ERAS[self.era]

    async def _discovered_era(self, http: aiohttp.ClientSession, user: str) -> str:
        """``stateless`` when the server answers a stateless ``server/discover`` with a result, else ``session``."""
        session = _Session(None, ERAS["stateless"], self._values.token_for(user), stateless=True)
        body = {"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {}}
        try:
            async with asyncio.timeout(self.call_timeout):
                answer = await self._post(http, session, body, 0, None)
        except (TimeoutError, _Failed):
            return "session"
        return "stateless" if isinstance((answer.message or {}).get("result"), dict) else "session"

    def _not_mcp(self, said: str, status: int | None) -> ConfigurationError:
        if self.stdio_argv is not None:
            return ConfigurationError(
                f"The MCP server command {self.url.removeprefix('stdio:').strip()!r} did not answer initialize on "
                f"stdout: {said}"
            )
        if status in (401, 403):
            return ConfigurationError(
                f"The MCP server at {self.url} refused the user's token (HTTP {status}): {said}. Check the tokens "
                "given, or the secret they are signed with."
            )
        return ConfigurationError(
            f"{self.url} is not an MCP Streamable HTTP endpoint: {said}. Give the server's MCP endpoint (often "
            "ending in /mcp) as server."
        )

    async def _check_tool(self, http: aiohttp.ClientSession, session: _Session, agent: AgentContext) -> None:
        """ConfigurationError when the server has no such tool (listing its tools) or its schema refuses the args."""
        body = {"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": {}}
        try:
            async with asyncio.timeout(self.call_timeout):
                answer = await self._post(http, session, body, 0, None)
        except (TimeoutError, _Failed) as error:
            raise ServiceUnavailable(f"The MCP server at {self.url} did not list its tools: {error}") from None
        listed = ((answer.message or {}).get("result") or {}).get("tools")
        if not isinstance(listed, list):
            raise ServiceUnavailable(f"The MCP server at {self.url} answered tools/list {shorten(answer.message)}")
        tools = {str(item.get("name")): item for item in listed if isinstance(item, dict)}
        self.server_tools = sorted(tools)
        if self.tool not in tools:
            raise ConfigurationError(
                f"The MCP server at {self.url} has no tool {self.tool!r}: its tools are "
                f"{', '.join(self.server_tools) or '(none)'}"
            )
        schema = tools[self.tool].get("inputSchema")
        if isinstance(schema, dict):
            sample = self._render(self._placeholders(agent, f"{agent.marker}-0", "0" * 16))
            complaint = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(sample))
            if complaint is not None:
                where = "/".join(map(str, complaint.absolute_path)) or "(the arguments)"
                raise ConfigurationError(
                    f"The arguments for the MCP tool {self.tool!r} fail its input schema at {where}: "
                    f"{complaint.message}. Its schema: {shorten(schema)}"
                )

    async def _delete(self, http: aiohttp.ClientSession, session: _Session) -> int | None:
        """End the session: DELETE it (its status), or end its stdio process (None)."""
        if session.pipe is not None:
            # Waiting here for the process to end would race the launcher's bound on closing an agent, which a
            # loaded machine overruns: it ends now, and teardown waits for every one of them at once.
            session.pipe.end_input()
            return None
        if session.id is None:
            return None
        try:
            async with asyncio.timeout(self.call_timeout), http.delete(self.url, headers=session.headers()) as answer:
                await answer.read()
                return answer.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    # Calls

    async def _call(self, http: aiohttp.ClientSession, session: _Session, body: dict[str, Any], call: McpCall) -> None:
        def note(message: dict[str, Any]) -> None:
            call.notifications.append(
                McpNotification(str(message["method"]), message.get("params"), time.monotonic_ns())
            )

        exchange = asyncio.ensure_future(self._post(http, session, body, call.request_id, note))
        try:
            async with asyncio.timeout(self.call_timeout):
                if self.cancel_after is not None:
                    done, _ = await asyncio.wait({exchange}, timeout=self.cancel_after)
                    if not done:
                        await self._cancel(http, session, call, exchange)
                answer = await exchange
        except TimeoutError:
            raise _Failed(McpFailure.TIMEOUT, f"no answer within {timeout_text(self.call_timeout)}") from None
        finally:
            exchange.cancel()
        call.end_ns, call.http_status = time.monotonic_ns(), answer.status
        message = answer.message or {}
        if "error" in message:
            call.error = message["error"]
            raise _Failed(McpFailure.RPC_ERROR, shorten(message["error"]), answer.status)
        result = message.get("result")
        if not isinstance(result, dict):
            raise _Failed(McpFailure.BAD_ANSWER, f"a response without a result: {shorten(message)}", answer.status)
        call.result = result
        call.content = list(result.get("content") or [])
        call.structured = result.get("structuredContent")
        if result.get("isError"):
            raise _Failed(McpFailure.TOOL_ERROR, call.returned_text()[:300], answer.status)

    async def _cancel(
        self, http: aiohttp.ClientSession, session: _Session, call: McpCall, exchange: asyncio.Future[_Answer]
    ) -> None:
        """Cancel the call: in the session era, and over stdio (no stream to close), send ``notifications/cancelled``
        (bounded by :data:`CANCEL_GRACE`), then listen on the call's stream for :data:`CANCEL_GRACE` more for a
        late answer; then the stream is closed (over HTTP in the stateless era, all the client does)."""
        call.cancelled_ns = time.monotonic_ns()
        if not session.stateless or session.pipe is not None:
            body = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": call.request_id, "reason": "cancel_after"},
            }
            with contextlib.suppress(_Failed, TimeoutError):
                async with asyncio.timeout(CANCEL_GRACE):
                    await self._post(http, session, body, None, None)
            call.late_watch = True
            await asyncio.wait({exchange}, timeout=CANCEL_GRACE)
            if exchange.done() and not exchange.cancelled() and exchange.exception() is None:
                message = exchange.result().message or {}
                if (message.get("error") or {}).get("code") != REQUEST_CANCELLED:
                    call.late_answer, call.late_ns = message, time.monotonic_ns()
        raise _Failed(McpFailure.CANCELLED, f"cancelled after {timeout_text(self.cancel_after or 0)}")

    async def _post(
        self,
        http: aiohttp.ClientSession,
        session: _Session,
        body: dict[str, Any],
        request_id: int | None,
        on_notification: Callable[[dict[str, Any]], None] | None,
    ) -> _Answer:
        """POST one JSON-RPC message; the response to ``request_id`` (None: a notification, answered 202)."""
        if session.pipe is not None:
            try:
                message = await session.pipe.exchange(session.framed(body), on_notification)
            except StdioEnded as ended:
                raise _Failed(McpFailure.CONNECT_FAILED, str(ended)) from None
            if message is None:
                return _Answer(None, None, None)
            status = None
        else:
            status, message, session_id = await self._http_post(http, session, body, request_id, on_notification)
            if message is None:
                return _Answer(status, None, session_id)
        if message.get("id") != request_id:
            raise _Failed(
                McpFailure.BAD_ANSWER, f"the answer to request {request_id} has id {message.get('id')!r}", status
            )
        return _Answer(status, message, session.id if session.pipe is not None else session_id)

    async def _http_post(
        self,
        http: aiohttp.ClientSession,
        session: _Session,
        body: dict[str, Any],
        request_id: int | None,
        on_notification: Callable[[dict[str, Any]], None] | None,
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """The status, the JSON-RPC answer to ``request_id`` (None for a notification) and the session id."""
        try:
            async with http.post(self.url, json=session.framed(body), headers=session.headers(body)) as response:
                status, session_id = response.status, response.headers.get("Mcp-Session-Id", session.id)
                if status >= 400:
                    raise _Failed(McpFailure.HTTP_ERROR, f"HTTP {status}: {_said(await response.text())}", status)
                if request_id is None:
                    await response.read()
                    return status, None, session_id
                if response.content_type == "application/json":
                    message = _rpc_message(await response.text(), status)
                elif response.content_type == "text/event-stream":
                    message = await _from_stream(response, request_id, on_notification)
                else:
                    raise _Failed(
                        McpFailure.BAD_ANSWER,
                        f"HTTP {status} with content type {response.content_type or '(none)'}, neither JSON nor an "
                        f"SSE stream: {_said(await response.text())}",
                        status,
                    )
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise _Failed(McpFailure.CONNECT_FAILED, f"no HTTP answer ({type(error).__name__}: {error})") from None
        return status, message, session_id

    def _stdio_env(self, user: str, token: str | None) -> dict[str, str]:
        """What a user's stdio server process gets in its environment (``{user}``, ``{token}`` filled in)."""
        given = self.stdio_env(user) if callable(self.stdio_env) else self.stdio_env or {}
        values = {"user": user, "token": token or ""}
        return {str(name): render_text(str(value), values) for name, value in given.items()}

    def _probe_user(self) -> str:
        """Whose session lists the tools before the launch: the first user of the tokens given, else ``user-1``."""
        tokens = self._values.tokens
        if isinstance(tokens, Mapping) and tokens:
            return str(next(iter(tokens)))
        return "user-1"

    def _placeholders(self, agent: AgentContext, marker: str, nonce: str) -> dict[str, Any]:
        return {
            "user": agent.user,
            "agent": agent.agent,
            "marker": marker,
            "iteration": agent.iteration,
            "nonce": nonce,
            "text": f"note {agent.iteration} of {agent.user} ({marker})",
        }


async def _from_stream(
    response: aiohttp.ClientResponse, request_id: int, on_notification: Callable[[dict[str, Any]], None] | None
) -> dict[str, Any]:
    """The response to ``request_id`` on the request's SSE stream, its notifications handed to ``on_notification``."""
    parser = SseParser()
    async for line in _lines(response):
        event = parser.line(line)
        if event is None:
            continue
        message = _rpc_message(event.data, response.status)
        if "id" in message and ("result" in message or "error" in message):
            return message
        if "method" in message and "id" not in message and on_notification is not None:
            on_notification(message)
    raise _Failed(
        McpFailure.BAD_ANSWER, f"the SSE stream of request {request_id} ended before its response", response.status
    )


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    while line := await response.content.readline():
        yield line.decode("utf-8", errors="replace")


def _rpc_message(text: str, status: int) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError:
        raise _Failed(
            McpFailure.BAD_ANSWER, f"HTTP {status} with a body that is not JSON: {_said(text)}", status
        ) from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise _Failed(
            McpFailure.BAD_ANSWER, f"HTTP {status} with a body that is not JSON-RPC 2.0: {_said(text)}", status
        )
    return message


def _result(call: McpCall) -> OpResult:
    timings = {}
    if call.end_ns is not None:
        timings["call"] = call.end_ns - call.start_ns
    if call.notifications:
        timings["first_notification"] = call.notifications[0].at_ns - call.start_ns
    read = {
        "request_id": call.request_id,
        "session": call.session,
        "status": call.http_status,
        "notifications": len(call.notifications),
    }
    if call.detail is not None:
        read["detail"] = call.detail
    written = {"marker": call.marker, "nonce": call.nonce}
    if call.failure is None:
        return OpResult(Outcome.OK, read=read, written=written, timings=timings)
    outcome = _OUTCOMES.get(call.failure, Outcome.ERROR)
    return OpResult(outcome, error=call.failure.value, read=read, written=written, timings=timings)


def _endpoint(server: str) -> tuple[str, list[str] | None]:
    """The server as shown, and for ``stdio: <command>`` the command's argv."""
    text = server.strip() if isinstance(server, str) else ""
    if text.startswith(STDIO):
        try:
            argv = shlex.split(text.removeprefix(STDIO))
        except ValueError as error:
            raise ConfigurationError(f"The stdio command in {server!r} cannot be read: {error}") from None
        if not argv:
            raise ConfigurationError(f"server {server!r} names no command: write stdio: <command and arguments>")
        return text, argv
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"server must be an MCP server's http:// or https:// endpoint (such as http://127.0.0.1:8000/mcp) or "
            f"stdio: <command>, got {server!r}"
        )
    return text, None


def _arguments(value: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ConfigurationError(f"arguments must be a JSON object, got {value!r}: {error}") from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"arguments must be a JSON object of the tool's arguments, got {value!r}")
    return dict(value)


def _rss(pid: int) -> int:
    """The resident memory of process ``pid`` in bytes; ServiceUnavailable when it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.NoSuchProcess:
        raise ServiceUnavailable(
            f"The MCP server process {pid} is not running: give the pid of the running server as server_pid"
        ) from None
    except psutil.AccessDenied:
        raise ConfigurationError(
            f"Cannot read the memory of the MCP server process {pid}: access denied. Run the harness as the user "
            "that owns it, or leave server_pid out."
        ) from None


def _said(text: str) -> str:
    try:
        return shorten(json.loads(text))
    except ValueError:
        return text[:300]
