"""Test fixture: Relay, a small real WebSocket agent service that Stampede did not write, with its own schema.

Its documentation, as a user would read it before configuring Stampede:

- Endpoint ``ws://<host>:<port>/v2/stream?access_token=<JWT>``. The JWT is HS256,
  signed with the service's secret, and must carry ``user_id`` and the audience
  ``relay-agents`` (``aud``) and an ``exp``; any issuer is accepted. A missing or
  invalid token: the connection is accepted and closed at once with 1008
  (policy violation), the reason saying why.
- On connecting: ``{"event": "connected", "n": 1, "body": {"user": ..., "connection_id": ...}}``.
- Ask: ``{"action": "ask", "conversation": ..., "input": ..., "ref": <yours>, "label": <yours>}``.
  A run streams ``run.started``, ``step``, ``tool``, ``step``, ``run.finished``;
  every event is ``{"event": ..., "n": <1, 2, 3... per connection>, "body": {"user",
  "run", "ref", "label", ...}}``. A bad frame gets ``{"event": "error", "n": ...,
  "body": {"reason": "bad_request", "detail": ...}}``.

Seeded bugs, chosen by the URL path's first segment (``/leak/v2/stream``): ``leak``
sends each run's second ``step`` to another user's connection that has a run
going (numbered in its owner's stream, as an event serialized once and then
sent to the wrong socket); ``reorder`` sends each run's ``tool`` after its
second ``step`` (numbered in order, sent out of order). Any other path is the
correct service.

It runs on an event loop in a thread of its own (:class:`RelayAgentService`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .threaded_service import ThreadedService

AUDIENCE = "relay-agents"
POLICY_VIOLATION = 1008
LIFECYCLE = ("run.started", "step", "tool", "step", "run.finished")


@dataclass
class Client:
    """One open connection: its user, its frame counter and whether a run of it is going."""

    connection: ServerConnection
    user: str
    sent: int = 0
    busy: int = 0
    runs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def number(self, event: str, body: dict[str, Any]) -> str:
        self.sent += 1
        return json.dumps({"event": event, "n": self.sent, "body": body})


class Relay:
    """The service: verifies tokens, streams runs, and misbehaves as the URL path says."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.clients: list[Client] = []
        self._connections = itertools.count(1)

    async def handle(self, connection: ServerConnection) -> None:
        target = urlsplit(connection.request.path)  # type: ignore[union-attr]
        behaviour = target.path.strip("/").split("/")[0]
        try:
            claims = jwt.decode(
                parse_qs(target.query).get("access_token", [""])[0],
                self.secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["user_id", "exp", "aud"]},
            )
        except jwt.InvalidTokenError as error:
            await connection.close(POLICY_VIOLATION, f"invalid token: {error}"[:120])
            return
        client = Client(connection, str(claims["user_id"]))
        await connection.send(
            client.number("connected", {"user": client.user, "connection_id": f"c-{next(self._connections)}"})
        )
        self.clients.append(client)
        try:
            async for frame in connection:
                await self._answer(client, frame, behaviour)
        except ConnectionClosed:
            pass
        finally:
            self.clients.remove(client)

    async def _answer(self, client: Client, frame: str | bytes, behaviour: str) -> None:
        try:
            ask = json.loads(frame)
            if ask.get("action") != "ask":
                raise ValueError(f"unknown action {ask.get('action')!r}")
        except (ValueError, AttributeError) as error:
            await client.connection.send(client.number("error", {"reason": "bad_request", "detail": str(error)}))
            return
        client.busy += 1
        body = {
            "user": client.user,
            "run": f"{client.user}-run-{next(client.runs)}",
            "ref": ask.get("ref"),
            "label": ask.get("label"),
        }
        events = [(event, client.number(event, {**body, "place": place})) for place, event in enumerate(LIFECYCLE)]
        if behaviour == "reorder":
            events[2], events[3] = events[3], events[2]
        for place, (_, text) in enumerate(events):
            await asyncio.sleep(0.005)
            receiver = self._leak_target(client) if behaviour == "leak" and place == 3 else client
            if place == len(events) - 1:
                client.busy -= 1
            await receiver.connection.send(text)

    def _leak_target(self, owner: Client) -> Client:
        """Another user's connection with a run going (it reads on until its own run is done), else the owner's."""
        return next((c for c in self.clients if c.user != owner.user and c.busy), owner)


class RelayAgentService(ThreadedService):
    """Relay on a free port of 127.0.0.1, on an event loop in a thread of its own."""

    name = "relay-agent-service"

    def __init__(self, secret: str) -> None:
        self.relay = Relay(secret)
        super().__init__()

    def url(self, port: int) -> str:
        """The base URL ``ws://127.0.0.1:<port>``."""
        return f"ws://127.0.0.1:{port}"

    async def serve(self, ready: Callable[[int], None], stopped: asyncio.Event) -> None:
        server: Server = await serve(self.relay.handle, "127.0.0.1", 0)
        async with server:
            ready(server.sockets[0].getsockname()[1])
            await stopped.wait()
