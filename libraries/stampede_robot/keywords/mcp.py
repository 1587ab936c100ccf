"""MCP tool servers: the reference server (TestServices), the tool (ConcurrentAgents), its checks (LockConflicts)."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta
from typing import Any

from robot.api.deco import keyword
from robot.api.types import Secret

from stampede.checkers.mcp_calls import (
    check_no_late_answers,
    check_own_answers,
    check_progress,
    check_sessions_reaped,
    check_users_isolated,
)
from stampede.checkers.mcp_memory import check_memory_held_per_session, check_memory_kept_per_session
from stampede.checkers.serialization import check_work_overlapped
from stampede.errors import ConfigurationError, ServiceUnavailable, StampedeError
from stampede.services.embedded_mcp_server import EmbeddedMcpServer, McpServerTarget
from stampede.units import format_duration, positive_seconds
from stampede.workloads.mcp_tool import McpTool
from stampede.workloads.websocket_values import TokenSource

from ..component import LibraryComponent
from ..html import table
from ..runtime import LaunchRecord
from .resources import _size

DEFINED_BY = "Define MCP Tool"
READ_TIMEOUT = 10.0  # seconds for the reference server's session count


class McpServerKeywords(LibraryComponent):
    """Starts the bundled reference MCP server (TestServices)."""

    @keyword(tags=["services", "mcp"])
    def start_mcp_server(
        self,
        bugs: str = "none",
        initial_credits: int = 1_000_000,
        session_idle_timeout: timedelta = timedelta(minutes=5),
        start_timeout: timedelta = timedelta(seconds=30),
    ) -> str:
        """Starts the bundled reference MCP server and returns its Streamable HTTP endpoint (``http://…/mcp``).

        The server runs on the official ``mcp`` SDK and serves both eras on one
        endpoint: the session era (``initialize``, ``Mcp-Session-Id``,
        ``DELETE``) and the stateless one (2026-07-28). Its tools are
        ``deduct(amount, nonce)``, ``balance(nonce)``, ``append_note(note,
        nonce)`` (returns all the caller's notes), ``read_notes(nonce)`` and
        ``sleep(seconds, nonce, charge=0)`` (four progress notifications, then
        ``charge`` credits taken); each echoes its ``nonce``. Each user starts
        with ``initial_credits``; the tables (``mcp_credits``, ``mcp_notes``)
        live in the run's schema (it calls `Use PostgreSQL` first), so
        `Invariant Should Hold` can read them. Users present bearer JWTs
        signed with this start's secret; `Define MCP Tool` signs them.

        ``bugs`` seeds defects, comma-separated (or ``none``): ``lost_update``
        (deduct without a lock), ``crossed_replies`` (results kept in a map
        keyed by request id alone), ``blocking_sleep`` (sleep blocks the event
        loop), ``ignore_cancel`` (a cancelled sleep still charges),
        ``never_reap`` (session state kept after DELETE),
        ``session_keyed_notes`` (notes keyed by the ``Mcp-Session-Id`` header,
        which the stateless era does not send). It stops when the suite that
        started it ends, before the schema is dropped; started again it
        replaces the running one.

        | ${url}= | Start MCP Server |
        | Start MCP Server | bugs=lost_update, crossed_replies | initial_credits=500 |
        """
        services = self.runtime.services
        if services is None or services.postgres is None:
            raise StampedeError("No PostgreSQL in use: call Use PostgreSQL first (usually in the suite setup).")
        server = EmbeddedMcpServer.for_target(  # checks the options before the running server is stopped
            services.postgres,
            bugs=bugs,
            initial_credits=initial_credits,
            session_idle_timeout=positive_seconds(session_idle_timeout, what="session_idle_timeout"),
        )
        if services.mcp_server is not None:
            self.log(services.mcp_server.close())
            services.mcp_server = None
        target = McpServerTarget(server, positive_seconds(start_timeout, what="start_timeout"))
        services.mcp_server = target  # recorded first: stopped with the services even if the start is cut
        try:
            url = target.start()
        except BaseException:
            services.mcp_server = None
            target.close()
            raise
        self.log(
            f"Reference MCP server at {url} (pid {server.pid}, bugs {bugs}), started in "
            f"{format_duration(server.started_in or 0)}."
        )
        return url


class McpToolKeywords(LibraryComponent):
    """Defines the MCP tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "mcp"])
    def define_mcp_tool(
        self,
        name: str,
        *,
        tool: str,
        arguments: dict[str, Any] | str,
        server: str | None = None,
        era: str = "session",
        tokens: dict[str, Secret | str] | None = None,
        stdio_env: dict[str, Secret | str] | None = None,
        cancel_after: timedelta | None = None,
        call_timeout: timedelta = timedelta(seconds=30),
        connect_timeout: timedelta = timedelta(seconds=10),
        connections: int | None = None,
        server_pid: int | None = None,
    ) -> None:
        """Defines a tool whose agents call ``tool`` on an MCP server, one MCP session per agent.

        ``server`` is the server's Streamable HTTP endpoint (``http://`` or
        ``https://``; default: the one `Start MCP Server` started), or
        ``stdio: <command>``: each session then runs the command as its own
        process, as MCP clients run local servers, and speaks JSON-RPC on its
        stdin/stdout (``stdio_env`` adds to its environment; ``{user}`` and
        ``{token}`` in a value are filled in per session); ``server=stdio``
        runs the started reference server's stdio mode. In the
        session ``era`` (the default) each agent opens its session before the
        start barrier (``initialize``, then every request with its
        ``Mcp-Session-Id``) and ends it with ``DELETE`` after the launch; in
        the ``stateless`` era every request carries the protocol version and
        capabilities itself; ``auto`` takes the stateless era when the server
        answers a stateless ``server/discover``, else the session era (over
        stdio: the session era). A stdio server serves either era; in the
        stateless one a call is cancelled with ``notifications/cancelled``, as
        there is no stream to close. JSON-RPC ids count from 1 in each session,
        as MCP clients do, so they collide across sessions.

        ``arguments`` is a JSON object (a dictionary or JSON text) whose
        strings may hold placeholders: ``{user}``, ``{agent}``, ``{marker}``
        (the call's own marker), ``{iteration}``, ``{nonce}`` (fresh for every
        call: a tool that echoes it lets `MCP Answers Should Match Their
        Requests` tell answers apart) and ``{text}``; a string that is one
        placeholder takes its value's type. Before the launch the tool lists
        the server's tools: an unknown ``tool`` fails there, listing them, and
        so do arguments its input schema refuses, with the schema's complaint.
        An endpoint that does not answer ``initialize`` as MCP fails naming it.

        Each operation is one ``tools/call``; it records the JSON-RPC id, the
        HTTP status, every notification on the request's stream (progress,
        logs) with its arrival time, the result or the error, and the content
        the tool returned (structured content too). Timings: ``call``
        (request → answer, the metric ``call_p95``) and ``first_notification``.
        A failure is ``connect_failed``, ``http_error``, ``bad_answer`` (not
        JSON-RPC, a stream cut before the answer), ``rpc_error``,
        ``tool_error`` (the result has ``isError``), ``timeout``, or
        ``cancelled``: with ``cancel_after`` every call still running then is
        cancelled (``notifications/cancelled`` and its stream closed).

        Users present ``tokens`` (a dictionary user → bearer token, each
        best a Robot ``Secret``) or, without them, JWTs signed with the secret
        of the server `Start MCP Server` started. All agents share one
        connection pool (``connections`` caps it).

        The tool reads the server process's resident memory before each
        launch, once every agent's session is open and after they all ended,
        for `MCP Server Memory Per Session Should Stay Within`: of the server
        `Start MCP Server` started by itself, of another HTTP server given its
        ``server_pid``.

        | Define MCP Tool | deduct | tool=deduct | arguments={"amount": 1, "nonce": "{nonce}"} |
        | Define MCP Tool | notes | tool=append_note | arguments={"note": "{marker}", "nonce": "{nonce}"} |
        | Define MCP Tool | stateless | tool=deduct | arguments=${DEDUCT} | era=stateless |
        | Define MCP Tool | slow | tool=sleep | arguments={"seconds": 2, "nonce": "{nonce}"} | cancel_after=500 ms |
        | Define MCP Tool | theirs | server=https://tools.example/mcp | tool=search | arguments=${ARGS} |
        | Define MCP Tool | local | server=stdio | tool=deduct | arguments={"amount": 1, "nonce": "{nonce}"} |
        """
        started = self._started_server()
        own_stdio = server is not None and server.strip().lower() == "stdio"
        if own_stdio and started is None:
            raise StampedeError("server=stdio runs the reference MCP server's stdio mode: call Start MCP Server first.")
        endpoint = server or (started.url if started is not None else None)
        if endpoint is None:
            raise StampedeError(
                "No MCP server: give server (its Streamable HTTP endpoint or stdio: <command>), or call Start MCP "
                "Server first."
            )
        if own_stdio and started is not None:
            endpoint = started.stdio_command()
        if server_pid is None and not server and started is not None:
            server_pid = started.pid
        defined = McpTool(
            endpoint,
            tool,
            arguments,
            tokens=self._tokens(tokens, started if not server or own_stdio else None),
            stdio_env=started.stdio_env if own_stdio and started is not None else _plain(stdio_env),
            name=name,
            era=era.strip().lower(),
            connect_timeout=positive_seconds(connect_timeout, what="connect_timeout"),
            call_timeout=positive_seconds(call_timeout, what="call_timeout"),
            cancel_after=positive_seconds(cancel_after, what="cancel_after") if cancel_after is not None else None,
            connections=connections,
            server_pid=server_pid,
        )
        self.runtime.tools[name] = defined
        rows = [
            *defined.describe().items(),
            ("launch with operation_timeout ≥", format_duration(defined.operation_bound)),
        ]
        self.log_html(table(["", ""], rows, f"MCP tool {name}"))

    def _started_server(self) -> EmbeddedMcpServer | None:
        services = self.runtime.services
        return services.mcp_server.server if services is not None and services.mcp_server is not None else None

    @staticmethod
    def _tokens(given: dict[str, Secret | str] | None, started: EmbeddedMcpServer | None) -> TokenSource | None:
        if given is not None:
            tokens = {user: token.value if isinstance(token, Secret) else token for user, token in given.items()}
            if not all(isinstance(token, str) and token for token in tokens.values()):
                raise ConfigurationError("tokens must be a dictionary of user id → bearer token (e.g. &{KEYS})")
            return tokens
        return started.token_for if started is not None else None


def _plain(values: dict[str, Secret | str] | None) -> dict[str, str] | None:
    """A dictionary whose values may be Robot ``Secret``s, with their values."""
    if values is None:
        return None
    return {name: value.value if isinstance(value, Secret) else str(value) for name, value in values.items()}


def mcp_records(record: LaunchRecord) -> McpTool:
    """The launch's tool as the MCP checks read it; ConfigurationError naming the keyword otherwise."""
    if isinstance(record.tool, McpTool):
        return record.tool
    raise ConfigurationError(
        f"Launch {record.number} ran {record.tool.name!r}, which is no MCP tool: the MCP checks judge a tool "
        f"defined with {DEFINED_BY}."
    )


class McpCheckKeywords(LibraryComponent):
    """Judges the calls of an MCP tool after a launch (LockConflicts)."""

    @keyword(tags=["checks", "mcp"])
    def mcp_answers_should_match_their_requests(
        self, nonce_field: str = "nonce", launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails when a call got an answer carrying another call's nonce, or none: answers crossed between requests.

        The tool's ``arguments`` must send ``{nonce}`` and the server's tool
        echo it, in its structured content's ``nonce_field`` or in its text.
        Calls without a result are not judged; a launch where none was
        answered is not a pass. Works on this test's latest launch unless
        ``launch`` is given.

        | MCP Answers Should Match Their Requests |
        | MCP Answers Should Match Their Requests | nonce_field=request_tag |
        """
        tool = mcp_records(self.launch_record(launch))
        self.judge(check_own_answers(tool.calls, nonce_field=nonce_field))

    @keyword(tags=["checks", "mcp"])
    def mcp_tool_state_should_stay_with_its_user(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when what the tool returned to one user carries a marker another user's call sent.

        Send ``{marker}`` in the arguments to a tool that keeps it (notes, a
        memory) and returns what it keeps: a marker of user A in an answer to
        user B is state shared between users. Works on this test's latest
        launch unless ``launch`` is given.

        | Define MCP Tool | notes | tool=append_note | arguments={"note": "{marker}", "nonce": "{nonce}"} |
        | Launch Agents | notes | 20 | users=5 | iterations=3 |
        | MCP Tool State Should Stay With Its User |
        """
        tool = mcp_records(self.launch_record(launch))
        self.judge(check_users_isolated(tool.calls, tool.marker_owners))

    @keyword(tags=["checks", "mcp"])
    def mcp_progress_should_be_monotonic_and_scoped(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a call's stream carried progress for another request, or progress that did not rise.

        The tool sends each call's marker as its ``progressToken``; every
        ``notifications/progress`` on the call's stream must carry it, and its
        ``progress`` must rise from one to the next. A launch with no progress
        notification is not a pass. Works on this test's latest launch unless
        ``launch`` is given.

        | Define MCP Tool | slow | tool=sleep | arguments={"seconds": 0.2, "nonce": "{nonce}"} |
        | Launch Agents | slow | 20 |
        | MCP Progress Should Be Monotonic And Scoped |
        """
        self.judge(check_progress(mcp_records(self.launch_record(launch)).calls))

    @keyword(tags=["checks", "mcp", "parallelism"])
    def slow_calls_should_overlap(
        self, solo: timedelta, at_least: float | None = None, launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails when calls that take ``solo`` each alone got through fewer than ``at_least`` at a time.

        A server that blocks its event loop answers concurrent calls one after
        another while the client waits for all of them, so every call is in
        flight and `Agents Should Run In Parallel` cannot tell. This judges
        throughput: the successful calls times ``solo`` over the wall time
        they span. ``at_least`` defaults to a quarter of the agents, and at
        least 1.5. Works on this test's latest launch unless ``launch`` is given.

        | Define MCP Tool | slow | tool=sleep | arguments={"seconds": 0.2, "nonce": "{nonce}"} |
        | Launch Agents | slow | 20 |
        | Slow Calls Should Overlap | solo=200 ms | at_least=10 |
        """
        record = self.launch_record(launch)
        seconds = positive_seconds(solo, what="solo")
        self.judge(check_work_overlapped(record.result.history, solo_seconds=seconds, at_least=at_least))

    @keyword(tags=["checks", "mcp"])
    def cancelled_mcp_calls_should_get_no_late_answer(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a call the tool cancelled got a response after its cancel: the server went on with it.

        Needs ``cancel_after`` in `Define MCP Tool`. In the session era (and
        over stdio) the tool sends ``notifications/cancelled`` and keeps the
        call's stream open a second more; a response then, other than the
        cancellation error a 2025-era server may end the stream with, is a late
        answer. In the stateless era over HTTP the cancel closes the stream,
        so nothing can arrive: such a launch is not a pass (judge the effect
        with `Invariant Should Hold` instead). Works on this test's latest
        launch unless ``launch`` is given.

        | Define MCP Tool | slow | tool=sleep | arguments={"seconds": 1, "nonce": "{nonce}"} | cancel_after=300 ms |
        | Launch Agents | slow | 10 |
        | Cancelled MCP Calls Should Get No Late Answer |
        """
        self.judge(check_no_late_answers(mcp_records(self.launch_record(launch)).calls))

    @keyword(tags=["checks", "mcp", "resources"])
    def mcp_server_memory_per_session_should_stay_within(
        self, kept: str = "64KiB", held: str | None = None, launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails when the MCP server's resident memory grew by more than ``kept`` per session once the launch's
        sessions were ended (``DELETE``), or by more than ``held`` per session while they were all open.

        Sizes are such as ``64KiB`` or ``1MB``; ``held`` is judged only when
        given. The figures come from the server process's RSS, read by the
        tool before the launch, with every agent's session open and after they
        ended: the server `Start MCP Server` started, or the one whose
        ``server_pid`` `Define MCP Tool` was given. A server keeps freed memory
        in its allocator's pools after its first launch: launch once to warm it
        up and judge the next launch. A launch whose memory was not read, or
        that ended no session (the stateless era), is not a pass. Works on this
        test's latest launch unless ``launch`` is given.

        | Launch Agents | deduct | 50 |
        | Launch Agents | deduct | 50 |
        | MCP Server Memory Per Session Should Stay Within | kept=64KiB |
        | MCP Server Memory Per Session Should Stay Within | kept=32KiB | held=512KiB |
        """
        memory = mcp_records(self.launch_record(launch)).memory
        verdicts = [check_memory_kept_per_session(memory, _size(kept, "kept"))]
        if held is not None:
            verdicts.append(check_memory_held_per_session(memory, _size(held, "held")))
        self.judge(*verdicts)

    @keyword(tags=["checks", "mcp"])
    def mcp_sessions_should_be_reaped(self, allowed: int = 0, launch: LaunchRecord | int | None = None) -> None:
        """Fails when the reference MCP server still keeps state for more than ``allowed`` sessions after the launch.

        Every session the launch opened was ended with ``DELETE``; the server
        `Start MCP Server` started says how many sessions it still keeps state
        for. Works on this test's latest launch unless ``launch`` is given.

        | Launch Agents | deduct | 50 |
        | MCP Sessions Should Be Reaped |
        """
        tool = mcp_records(self.launch_record(launch))
        services = self.runtime.services
        if services is None or services.mcp_server is None:
            raise StampedeError("No reference MCP server in use: this check reads the one Start MCP Server started.")
        deleted = sum(
            1 for session in tool.sessions if session.delete_status is not None and session.delete_status < 300
        )
        self.judge(
            check_sessions_reaped(deleted, _kept_sessions(services.mcp_server.server.sessions_url), allowed=allowed)
        )


def _kept_sessions(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT) as answer:
            return int(json.loads(answer.read())["tracked"])
    except (OSError, ValueError, KeyError) as error:
        raise ServiceUnavailable(
            f"The reference MCP server did not say how many sessions it keeps ({url}): {error}"
        ) from None
