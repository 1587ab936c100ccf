"""Sessions: opened by a hello, one per user, kept a while across a dropped connection for a resume, then ended.

Every frame a session sends is numbered (``seq``) and kept in its replay
buffer, so a client that resumes on a new connection gets what it missed.

Sessions live in the memory of the process that started them. When the
service runs several processes, the kernel hands each connection to any of
them, so a resume reaches the session only if it lands on the same process:
resume tokens name their process (``p1.<random>``), and the others refuse a
resume with a ``resume_failed`` error saying so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from redis import exceptions as rx
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .auth import TokenError, verify_token
from .bugs import Bug
from .coordination import SessionRegistry
from .protocol import SESSION_ENDING_CLOSES, CloseCode, ErrorCode, EventType, Hello, ProtocolError, parse_client_message
from .settings import ServiceSettings
from .store import DATABASE_ERRORS, AgentStore

log = logging.getLogger(__package__)

REORDER_MAX_DELAY = 0.02  # seconds a frame may wait in the reorder bug's background send
ELSEWHERE_RELEASE_WAIT = 1.0
"""Seconds a new session waits for a user's session held by another process to end: a client that closed it and
reconnected at once may reach this process before the other has released it."""
_CLAIM_RETRY = 0.02
_REFRESH_BATCH = 500  # session keys refreshed per Redis round trip: one pipeline each, not one command per session

Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]
"""Starts a background task that the service cancels when it shuts down."""


class Session:
    """One user's session: its sequence counter, the frames it sent, its connection (if any) and runs."""

    def __init__(self, user_id: str, replay_buffer: int, process_index: int | None = None) -> None:
        self.user_id = user_id
        self.session_id = uuid.uuid4().hex
        token = secrets.token_urlsafe(24)
        self.resume_token = token if process_index is None else f"p{process_index}.{token}"
        self.next_seq = 1
        self.sent: deque[tuple[int, str]] = deque(maxlen=replay_buffer)
        self.connection: ServerConnection | None = None
        self.send_lock = asyncio.Lock()
        self.runs: set[asyncio.Task[None]] = set()
        self.runs_started = 0
        self.expiry: asyncio.Task[None] | None = None
        self.ended = False


class Sessions:
    """The service's sessions, each registered in Redis as its user's one session while it lasts.

    ``spawn`` starts background work the service cancels at shutdown;
    ``describe_error`` turns a database or Redis error into log text without passwords.
    """

    def __init__(
        self,
        secret: str,
        settings: ServiceSettings,
        registry: SessionRegistry,
        store: AgentStore,
        bugs: frozenset[Bug],
        *,
        spawn: Spawn,
        describe_error: Callable[[BaseException], str],
        process_index: int | None = None,
    ) -> None:
        self.secret = secret
        self.settings = settings
        self.bugs = bugs
        self.closing = False
        """Set when the service shuts down: a session whose connection ends then ends too, with no wait for a resume."""
        self._registry = registry
        self._store = store
        self._spawn = spawn
        self._describe_error = describe_error
        self._process_index = process_index
        self._sessions: set[Session] = set()
        self._by_resume_token: dict[str, Session] = {}
        self.started = 0
        """Sessions this process has started."""

    async def open(self, connection: ServerConnection) -> Session | None:
        """Read the hello; return the new or resumed session, or None after refusing it."""
        timeout = self.settings.hello_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):  # no task per connection, as wait_for makes on Python 3.11
                frame = await connection.recv()
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
            identity = verify_token(self.secret, hello.token)
        except ProtocolError as error:
            await _refuse(connection, error.code, error.message, CloseCode.PROTOCOL_ERROR)
            return None
        except TokenError as error:
            await _refuse(connection, ErrorCode.AUTH_FAILED, f"token refused: {error.reason}", CloseCode.AUTH_FAILED)
            return None
        try:
            if hello.resume_token is not None:
                return await self._resume(connection, identity.user_id, hello.resume_token, hello.last_seq or 0)
            return await self._start(connection, identity.user_id)
        except (rx.RedisError, *DATABASE_ERRORS) as error:
            log.warning("could not open a session for %s: %s", identity.user_id, self._describe_error(error))
            await _refuse(
                connection,
                ErrorCode.SERVICE_UNAVAILABLE,
                "the service could not reach its database or Redis; try again",
                CloseCode.INTERNAL_ERROR,
            )
            return None

    async def _start(self, connection: ServerConnection, user_id: str) -> Session | None:
        session = Session(user_id, self.settings.replay_buffer, self._process_index)
        claimed = await self._registry.claim(user_id, session.session_id)
        if not claimed and await self._end_closed_sessions(user_id):
            claimed = await self._registry.claim(user_id, session.session_id)
        if not claimed and self._process_index is not None and not self._holds_session_of(user_id):
            claimed = await self._claim_once_released(user_id, session.session_id)
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
        self.started += 1
        await self.emit(
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

    def _holds_session_of(self, user_id: str) -> bool:
        return any(session.user_id == user_id for session in self._sessions)

    async def _claim_once_released(self, user_id: str, session_id: str) -> bool:
        """Claim the user's registration once another process releases it, within :data:`ELSEWHERE_RELEASE_WAIT`."""
        deadline = asyncio.get_running_loop().time() + ELSEWHERE_RELEASE_WAIT
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(_CLAIM_RETRY)
            if await self._registry.claim(user_id, session_id):
                return True
        return False

    async def _resume(
        self, connection: ServerConnection, user_id: str, resume_token: str, last_seq: int
    ) -> Session | None:
        session = self._by_resume_token.get(resume_token)
        owner = _process_of(resume_token)
        if session is None and self._process_index is not None and owner not in (None, self._process_index):
            await _refuse(
                connection,
                ErrorCode.RESUME_FAILED,
                f"this resume_token's session lives in the service's process {owner}, and this connection reached "
                f"process {self._process_index}: with several processes a resume lands on any of them (run the "
                "service with --processes 1 to resume sessions), or send a hello without it to start a new session",
                CloseCode.RESUME_FAILED,
            )
            return None
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

    async def detach(self, session: Session, connection: ServerConnection) -> None:
        """The connection ended: end the session, or keep it for a resume if the client did not mean to end it."""
        if session.connection is not connection or session.ended:
            return  # resumed elsewhere meanwhile, or ended already
        session.connection = None
        if self.closing or _ends_session(connection):
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
            log.warning("could not unregister the session of %s: %s", session.user_id, self._describe_error(error))
        if session.connection is None:
            return
        if expired:
            await self.emit(
                session,
                {
                    "type": EventType.ERROR,
                    "code": ErrorCode.SESSION_EXPIRED,
                    "message": "the session's registration in Redis expired or was taken",
                },
            )
        connection, session.connection = session.connection, None
        await connection.close(CloseCode.SESSION_EXPIRED if expired else CloseCode.NORMAL)

    async def keep_registered(self) -> None:
        """Refresh every session's Redis key; end a session whose key is gone or taken."""
        while True:
            await asyncio.sleep(self.settings.session_ttl_ms / 3000)
            sessions = list(self._sessions)
            for start in range(0, len(sessions), _REFRESH_BATCH):
                batch = sessions[start : start + _REFRESH_BATCH]
                try:
                    ours = await self._registry.refresh([(session.user_id, session.session_id) for session in batch])
                except (rx.RedisError, OSError) as error:
                    log.warning("could not refresh %d sessions: %s", len(batch), self._describe_error(error))
                    continue
                for session, still_ours in zip(batch, ours, strict=True):
                    if not still_ours:
                        await self._end_session(session, expired=True)

    async def end_all(self) -> None:
        """End every session (the service is shutting down)."""
        for session in list(self._sessions):
            await self._end_session(session)

    async def emit(self, session: Session, frame: dict[str, Any]) -> None:
        """Send ``frame`` as the session's next numbered frame (kept for a resume if it has no connection now)."""
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


def _process_of(resume_token: str) -> int | None:
    """The process a resume token names (``p1.<random>``); None for a token of a single-process service."""
    tag, dot, _ = resume_token.partition(".")
    return int(tag[1:]) if dot and tag[:1] == "p" and tag[1:].isdigit() else None


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
