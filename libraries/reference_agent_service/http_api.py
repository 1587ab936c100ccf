"""The HTTP + SSE side of the service: threads, runs streamed as server-sent events, JSON errors, bearer auth.

The API is described in ``docs/REFERENCE_HTTP_API.md``; the runs themselves
are coordinated by :mod:`reference_agent_service.thread_runs`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .auth import TokenError, check_user_id, verify_token
from .bugs import Bug
from .errors import ConfigurationError
from .store import DATABASE_ERRORS
from .thread_runs import Run, RunInput, ServiceClosing, Strategy, ThreadBusy, ThreadRuns
from .threads import ThreadState, ThreadStore

log = logging.getLogger(__package__)

KEEPALIVE_SECONDS = 5.0
KEEPALIVE = b": keep-alive\n\n"
MAX_METADATA_BYTES = 64 * 1024
_USER = web.RequestKey("user_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than 2xx: ``{"error": code, "message": message, **extra}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": code, "message": message, **extra}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


def _whole(given: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = given.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, "bad_request", f"input.{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def run_input(body: dict[str, Any]) -> RunInput:
    """The run a request body asks for, or ApiError(400) saying what to fix."""
    given = body.get("input")
    if not isinstance(given, dict):
        raise ApiError(400, "bad_request", 'the body needs "input": {"marker": "...", "text": ..., "steps": ...}')
    marker, text = given.get("marker"), given.get("text", "")
    try:
        marker = check_user_id(str(marker) if isinstance(marker, str) else "")  # the same 1-200 characters rule
    except ConfigurationError:
        raise ApiError(400, "bad_request", f"input.marker must be 1 to 200 characters, got {marker!r}") from None
    if not isinstance(text, str):
        raise ApiError(400, "bad_request", f"input.text must be a string, got {text!r}")
    strategy = body.get("multitask_strategy", Strategy.REJECT.value)
    if strategy not in {member.value for member in Strategy}:
        known = ", ".join(member.value for member in Strategy)
        raise ApiError(400, "bad_request", f"multitask_strategy must be one of {known}, got {strategy!r}")
    return RunInput(
        marker=marker,
        text=text,
        steps=_whole(given, "steps", 3, 1, 50),
        step_ms=_whole(given, "step_ms", 20, 0, 10_000),
        strategy=Strategy(strategy),
    )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body


class HttpApi:
    """The routes, on one aiohttp application; :meth:`close` ends open streams and stops listening, bounded."""

    def __init__(
        self,
        secret: str,
        threads: ThreadStore,
        runs: ThreadRuns,
        bugs: frozenset[Bug],
        *,
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self.bugs = bugs
        self._secret = secret
        self._threads = threads
        self._runs = runs
        self._describe_error = describe_error
        self._runner: web.AppRunner | None = None
        app = web.Application(middlewares=[self._answer_errors, self._authenticate])
        app.router.add_post("/threads", self._create_thread)
        app.router.add_get("/threads/{thread_id}", self._read_thread)
        app.router.add_get("/threads/{thread_id}/history", self._read_history)
        app.router.add_get("/threads/{thread_id}/runs", self._list_runs)
        app.router.add_post("/threads/{thread_id}/runs/stream", self._stream_run)
        app.router.add_post("/threads/{thread_id}/runs/wait", self._wait_run)
        app.router.add_post("/threads/{thread_id}/runs/{run_id}/cancel", self._cancel_run)
        app.router.add_get("/threads/{thread_id}/runs/{run_id}/stream", self._resume_stream)
        self.app = app

    async def start(self, host: str, port: int, shutdown_timeout: float) -> int:
        """Listen; return the port (OSError if it cannot)."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=shutdown_timeout)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening and wait (bounded by the shutdown timeout) for requests in flight; streams end first."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # Middleware

    @web.middleware
    async def _answer_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPException as error:  # no such route or method: still JSON
            code = error.reason.lower().replace(" ", "_")
            return ApiError(error.status, code, f"{request.method} {request.path}: {error.reason}").response()
        except DATABASE_ERRORS as error:
            log.warning("%s %s failed: %s", request.method, request.path, self._describe_error(error))
            return ApiError(
                503, "service_unavailable", "the service could not reach its database; try again"
            ).response()

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "no bearer token: send Authorization: Bearer <JWT>")
        try:
            request[_USER] = verify_token(self._secret, token.strip()).user_id
        except TokenError as error:
            raise ApiError(401, "unauthorized", f"token refused: {error.reason}") from None
        return await handler(request)

    # Threads

    async def _thread(self, request: web.Request, *, read: bool = False) -> ThreadState:
        """The thread of the path if it is the user's; ApiError(404) alike for another user's and a missing one."""
        thread = await self._threads.get(request.match_info["thread_id"])
        # The foreign_thread_readable bug: reads only ask whether the thread exists.
        anyones = read and Bug.FOREIGN_THREAD_READABLE in self.bugs
        if thread is None or (thread.user_id != request[_USER] and not anyones):
            raise ApiError(404, "thread_not_found", "no such thread of yours")
        return thread

    async def _create_thread(self, request: web.Request) -> web.Response:
        metadata = (await _body(request)).get("metadata", {})
        if not isinstance(metadata, dict) or len(json.dumps(metadata)) > MAX_METADATA_BYTES:
            raise ApiError(400, "bad_request", f"metadata must be a JSON object of at most {MAX_METADATA_BYTES} bytes")
        thread = await self._threads.create(f"thread-{uuid.uuid4().hex}", request[_USER], metadata)
        return web.json_response(thread.describe(), status=201)

    async def _read_thread(self, request: web.Request) -> web.Response:
        return web.json_response((await self._thread(request, read=True)).describe())

    async def _read_history(self, request: web.Request) -> web.Response:
        thread = await self._thread(request, read=True)
        return web.json_response(
            {"thread_id": thread.thread_id, "states": await self._threads.history(thread.thread_id)}
        )

    # Runs

    async def _list_runs(self, request: web.Request) -> web.Response:
        thread = await self._thread(request, read=True)
        return web.json_response({"runs": await self._threads.runs(thread.thread_id)})

    async def _admit(self, request: web.Request) -> Run:
        thread = await self._thread(request)
        wanted = run_input(await _body(request))
        try:
            return await self._runs.request(thread.thread_id, request[_USER], wanted)
        except ThreadBusy as busy:
            raise ApiError(
                409, "thread_busy", "the thread has an active run", active_run_id=busy.active_run_id
            ) from None
        except ServiceClosing:
            raise ApiError(503, "service_unavailable", "the service is shutting down") from None

    async def _stream_run(self, request: web.Request) -> web.StreamResponse:
        return await self._send_events(request, await self._admit(request), 0)

    async def _wait_run(self, request: web.Request) -> web.Response:
        run = await self._admit(request)
        await run.done.wait()  # bounded: a run takes at most steps × step_ms, and the shutdown ends it
        return web.json_response(
            {"run_id": run.run_id, "thread_id": run.thread_id, "status": run.status, "messages": run.messages}
        )

    def _run(self, request: web.Request, thread: ThreadState) -> Run:
        run = self._runs.find(thread.thread_id, request.match_info["run_id"])
        if run is None:
            raise ApiError(404, "run_not_found", "no such run on this thread (or it ended too long ago)")
        return run

    async def _cancel_run(self, request: web.Request) -> web.Response:
        run = self._run(request, await self._thread(request))
        status = await self._runs.cancel(run)
        return web.json_response({"run_id": run.run_id, "status": status}, status=202)

    async def _resume_stream(self, request: web.Request) -> web.StreamResponse:
        run = self._run(request, await self._thread(request))
        last = request.headers.get("Last-Event-ID", "").strip()
        start = run.log.index_after(last) if last else 0
        if start is None:
            raise ApiError(400, "unknown_event_id", f"run {run.run_id} sent no event with id {last!r}")
        return await self._send_events(request, run, start)

    @staticmethod
    async def _send_events(request: web.Request, run: Run, start: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            async for event in run.log.follow(start, KEEPALIVE_SECONDS):
                await response.write(KEEPALIVE if event is None else event.sse())
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away; the run goes on and can be followed again
        return response
