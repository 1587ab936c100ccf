"""Following one run over its SSE stream: every event recorded, a cut stream resumed, a run cancelled on purpose.

The stream is read to the run's terminal event within ``answer_timeout`` for
the first event and ``run_timeout`` for the whole run (resumes included). A
stream cut before its run ended (``cut_after_events`` cuts it on purpose) is
resumed with ``Last-Event-ID`` when the protocol says so, at most
:data:`MAX_RESUMES` times; ``cancel_after_events`` asks the service to cancel
the run after that many of its events. Each event goes into the message log
with its arrival time; an event of another user's or run's counts as foreign.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from ..records.threads import HttpFailure, RunStatus
from ..records.websocket import MessageLog, ReceivedMessage, timeout_text
from .http_failures import RunFailed, body, check_start, error_text, field_missing, request_line, said
from .http_outcomes import RunProgress
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName
from .http_requests import answered, send
from .sse import SseEvent, SseParser
from .websocket_fields import FieldPathError, lookup, message_text, shorten

TYPES_KEPT = 12  # event types listed per operation in ``read``
MAX_RESUMES = 3  # per run
DRAIN_SECONDS = 0.25  # a stream left open after its terminal event is closed this long after it
_SEQ_AT_END = re.compile(r"(\d+)$")


class StreamedRuns:
    """The part of :class:`~stampede.workloads.http_agents.HttpAgentTool` that follows a run over its stream."""

    protocol: HttpProtocol
    answer_timeout: float
    run_timeout: float
    cut_after_events: int | None
    cancel_after_events: int | None
    raw_limit: int
    max_line_bytes: int
    refusal_statuses: Sequence[int]
    messages: MessageLog
    config_problems: list[str]
    _problem_paths: set[str]
    _http: aiohttp.ClientSession | None

    async def _stream_run(self, http: aiohttp.ClientSession, stream: RunProgress, values: dict[str, Any]) -> None:
        """Read the run's stream (resuming it when cut) to its terminal event; RunFailed otherwise."""
        attempt = stream.attempt
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.answer_timeout) as bound:
                await self._first_leg(http, stream, values, bound, started)
                while attempt.outcome is None:
                    await self._resume(http, stream, values, bound, started)
        except TimeoutError:
            if stream.events:
                done = " or ".join(self.protocol.terminal_events)
                raise RunFailed(
                    HttpFailure.TIMEOUT,
                    f"{stream.events} event(s) of the run, then no {done} within {timeout_text(self.run_timeout)} "
                    "of the request",
                ) from None
            raise RunFailed(
                HttpFailure.TIMEOUT,
                f"no event of the run within {timeout_text(self.answer_timeout)} of the request"
                + ("" if attempt.status is None else f" (the service answered HTTP {attempt.status})"),
            ) from None

    async def _first_leg(
        self,
        http: aiohttp.ClientSession,
        stream: RunProgress,
        values: dict[str, Any],
        bound: asyncio.Timeout,
        started: float,
    ) -> None:
        request = send(http, self.protocol, RequestName.RUN_STREAM, values, {"Accept": "text/event-stream"})
        async with await answered(request, RequestName.RUN_STREAM, self.protocol.base_url) as response:
            stream.attempt.status = response.status
            await check_start(response, stream.attempt, self.protocol, self.refusal_statuses)
            await self._read_events(response, stream, bound, started)

    async def _resume(
        self,
        http: aiohttp.ClientSession,
        stream: RunProgress,
        values: dict[str, Any],
        bound: asyncio.Timeout,
        started: float,
    ) -> None:
        """Resume a cut stream with Last-Event-ID; RunFailed (cut) when the protocol or the run cannot."""
        attempt = stream.attempt
        why = attempt.detail or "the stream ended"
        if not self.protocol.resume:
            raise RunFailed(HttpFailure.CUT, f"{why} before the run's terminal event (the protocol does not resume)")
        if attempt.run_id is None:
            raise RunFailed(HttpFailure.CUT, f"{why} before any event said the run's id, so it cannot be resumed")
        if stream.leg > MAX_RESUMES:
            raise RunFailed(HttpFailure.CUT, f"{why} before the run's terminal event, after {MAX_RESUMES} resumes")
        stream.leg += 1
        headers = {"Accept": "text/event-stream"}
        if stream.last_id is not None:
            headers["Last-Event-ID"] = stream.last_id
        request = send(http, self.protocol, RequestName.RESUME_STREAM, {**values, "run_id": attempt.run_id}, headers)
        async with await answered(request, RequestName.RESUME_STREAM, self.protocol.base_url) as response:
            if not 200 <= response.status < 300:
                answer = said(await body(response))
                line = request_line(self.protocol, RequestName.RESUME_STREAM)
                raise RunFailed(
                    HttpFailure.STREAM_ERROR,
                    f"{why}; the resume request ({line}) was answered HTTP {response.status}: {answer}",
                )
            attempt.detail = None
            await self._read_events(response, stream, bound, started)

    async def _read_events(
        self, response: aiohttp.ClientResponse, stream: RunProgress, bound: asyncio.Timeout, started: float
    ) -> None:
        """Read events to the run's terminal one; at a cut, note why in the attempt and return."""
        attempt, parser = stream.attempt, SseParser()
        parser.last_id = stream.last_id
        try:
            async for event in self._events(response, parser):
                stream.last_id = parser.last_id
                first = stream.events == 0
                self._on_event(event, stream)
                if first and stream.events:
                    bound.reschedule(started + self.run_timeout)
                if attempt.outcome is not None:
                    await self._drain(response)
                    return
                if stream.events == self.cut_after_events and stream.leg == 1:
                    response.close()
                    stream.cut_ns = time.monotonic_ns()
                    attempt.detail = f"Stampede cut the stream after {stream.events} events (cut_after_events)"
                    return
                if stream.events == self.cancel_after_events and stream.cancel is None:
                    stream.cancel = await self._cancel(stream)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as error:
            attempt.detail = f"the connection dropped mid-stream ({error_text(error)})"
        else:
            attempt.detail = "the stream ended" + (" in the middle of an event" if parser.pending else "")
        stream.cut_ns = time.monotonic_ns()

    async def _cancel(self, stream: RunProgress) -> int | str:
        """Ask the service to cancel the stream's run; its status, or why no answer came (bounded)."""
        assert self._http is not None
        if stream.attempt.run_id is None:
            return "not sent: no event said the run's id"
        values = {**stream.values, "run_id": stream.attempt.run_id}
        try:
            async with asyncio.timeout(self.answer_timeout):
                request = send(self._http, self.protocol, RequestName.CANCEL, values)
                async with await answered(request, RequestName.CANCEL, self.protocol.base_url) as answer:
                    await answer.read()
                    return answer.status
        except TimeoutError:
            return f"no answer within {timeout_text(self.answer_timeout)}"
        except RunFailed as failed:
            return failed.detail

    async def _events(self, response: aiohttp.ClientResponse, parser: SseParser) -> AsyncIterator[SseEvent]:
        content = response.content
        while True:
            try:
                line = await content.readuntil(b"\n", max_size=self.max_line_bytes)
            except ValueError:
                raise RunFailed(
                    HttpFailure.BAD_EVENT, f"an SSE line longer than {self.max_line_bytes} bytes (max_line_bytes)"
                ) from None
            if not line:
                return
            event = parser.line(line.decode("utf-8", errors="replace"))
            if event is not None:
                yield event

    def _on_event(self, sse: SseEvent, stream: RunProgress) -> None:
        """Log one event and apply it to the attempt; RunFailed for data that is not JSON, a path matching nothing."""
        protocol, attempt, agent = self.protocol, stream.attempt, stream.agent
        now = time.monotonic_ns()
        entry = ReceivedMessage(
            agent.agent,
            agent.user,
            attempt.stream,
            now,
            f"event: {sse.event}\nid: {sse.id}\ndata: {sse.data}"[: self.raw_limit],
            own_marker=attempt.marker,
            leg=stream.leg,
            type=sse.event,
        )
        self.messages.append(entry)
        if attempt.first_event_ns is None:
            attempt.first_event_ns = now
        try:
            data = json.loads(sse.data)
        except ValueError:
            raise RunFailed(
                HttpFailure.BAD_EVENT,
                f"the {sse.event} event's data is not JSON: {sse.data[:200]!r} (the protocol reads each event's "
                "data as JSON)",
            ) from None
        event = {"event": sse.event, "id": sse.id, "data": data}
        try:
            kind = str(lookup(event, protocol.events.type, what="events.type, the event's type", protocol="HTTP"))
            entry.type = kind
            ours = kind in protocol.run_events
            entry.seq = sequence_number(protocol.event_field(event, "seq", required=ours))
            entry.user_id = protocol.event_field(event, "user", required=ours)
            entry.marker = protocol.event_field(event, "marker", required=ours)
            entry.run_id = protocol.event_field(event, "run_id", required=ours)
            message = (
                protocol.event_field(event, "message_id", required=True) if kind in protocol.message_events else None
            )
        except FieldPathError as error:
            raise field_missing(error, self.config_problems, self._problem_paths) from None
        if not entry.mine:
            stream.foreign += 1  # another user's or run's event: the contamination check's finding
            return
        stream.events += 1
        if stream.cut_ns is not None:
            stream.resume_ns += now - stream.cut_ns
            stream.cut_ns = None
        if len(stream.types) < TYPES_KEPT:
            stream.types.append(kind)
        if entry.run_id is not None:
            attempt.run_id = str(entry.run_id)
        if kind in protocol.started_events and attempt.started_ns is None:
            attempt.started_ns = now
        elif message is not None:
            attempt.messages.append(str(message))
        elif kind in protocol.error_events:
            raise RunFailed(HttpFailure.STREAM_ERROR, f"the service sent {kind}: {message_text(data) or shorten(data)}")
        elif kind in protocol.terminal_events:
            attempt.outcome = self._end_of(kind, event)
            attempt.end_ns = now

    def _end_of(self, kind: str, event: Mapping[str, Any]) -> RunStatus:
        ending = self.protocol.terminal_events[kind]
        if ending is not None:
            return ending
        try:
            word = self.protocol.event_field(event, "status", required=True)
        except FieldPathError as error:
            raise field_missing(error, self.config_problems, self._problem_paths) from None
        status = self.protocol.status_of(word)
        if status is None:
            raise RunFailed(
                HttpFailure.BAD_EVENT,
                f"the {kind} event's status {word!r} is not one of the protocol's statuses "
                f"({', '.join(self.protocol.statuses)}): add it to statuses",
            )
        return status

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Let the stream end (so its connection goes back to the pool); close it if it stays open."""
        try:
            await asyncio.wait_for(response.content.read(), DRAIN_SECONDS)
        except (TimeoutError, aiohttp.ClientError):
            response.close()


def sequence_number(value: Any) -> Any:
    """A sequence number: a number as it is, a string ending in digits (``r-4:17``) as that number."""
    if isinstance(value, str) and (found := _SEQ_AT_END.search(value)):
        return int(found.group(1))
    return value
