"""Test fixture: Tandem, a small real HTTP + SSE agent service that Stampede did not write, with its own schema.

Its documentation, as a user would read it before configuring Stampede:

- Base URL ``http://<host>:<port>/api/v1``. Every request carries its user's API key in
  ``X-Api-Key``; a missing or unknown key is ``401 {"problem": "unknown api key"}``.
- ``POST /conversations`` (body ``{"title": ...}``, optional) answers
  ``201 {"conversation": {"id": "c-7", "owner": ...}}``. A conversation belongs to its
  creator: another user's is ``404 {"problem": "no such conversation"}`` for every request.
- ``GET /conversations/{id}`` answers ``{"conversation": {...}, "transcript": [line...]}``; a
  line is ``{"mid": "c-7/t-3/1", "turn": "t-3", "tag": <the turn's tag>, "text": ...}``.
- ``GET /conversations/{id}/turns`` answers ``{"turns": [{"id", "state"}...]}`` in the order
  they were asked for; states: ``waiting``, ``active``, ``done``, ``stopped``, ``undone``.
- ``POST /conversations/{id}/turns`` with ``{"prompt", "tag", "lines": 1-20, "pause_ms",
  "if_busy"}`` starts a turn and streams it as server-sent events. ``if_busy`` says what
  happens when the conversation already has a turn going or waiting: ``refuse`` (answered
  ``423 {"problem": "busy", "turn": <the active one>}``), ``queue`` (waits its turn),
  ``preempt`` (the active turn stops at its next line, its lines stay; waiting ones stop
  unstarted) or ``revert`` (as preempt, and the stopped turn's lines are taken back).
  With ``?wait=1`` it answers once the turn has ended, with JSON instead of a stream:
  ``{"turn": {"id", "state", "lines": [line...]}}``.
- Events: ``turn.waiting``, ``turn.begin``, ``turn.line`` (one per line, with ``mid``),
  then one of ``turn.done``, ``turn.stopped``, ``turn.undone``. Each event's ``id:`` is its
  number in the turn (1, 2, 3...); its ``data`` is JSON with ``turn``, ``owner`` and ``tag``.
- ``POST /conversations/{id}/turns/{turn}/cancel`` answers ``202 {"turn", "state"}``: the
  turn stops at its next line (``turn.stopped``; its lines stay).
- ``GET /conversations/{id}/turns/{turn}/events`` with ``Last-Event-ID: <n>`` replays the
  turn's events after n, then streams the rest.

Faults, for tests (attributes of :class:`Tandem`, off by default): ``cut_after`` drops
every turn's first stream after that many events (the connection dies mid-stream, as a
proxy that times out would do it); ``crash_after`` makes the stream handler fail after
that many events (an internal error mid-stream) and every resume of it answer 500;
``garbage_after`` sends, after that many events, an event whose data is not JSON.

It runs on an event loop in a thread of its own (:class:`TandemHttpService`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

START_TIMEOUT = 10.0
BASE = "/api/v1"
USER = web.RequestKey("user", str)
ENDS = {"done": "turn.done", "stopped": "turn.stopped", "undone": "turn.undone"}


@dataclass
class Turn:
    id: str
    owner: str
    tag: str
    lines: int
    pause_s: float
    state: str = "waiting"
    stop: str | None = None
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, name: str, **extra: Any) -> None:
        self.events.append(
            (len(self.events) + 1, name, {"turn": self.id, "owner": self.owner, "tag": self.tag, **extra})
        )
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.state in ENDS


@dataclass
class Conversation:
    id: str
    owner: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    active: Turn | None = None
    waiting: list[Turn] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        return self.active is not None or bool(self.waiting)


class Tandem:
    """The service: API keys, conversations, turns streamed as SSE, and the faults a test switches on."""

    def __init__(self, api_keys: dict[str, str]) -> None:
        self.users_by_key = {key: user for user, key in api_keys.items()}
        self.conversations: dict[str, Conversation] = {}
        self.cut_after: int | None = None
        self.crash_after: int | None = None
        self.garbage_after: int | None = None
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post(f"{BASE}/conversations", self.create)
        app.router.add_get(f"{BASE}/conversations/{{cid}}", self.read)
        app.router.add_get(f"{BASE}/conversations/{{cid}}/turns", self.list_turns)
        app.router.add_post(f"{BASE}/conversations/{{cid}}/turns", self.start_turn)
        app.router.add_get(f"{BASE}/conversations/{{cid}}/turns/{{tid}}/events", self.resume)
        app.router.add_post(f"{BASE}/conversations/{{cid}}/turns/{{tid}}/cancel", self.cancel)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        user = self.users_by_key.get(request.headers.get("X-Api-Key", ""))
        if user is None:
            return web.json_response({"problem": "unknown api key"}, status=401)
        request[USER] = user
        return await handler(request)

    def _conversation(self, request: web.Request) -> Conversation:
        found = self.conversations.get(request.match_info["cid"])
        if found is None or found.owner != request[USER]:
            raise web.HTTPNotFound(
                text=json.dumps({"problem": "no such conversation"}), content_type="application/json"
            )
        return found

    async def create(self, request: web.Request) -> web.Response:
        conversation = Conversation(f"c-{next(self._ids)}", request[USER])
        self.conversations[conversation.id] = conversation
        return web.json_response({"conversation": {"id": conversation.id, "owner": conversation.owner}}, status=201)

    async def read(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        return web.json_response(
            {
                "conversation": {"id": conversation.id, "owner": conversation.owner},
                "transcript": conversation.transcript,
            }
        )

    async def list_turns(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        return web.json_response({"turns": [{"id": t.id, "state": t.state} for t in conversation.turns]})

    async def start_turn(self, request: web.Request) -> web.StreamResponse:
        conversation = self._conversation(request)
        ask = await request.json()
        if_busy = ask.get("if_busy", "refuse")
        if conversation.busy:
            if if_busy == "refuse":
                assert conversation.active is not None or conversation.waiting
                active = conversation.active or conversation.waiting[0]
                return web.json_response({"problem": "busy", "turn": active.id}, status=423)
            if if_busy in ("preempt", "revert"):
                for waiting in conversation.waiting:
                    waiting.stop = "stopped"
                if conversation.active is not None:
                    conversation.active.stop = "undone" if if_busy == "revert" else "stopped"
        turn = Turn(
            f"t-{next(self._ids)}",
            request[USER],
            str(ask.get("tag", "")),
            max(1, min(20, int(ask.get("lines", 2)))),
            int(ask.get("pause_ms", 10)) / 1000,
        )
        conversation.turns.append(turn)
        conversation.waiting.append(turn)
        if conversation.active is not None or len(conversation.waiting) > 1:
            turn.emit("turn.waiting")
        task = asyncio.ensure_future(self._run(conversation, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if request.query.get("wait") == "1":
            await asyncio.shield(task)
            lines = [line for line in conversation.transcript if line["turn"] == turn.id]
            return web.json_response({"turn": {"id": turn.id, "state": turn.state, "lines": lines}})
        return await self._stream(request, turn, after=0, first=True)

    def _turn(self, request: web.Request) -> Turn:
        conversation = self._conversation(request)
        turn = next((t for t in conversation.turns if t.id == request.match_info["tid"]), None)
        if turn is None:
            raise web.HTTPNotFound(text=json.dumps({"problem": "no such turn"}), content_type="application/json")
        return turn

    async def cancel(self, request: web.Request) -> web.Response:
        turn = self._turn(request)
        if not turn.ended:
            turn.stop = "stopped"
        return web.json_response({"turn": turn.id, "state": turn.state}, status=202)

    async def resume(self, request: web.Request) -> web.StreamResponse:
        turn = self._turn(request)
        if self.crash_after is not None:
            return web.json_response({"problem": "internal error"}, status=500)
        return await self._stream(request, turn, after=int(request.headers.get("Last-Event-ID", "0")), first=False)

    async def _run(self, conversation: Conversation, turn: Turn) -> None:
        async with conversation.lock:
            conversation.waiting.remove(turn)
            if turn.stop is not None:
                turn.state = "stopped"
                turn.emit("turn.stopped")
                return
            conversation.active, turn.state = turn, "active"
            turn.emit("turn.begin")
            for n in range(1, turn.lines + 1):
                await asyncio.sleep(turn.pause_s)
                if turn.stop is not None:
                    break
                line = {
                    "mid": f"{conversation.id}/{turn.id}/{n}",
                    "turn": turn.id,
                    "tag": turn.tag,
                    "text": f"line {n}",
                }
                conversation.transcript.append(line)
                turn.emit("turn.line", mid=line["mid"])
            if turn.stop == "undone":
                conversation.transcript[:] = [line for line in conversation.transcript if line["turn"] != turn.id]
            turn.state = turn.stop or "done"
            conversation.active = None
            turn.emit(ENDS[turn.state])

    async def _stream(self, request: web.Request, turn: Turn, *, after: int, first: bool) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await answer.prepare(request)
        sent = 0
        while True:
            for number, name, data in turn.events[after:]:
                if self.garbage_after is not None and sent == self.garbage_after:
                    await answer.write(b"event: turn.line\nid: 99\ndata: <html>Bad Gateway</html>\n\n")
                if first and self.crash_after is not None and sent == self.crash_after:
                    raise RuntimeError("Tandem failed mid-stream")
                if first and self.cut_after is not None and sent == self.cut_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return answer
                await answer.write(f"event: {name}\nid: {number}\ndata: {json.dumps(data)}\n\n".encode())
                after, sent = number, sent + 1
                if name in ENDS.values():
                    await answer.write_eof()
                    return answer
            await turn.changed.wait()


class TandemHttpService:
    """Tandem on a free port of 127.0.0.1, on an event loop in a thread of its own."""

    def __init__(self, api_keys: dict[str, str]) -> None:
        self.tandem = Tandem(api_keys)
        self._loop = asyncio.new_event_loop()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="tandem-http-service", daemon=True)
        self._ready: Future[int] = Future()
        self.port = 0

    def start(self) -> str:
        """Start it; return the base URL ``http://127.0.0.1:<port>/api/v1``."""
        self._thread.start()
        self.port = self._ready.result(START_TIMEOUT)
        return f"http://127.0.0.1:{self.port}{BASE}"

    def stop(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(START_TIMEOUT)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        runner = web.AppRunner(self.tandem.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except OSError as error:
            self._ready.set_exception(error)
            await runner.cleanup()
            return
        self._ready.set_result(runner.addresses[0][1])
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    """Serve Tandem in this process (for benchmarks): API keys from $TANDEM_API_KEYS (JSON user → key).

    Prints ``{"port": N}`` once it listens; serves until terminated.
    """
    import os
    import signal

    service = TandemHttpService(json.loads(os.environ["TANDEM_API_KEYS"]))
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    service.start()
    print(json.dumps({"port": service.port}), flush=True)
    signal.sigwait(stops)
    service.stop()


if __name__ == "__main__":
    main()
