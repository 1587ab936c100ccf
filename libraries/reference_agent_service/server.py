"""The reference agent service: listens, hands each connection's frames to its session, shuts down gracefully.

Sessions are kept by :mod:`reference_agent_service.sessions` and agent runs
carried out by :mod:`reference_agent_service.runs`; the protocol is described
in :mod:`reference_agent_service.protocol`. Beside it, the same process serves
the HTTP + SSE API of :mod:`reference_agent_service.http_api` (threads and
their runs, :mod:`reference_agent_service.thread_runs`). Run as one of several
processes (:mod:`reference_agent_service.supervisor`), it shares the WebSocket
port with the others, and only the first serves HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

import redis.asyncio as aioredis
from redis import exceptions as rx
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .bugs import Bug
from .coordination import RedisLocks, SessionRegistry
from .errors import ServiceUnavailable
from .http_api import HttpApi
from .logsafe import mask_dsn, scrub
from .protocol import ErrorCode, EventType, Hello, Ping, ProtocolError, parse_client_message
from .runs import AgentRuns
from .sessions import Session, Sessions
from .settings import ServiceSettings
from .store import APPLICATION_NAME, DATABASE_ERRORS, AgentStore
from .thread_runs import ThreadRuns
from .threads import ThreadStore

log = logging.getLogger(__package__)

_CLOSE_TIMEOUT = 2.0
_REDIS_CONNECTIONS = 50  # a few commands per run: 50 connections serve hundreds of users without crowding Redis
_REDIS_CONNECTION_WAIT = 10.0  # seconds a command waits for a free connection before it fails


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
    http_port: int = 0
    bugs: frozenset[Bug] = frozenset()
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    process_index: int | None = None
    """Which of the service's several processes this is (0 first); None when it is the only one."""

    @property
    def serves_http(self) -> bool:
        """Only one process serves HTTP: a thread's one-active-run policy is kept in its memory."""
        return self.process_index in (None, 0)


class Listening(NamedTuple):
    """The ports the service listens on: WebSocket and HTTP (None for a process that serves no HTTP)."""

    port: int
    http_port: int | None


class AgentService:
    """Serves the WebSocket protocol and the HTTP API; :meth:`shutdown` leaves no connection, task or key behind."""

    def __init__(self, config: ServiceConfig, store: AgentStore, client: aioredis.Redis) -> None:
        self.config = config
        self.settings = config.settings
        self.bugs = config.bugs
        self._store = store
        self._redis = client
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        registry = SessionRegistry(
            client, config.redis_prefix, self.settings.session_ttl_ms, allow_second=Bug.SECOND_SESSION in self.bugs
        )
        self._sessions = Sessions(
            config.secret,
            self.settings,
            registry,
            store,
            self.bugs,
            spawn=self._spawn,
            describe_error=self._scrub,
            process_index=config.process_index,
        )
        locks = RedisLocks(client, config.redis_prefix, self.settings.lock_ttl_ms, self.settings.lock_wait_ms)
        self._runs = AgentRuns(
            store, locks, self.settings, self.bugs, emit=self._sessions.emit, describe_error=self._scrub
        )
        threads = ThreadStore(store.pool)
        self._thread_runs = ThreadRuns(threads, self.settings, self.bugs, spawn=self._spawn, describe_error=self._scrub)
        self._http = HttpApi(config.secret, threads, self._thread_runs, self.bugs, describe_error=self._scrub)

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
                client_name=APPLICATION_NAME,
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

    async def start(self) -> Listening:
        """Listen for WebSocket and HTTP; return both ports."""
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                compression=None,
                max_size=self.settings.max_message_bytes,
                close_timeout=_CLOSE_TIMEOUT,
                reuse_port=self.config.process_index is not None,  # SO_REUSEPORT: the processes share the port
            )
        except OSError as error:
            raise ServiceUnavailable(
                f"Cannot listen on {self.config.host}:{self.config.port}: {error.strerror or error}"
            ) from None
        http_port = await self._start_http() if self.config.serves_http else None
        self._spawn(self._sessions.keep_registered())
        return Listening(int(self._server.sockets[0].getsockname()[1]), http_port)

    async def _start_http(self) -> int:
        try:
            return await self._http.start(
                self.config.host, self.config.http_port, self.settings.shutdown_timeout_ms / 1000
            )
        except OSError as error:
            raise ServiceUnavailable(
                f"Cannot listen for HTTP on {self.config.host}:{self.config.http_port}: {error.strerror or error}"
            ) from None

    @property
    def sessions_started(self) -> int:
        return self._sessions.started

    async def shutdown(self) -> None:
        """Close connections (1001), cancel runs, end streams, release Redis keys, close pools; each step bounded."""
        self._sessions.closing = True
        bound = self.settings.shutdown_timeout_ms / 1000
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), bound)
            except TimeoutError:
                log.warning("connections did not close within %g s; going on", bound)
        await self._thread_runs.close(bound)
        await self._http.close()
        await self._sessions.end_all()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=bound)
        await self._redis.aclose()
        await self._store.close(bound)

    # Connections

    async def _handle(self, connection: ServerConnection) -> None:
        if Bug.NEVER_ANSWER in self.bugs:
            await self._read_and_ignore(connection)
            return
        session = await self._sessions.open(connection)
        if session is None:
            return
        try:
            async for frame in connection:
                await self._on_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            await self._sessions.detach(session, connection)

    @staticmethod
    async def _read_and_ignore(connection: ServerConnection) -> None:
        try:
            async for _ in connection:
                pass
        except ConnectionClosed:
            pass

    async def _on_frame(self, session: Session, frame: str | bytes) -> None:
        try:
            message = parse_client_message(frame)
            if isinstance(message, Hello):
                raise ProtocolError(
                    ErrorCode.BAD_MESSAGE, "this connection has a session already; hello is only the first frame"
                )
            if isinstance(message, Ping):
                await self._sessions.emit(session, {"type": EventType.PONG, "request_id": message.request_id})
            else:
                await self._runs.start(session, message)
        except ProtocolError as error:
            await self._sessions.emit(
                session,
                {"type": EventType.ERROR, "code": error.code, "message": error.message, "request_id": error.request_id},
            )
        except (rx.RedisError, *DATABASE_ERRORS) as error:
            log.warning("frame of %s failed: %s", session.user_id, self._scrub(error))
            await self._sessions.emit(
                session,
                {
                    "type": EventType.ERROR,
                    "code": ErrorCode.SERVICE_UNAVAILABLE,
                    "message": "the service could not reach its database or Redis; try again",
                },
            )

    # Helpers

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _scrub(self, error: BaseException) -> str:
        """The error as log text without passwords; its type's name when it has no message."""
        return scrub(scrub(str(error), self.config.pg_dsn), self.config.redis_url) or type(error).__name__


async def serve_until_signalled(config: ServiceConfig, on_ready: Callable[[Listening], None]) -> None:
    """Run the service until SIGTERM or SIGINT, then shut it down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = await AgentService.open(config)
    try:
        listening = await service.start()
        http = f"http://{config.host}:{listening.http_port}/" if listening.http_port is not None else "no HTTP"
        log.info(
            "%slistening on ws://%s:%d/ and %s with PostgreSQL %s (schema %s), Redis %s (prefix %s), bugs: %s",
            "" if config.process_index is None else f"process {config.process_index} ",
            config.host,
            listening.port,
            http,
            mask_dsn(config.pg_dsn),
            config.pg_schema,
            mask_dsn(config.redis_url),
            config.redis_prefix,
            ", ".join(sorted(config.bugs)) or "none",
        )
        on_ready(listening)
        await stop.wait()
        log.info("stopping")
    finally:
        await service.shutdown()
    log.info("stopped cleanly after serving %d sessions", service.sessions_started)
