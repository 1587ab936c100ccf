"""The reference agent service: WebSocket sessions, agent runs as asyncio tasks, graceful shutdown.

The protocol is described in :mod:`reference_agent_service.protocol`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import signal
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Self

import asyncpg
import redis.asyncio as aioredis
from redis import exceptions as rx
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .auth import TokenError, verify_token
from .bugs import Bug
from .coordination import RedisLocks, SessionRegistry
from .errors import ServiceUnavailable
from .logsafe import mask_dsn, scrub
from .protocol import (
    SESSION_ENDING_CLOSES,
    TOOL_NAME,
    ClientType,
    CloseCode,
    ErrorCode,
    EventType,
    Hello,
    Ping,
    ProtocolError,
    RunFailure,
    RunRequest,
    parse_client_message,
)
from .settings import ServiceSettings
from .store import AgentStore, ToolFailure, ToolResult

log = logging.getLogger("reference_agent_service")

REORDER_MAX_DELAY = 0.02  # seconds a frame may wait in the reorder bug's background send
LEAKED_BUFFER_BYTES = 256 * 1024  # what the memory_growth bug keeps per run besides the transcript
_CLOSE_TIMEOUT = 2.0
_REDIS_CONNECTIONS = 50  # a few commands per run: 50 connections serve hundreds of users without crowding Redis
_REDIS_CONNECTION_WAIT = 10.0  # seconds a command waits for a free connection before it fails
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one service process needs; ``repr`` shows no secret and no password."""

    pg_dsn: str = field(repr=False)
    pg_schema: str
    redis_url: str = field(repr=False)
    redis_prefix: str
    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    bugs: frozenset[Bug] = frozenset()
    settings: ServiceSettings = field(default_factory=ServiceSettings)


class Session:
    """One user's session: its sequence counter, the frames it sent, its connection (if any) and runs."""

    def __init__(self, user_id: str, replay_buffer: int) -> None:
        self.user_id = user_id
        self.session_id = uuid.uuid4().hex
        self.resume_token = secrets.token_urlsafe(24)
        self.next_seq = 1
        self.sent: deque[tuple[int, str]] = deque(maxlen=replay_buffer)
        self.connection: ServerConnection | None = None
        self.send_lock = asyncio.Lock()
        self.runs: set[asyncio.Task[None]] = set()
        self.runs_started = 0
        self.expiry: asyncio.Task[None] | None = None
        self.ended = False


@dataclass
class Run:
    session: Session
    request: RunRequest
    run_id: str

    def frame(self, kind: EventType, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "user_id": self.session.user_id,
            "run_id": self.run_id,
            "thread_id": self.request.thread_id,
            "marker": self.request.marker,
            "request_id": self.request.request_id,
            **fields,
        }


class AgentService:
    """Serves the protocol on one port; :meth:`shutdown` leaves no connection, task or key behind."""

    def __init__(self, config: ServiceConfig, store: AgentStore, client: aioredis.Redis) -> None:
        self.config = config
        self.settings = config.settings
        self.bugs = config.bugs
        self._store = store
        self._redis = client
        self._registry = SessionRegistry(
            client, config.redis_prefix, self.settings.session_ttl_ms, allow_second=Bug.SECOND_SESSION in self.bugs
        )
        self._locks = RedisLocks(client, config.redis_prefix, self.settings.lock_ttl_ms, self.settings.lock_wait_ms)
        self._sessions: set[Session] = set()
        self._by_resume_token: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._closing = False
        self._reporting_to: Session | None = None  # the leak bug's shared "current session"
        self._archive: list[tuple[str, list[dict[str, Any]], bytes]] = []  # the memory_growth bug's

    @classmethod
    async def open(cls, config: ServiceConfig) -> Self:
        """Connect to PostgreSQL (tables in ``pg_schema``) and Redis; raise ServiceUnavailable if either fails."""
        store = await AgentStore.open(
            config.pg_dsn,
            config.pg_schema,
            pool_size=config.settings.pg_pool_size,
            initial_credits=config.settings.initial_credits,
            lost_update=Bug.LOST_UPDATE in config.bugs,
        )
        client: aioredis.Redis | None = None
        try:
            # A blocking pool: past its size, commands wait (bounded) for a connection instead of failing with
            # "Too many connections" as redis-py's default pool does once ~100 users are in flight.
            pool = aioredis.BlockingConnectionPool.from_url(
                config.redis_url,
                max_connections=_REDIS_CONNECTIONS,
                timeout=_REDIS_CONNECTION_WAIT,
                socket_timeout=10,
                socket_connect_timeout=10,
                client_name="stampede-agent-service",
            )
            client = aioredis.Redis.from_pool(pool)
            await client.ping()
        except (rx.RedisError, OSError, ValueError) as error:
            if client is not None:
                await client.aclose()
            await store.close(config.settings.shutdown_timeout_ms / 1000)
            raise ServiceUnavailable(
                f"Cannot reach Redis at {mask_dsn(config.redis_url)}: {scrub(str(error), config.redis_url)}"
            ) from None
        return cls(config, store, client)

    async def start(self) -> int:
        """Listen; return the port."""
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                compression=None,
                max_size=self.settings.max_message_bytes,
                close_timeout=_CLOSE_TIMEOUT,
            )
        except OSError as error:
            raise ServiceUnavailable(
                f"Cannot listen on {self.config.host}:{self.config.port}: {error.strerror or error}"
            ) from None
        self._spawn(self._keep_sessions_registered())
        return int(self._server.sockets[0].getsockname()[1])

    async def shutdown(self) -> None:
        """Close connections (1001), cancel runs, release Redis keys, close the pools. Each step is bounded."""
        self._closing = True
        bound = self.settings.shutdown_timeout_ms / 1000
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), bound)
            except TimeoutError:
                log.warning("connections did not close within %g s; going on", bound)
        for session in list(self._sessions):
            await self._end_session(session)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=bound)
        await self._redis.aclose()
        await self._store.close(bound)

    # Connections and sessions

    async def _handle(self, connection: ServerConnection) -> None:
        if Bug.NEVER_ANSWER in self.bugs:
            await self._read_and_ignore(connection)
            return
        session = await self._open_session(connection)
        if session is None:
            return
        try:
            async for frame in connection:
                await self._on_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            await self._detach(session, connection)

    @staticmethod
    async def _read_and_ignore(connection: ServerConnection) -> None:
        try:
            async for _ in connection:
                pass
        except ConnectionClosed:
            pass

    async def _open_session(self, connection: ServerConnection) -> Session | None:
        """Read the hello; return the new or resumed session, or None after refusing it."""
        timeout = self.settings.hello_timeout_ms / 1000
        try:
            frame = await asyncio.wait_for(connection.recv(), timeout)
        except TimeoutError:
            await _refuse(
                connection, ErrorCode.HELLO_TIMEOUT, f"no hello within {timeout:g} s", CloseCode.PROTOCOL_ERROR
            )
            return None
        except ConnectionClosed:
            return None
        try:
            hello = parse_client_message(frame)
            if not isinstance(hello, Hello):
                raise ProtocolError(
                    ErrorCode.HELLO_REQUIRED, 'the first frame must be {"type": "hello", "token": "<JWT>"}'
                )
            identity = verify_token(self.config.secret, hello.token)
        except ProtocolError as error:
            await _refuse(connection, error.code, error.message, CloseCode.PROTOCOL_ERROR)
            return None
        except TokenError as error:
            await _refuse(connection, ErrorCode.AUTH_FAILED, f"token refused: {error.reason}", CloseCode.AUTH_FAILED)
            return None
        try:
            if hello.resume_token is not None:
                return await self._resume(connection, identity.user_id, hello.resume_token, hello.last_seq or 0)
            return await self._start_session(connection, identity.user_id)
        except (rx.RedisError, *_DATABASE_ERRORS) as error:
            log.warning("could not open a session for %s: %s", identity.user_id, self._scrub(error))
            await _refuse(
                connection,
                ErrorCode.SERVICE_UNAVAILABLE,
                "the service could not reach its database or Redis; try again",
                CloseCode.INTERNAL_ERROR,
            )
            return None

    async def _start_session(self, connection: ServerConnection, user_id: str) -> Session | None:
        session = Session(user_id, self.settings.replay_buffer)
        claimed = await self._registry.claim(user_id, session.session_id)
        if not claimed and await self._end_closed_sessions(user_id):
            claimed = await self._registry.claim(user_id, session.session_id)
        if not claimed:
            await _refuse(
                connection,
                ErrorCode.SESSION_ACTIVE,
                f"user {user_id} has an active session already: resume it with its resume_token, "
                "or start a new one once it has ended",
                CloseCode.SESSION_ACTIVE,
            )
            return None
        try:
            credits = await self._store.ensure_user(user_id)
        except BaseException:
            await self._registry.release(user_id, session.session_id)
            raise
        session.connection = connection
        self._sessions.add(session)
        self._by_resume_token[session.resume_token] = session
        await self._emit(
            session,
            {
                "type": EventType.SESSION_STARTED,
                "session_id": session.session_id,
                "user_id": user_id,
                "resume_token": session.resume_token,
                "credits": credits,
            },
        )
        return session

    async def _end_closed_sessions(self, user_id: str) -> bool:
        """End the user's sessions whose client closed them but whose handler has not caught up yet.

        A client may close (1000) and reconnect before our handler for the old
        connection has run; that is no second session. Return whether any ended.
        """
        closed = [
            session
            for session in self._sessions
            if session.user_id == user_id and session.connection is not None and _ends_session(session.connection)
        ]
        for session in closed:
            await self._end_session(session)
        return bool(closed)

    async def _resume(
        self, connection: ServerConnection, user_id: str, resume_token: str, last_seq: int
    ) -> Session | None:
        session = self._by_resume_token.get(resume_token)
        if session is None or session.user_id != user_id or session.ended:
            await _refuse(
                connection,
                ErrorCode.RESUME_FAILED,
                "no session to resume with this resume_token (it ended, expired, or is not yours): "
                "send a hello without it to start a new session",
                CloseCode.RESUME_FAILED,
            )
            return None
        if last_seq >= session.next_seq:
            await _refuse(
                connection,
                ErrorCode.RESUME_FAILED,
                f"last_seq {last_seq} is beyond the session's last frame ({session.next_seq - 1})",
                CloseCode.RESUME_FAILED,
            )
            return None
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        async with session.send_lock:
            previous, session.connection = session.connection, connection
            replay = [text for seq, text in session.sent if seq > last_seq]
            for text in replay:
                if not await _send(connection, text):
                    break
            await self._send_locked(
                session,
                {
                    "type": EventType.SESSION_RESUMED,
                    "session_id": session.session_id,
                    "user_id": user_id,
                    "replayed": len(replay),
                },
            )
        if previous is not None:
            self._spawn(previous.close(CloseCode.TAKEN_OVER, "session resumed on another connection"))
        return session

    async def _detach(self, session: Session, connection: ServerConnection) -> None:
        """The connection ended: end the session, or keep it for a resume if the client did not mean to end it."""
        if session.connection is not connection or session.ended:
            return  # resumed elsewhere meanwhile, or ended already
        session.connection = None
        if self._closing or _ends_session(connection):
            await self._end_session(session)
        else:
            session.expiry = self._spawn(self._end_unless_resumed(session))

    async def _end_unless_resumed(self, session: Session) -> None:
        await asyncio.sleep(self.settings.resume_window_ms / 1000)
        if session.connection is None:
            await self._end_session(session)

    async def _end_session(self, session: Session, *, expired: bool = False) -> None:
        """Cancel the session's runs, unregister it, close its connection (4408 if its registration expired)."""
        if session.ended:
            return
        session.ended = True
        if session.expiry is not None and session.expiry is not asyncio.current_task():
            session.expiry.cancel()
        for run in session.runs:
            run.cancel()
        if session.runs:
            await asyncio.wait(session.runs, timeout=self.settings.shutdown_timeout_ms / 1000)
        self._sessions.discard(session)
        self._by_resume_token.pop(session.resume_token, None)
        try:
            await self._registry.release(session.user_id, session.session_id)
        except (rx.RedisError, OSError) as error:
            log.warning("could not unregister the session of %s: %s", session.user_id, self._scrub(error))
        if session.connection is None:
            return
        if expired:
            await self._emit(
                session,
                {
                    "type": EventType.ERROR,
                    "code": ErrorCode.SESSION_EXPIRED,
                    "message": "the session's registration in Redis expired or was taken",
                },
            )
        connection, session.connection = session.connection, None
        await connection.close(CloseCode.SESSION_EXPIRED if expired else CloseCode.NORMAL)

    async def _keep_sessions_registered(self) -> None:
        """Refresh every session's Redis key; end a session whose key is gone or taken."""
        while True:
            await asyncio.sleep(self.settings.session_ttl_ms / 3000)
            for session in list(self._sessions):
                try:
                    ours = await self._registry.refresh(session.user_id, session.session_id)
                except (rx.RedisError, OSError) as error:
                    log.warning("could not refresh the session of %s: %s", session.user_id, self._scrub(error))
                    continue
                if not ours:
                    await self._end_session(session, expired=True)

    # Frames inside a session

    async def _on_frame(self, session: Session, frame: str | bytes) -> None:
        try:
            message = parse_client_message(frame)
            if isinstance(message, Hello):
                raise ProtocolError(
                    ErrorCode.BAD_MESSAGE, "this connection has a session already; hello is only the first frame"
                )
            if isinstance(message, Ping):
                await self._emit(session, {"type": EventType.PONG, "request_id": message.request_id})
            else:
                await self._start_run(session, message)
        except ProtocolError as error:
            await self._emit(
                session,
                {"type": EventType.ERROR, "code": error.code, "message": error.message, "request_id": error.request_id},
            )
        except (rx.RedisError, *_DATABASE_ERRORS) as error:
            log.warning("frame of %s failed: %s", session.user_id, self._scrub(error))
            await self._emit(
                session,
                {
                    "type": EventType.ERROR,
                    "code": ErrorCode.SERVICE_UNAVAILABLE,
                    "message": "the service could not reach its database or Redis; try again",
                },
            )

    async def _emit(self, session: Session, frame: dict[str, Any]) -> None:
        async with session.send_lock:
            await self._send_locked(session, frame)

    async def _send_locked(self, session: Session, frame: dict[str, Any]) -> None:
        """Number the frame, keep it for a resume, send it if the session has a connection."""
        frame["seq"] = session.next_seq
        session.next_seq += 1
        text = json.dumps(frame)
        session.sent.append((frame["seq"], text))
        if session.connection is None:
            return
        if Bug.REORDER in self.bugs:
            self._spawn(_send(session.connection, text, delay=random.uniform(0, REORDER_MAX_DELAY)))
        else:
            await _send(session.connection, text)

    # Agent runs

    async def _start_run(self, session: Session, request: RunRequest) -> None:
        if request.kind is ClientType.START_RUN:
            await self._store.open_thread(session.user_id, request.thread_id)
        elif not await self._store.thread_exists(session.user_id, request.thread_id):
            raise ProtocolError(
                ErrorCode.UNKNOWN_THREAD,
                f"you have no thread {request.thread_id!r}: open it with start_run first",
                request.request_id,
            )
        session.runs_started += 1
        run_id = f"run-{session.runs_started}" if Bug.DUPLICATE_RUN_IDS in self.bugs else f"run-{uuid.uuid4().hex}"
        task = asyncio.create_task(self._run(Run(session, request, run_id)))
        session.runs.add(task)
        task.add_done_callback(session.runs.discard)

    async def _run(self, run: Run) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent: list[dict[str, Any]] = []
        try:
            async with self._whole_run_lock():
                self._reporting_to = run.session
                await self._run_event(
                    run,
                    sent,
                    EventType.AGENT_STARTED,
                    context_bytes=run.request.content_bytes,
                    context_sha256=run.request.content_sha256,
                )
                await self._run_event(run, sent, EventType.AGENT_THINKING, think_ms=self.settings.think_ms)
                await asyncio.sleep(self.settings.think_ms / 1000)
                cost = self.settings.run_cost if run.request.cost is None else run.request.cost
                await self._run_event(run, sent, EventType.TOOL_EXECUTING, tool=TOOL_NAME, cost=cost)
                result = await self._use_tool(run, cost)
                await self._run_event(
                    run,
                    sent,
                    EventType.TOOL_COMPLETED,
                    tool=TOOL_NAME,
                    cost=cost,
                    balance=result.balance,
                    message_position=result.message_position,
                )
                await self._run_event(
                    run, sent, EventType.AGENT_COMPLETED, duration_ms=round((loop.time() - started) * 1000)
                )
        except ToolFailure as failure:
            await self._run_event(run, sent, EventType.AGENT_FAILED, code=failure.code, message=failure.message)
        except Exception:
            log.exception("run %s of %s failed", run.run_id, run.session.user_id)
            await self._run_event(
                run,
                sent,
                EventType.AGENT_FAILED,
                code=RunFailure.INTERNAL_ERROR,
                message="the service failed unexpectedly; see its log",
            )
        finally:
            if Bug.MEMORY_GROWTH in self.bugs:
                self._archive.append((run.request.content, sent, b"\xa5" * LEAKED_BUFFER_BYTES))

    def _whole_run_lock(self) -> AbstractAsyncContextManager[None]:
        return self._locks.held("global") if Bug.GLOBAL_LOCK in self.bugs else nullcontext()

    async def _run_event(self, run: Run, sent: list[dict[str, Any]], kind: EventType, **fields: Any) -> None:
        frame = run.frame(kind, **fields)
        sent.append(frame)
        # The leak bug: report to the shared "current session" instead of the run's own.
        target = self._reporting_to if Bug.LEAK in self.bugs and self._reporting_to is not None else run.session
        await self._emit(target, frame)

    async def _use_tool(self, run: Run, cost: int) -> ToolResult:
        user_id, request = run.session.user_id, run.request
        try:
            async with self._locks.held(f"thread:{user_id}:{request.thread_id}"):
                return await self._store.deduct_and_record(
                    user_id, request.thread_id, run.run_id, request.marker, request.content, cost
                )
        except rx.RedisError as error:
            raise ToolFailure(RunFailure.REDIS_UNAVAILABLE, f"Redis failed: {self._scrub(error)}") from None
        except asyncpg.UniqueViolationError:
            raise ToolFailure(RunFailure.CONFLICT, "another run wrote the same thread position") from None
        except _DATABASE_ERRORS as error:
            raise ToolFailure(
                RunFailure.DATABASE_UNAVAILABLE, f"PostgreSQL failed: {self._scrub(error) or type(error).__name__}"
            ) from None

    # Helpers

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _scrub(self, error: BaseException) -> str:
        return scrub(scrub(str(error), self.config.pg_dsn), self.config.redis_url)


def _ends_session(connection: ServerConnection) -> bool:
    """Whether the client closed ``connection`` with a code that ends its session (1000, 1001)."""
    received = connection.protocol.close_rcvd
    return received is not None and received.code in SESSION_ENDING_CLOSES


async def _send(connection: ServerConnection, text: str, delay: float = 0.0) -> bool:
    """Send ``text``; False if the connection is gone (the session keeps the frame for a resume)."""
    if delay:
        await asyncio.sleep(delay)
    try:
        await connection.send(text)
    except ConnectionClosed:
        return False
    return True


async def _refuse(connection: ServerConnection, code: ErrorCode, message: str, close_code: CloseCode) -> None:
    """Send an ``error`` frame outside any session (``seq`` null) and close with ``close_code``."""
    frame = {"type": EventType.ERROR, "seq": None, "code": code, "message": message}
    try:
        await connection.send(json.dumps(frame))
        await connection.close(close_code, code)
    except ConnectionClosed:
        pass


async def serve_until_signalled(config: ServiceConfig, on_ready: Callable[[int], None]) -> None:
    """Run the service until SIGTERM or SIGINT, then shut it down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = await AgentService.open(config)
    try:
        port = await service.start()
        log.info(
            "listening on ws://%s:%d/ with PostgreSQL %s (schema %s), Redis %s (prefix %s), bugs: %s",
            config.host,
            port,
            mask_dsn(config.pg_dsn),
            config.pg_schema,
            mask_dsn(config.redis_url),
            config.redis_prefix,
            ", ".join(sorted(config.bugs)) or "none",
        )
        on_ready(port)
        await stop.wait()
        log.info("stopping")
    finally:
        await service.shutdown()
    log.info("stopped cleanly")
