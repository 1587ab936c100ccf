"""Test-only library: a real WebSocket server that misbehaves the way a broken agent service does.

It speaks the reference protocol until the point the URL's path names, then:

- ``/refuse-token``: verifies the hello's JWT with a secret of its own, so the
  harness's token is refused (``error`` ``auth_failed``, close 4401), as a
  service configured with another secret would;
- ``/cut``: closes the TCP connection in the middle of a text frame;
- ``/not-json``: answers the run with an HTML error page instead of JSON.

It runs on an event loop in a thread of its own and stops with the suite.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future

from robot.api.deco import keyword, library
from websockets.asyncio.server import Server, ServerConnection, serve

from reference_agent_service.auth import TokenError, verify_token
from reference_agent_service.protocol import CloseCode, ErrorCode, EventType
from stampede.services.tokens import new_secret

START_TIMEOUT = 10.0
FRAME_TIMEOUT = 10.0


async def misbehave(connection: ServerConnection) -> None:
    behaviour = connection.request.path.strip("/")  # type: ignore[union-attr]
    hello = json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT))
    if behaviour == "refuse-token":
        try:
            verify_token(new_secret(), hello.get("token", ""))
        except TokenError as error:
            await connection.send(
                json.dumps(
                    {
                        "type": EventType.ERROR,
                        "seq": None,
                        "code": ErrorCode.AUTH_FAILED,
                        "message": f"token refused: {error.reason}",
                    }
                )
            )
            await connection.close(CloseCode.AUTH_FAILED, ErrorCode.AUTH_FAILED)
        return
    await connection.send(
        json.dumps(
            {
                "type": EventType.SESSION_STARTED,
                "seq": 1,
                "session_id": "s-1",
                "user_id": "user-1",
                "resume_token": "r-1",
            }
        )
    )
    start = json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT))
    if behaviour == "cut":
        await connection.send(
            json.dumps(
                {
                    "type": EventType.AGENT_STARTED,
                    "seq": 2,
                    "user_id": "user-1",
                    "marker": start.get("marker"),
                    "run_id": "run-1",
                    "request_id": start.get("request_id"),
                }
            )
        )
        connection.transport.write(bytes([0x81, 100]) + b'{"type": "agent_thi')  # 19 of a 100-byte text frame
        connection.transport.abort()
    elif behaviour == "not-json":
        await connection.send("<html>502 Bad Gateway</html>")
        await connection.wait_closed()


@library(scope="SUITE")
class MisbehavingAgentService:
    """Starts and stops the misbehaving WebSocket server."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._port: int | None = None

    @keyword
    def start_misbehaving_agent_service(self) -> None:
        """Starts the server on a free port of 127.0.0.1."""
        ready: Future[int] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop, ready), name="misbehaving-agent-service", daemon=True
        )
        self._thread.start()
        self._port = ready.result(START_TIMEOUT)

    @keyword
    def misbehaving_agent_service_url(self, behaviour: str) -> str:
        """The server's ``ws://`` URL for ``behaviour``: ``refuse-token``, ``cut`` or ``not-json``."""
        if self._port is None:
            raise RuntimeError("Start Misbehaving Agent Service first.")
        return f"ws://127.0.0.1:{self._port}/{behaviour}"

    @keyword
    def stop_misbehaving_agent_service(self) -> None:
        """Stops the server and waits for its thread."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
        self._loop = self._thread = self._stopped = self._port = None

    def _run(self, loop: asyncio.AbstractEventLoop, ready: Future[int]) -> None:
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            loop.close()

    async def _serve(self, ready: Future[int]) -> None:
        self._stopped = asyncio.Event()
        try:
            server: Server = await serve(misbehave, "127.0.0.1", 0)
        except OSError as error:
            ready.set_exception(error)
            return
        async with server:
            ready.set_result(server.sockets[0].getsockname()[1])
            await self._stopped.wait()
