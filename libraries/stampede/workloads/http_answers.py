"""Reading the JSON answers of an HTTP agent service: a thread's messages, its run list and its history.

Each function reads through the protocol's ``answers`` field paths and raises
ThreadReadFailed naming the path and what was there when the answer does not fit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..records.threads import ServiceRun, ThreadMessage
from .http_failures import ThreadReadFailed
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName
from .websocket_fields import FieldPathError, shorten


def state_messages(protocol: HttpProtocol, answer: Any) -> tuple[ThreadMessage, ...]:
    """The messages of a read_state answer."""
    try:
        listed = protocol.answer_field(answer, "state_messages", RequestName.READ_STATE)
    except FieldPathError as error:
        raise ThreadReadFailed(str(error)) from None
    return messages_of(protocol, listed, RequestName.READ_STATE)


def messages_of(protocol: HttpProtocol, listed: Any, request: str) -> tuple[ThreadMessage, ...]:
    """The messages of a message list (a state's, a history state's, a waited-for run's)."""
    if not isinstance(listed, list):
        raise ThreadReadFailed(
            f"The {request} answer's message list (answers.state_messages or wait_messages) is not a list: "
            f"{shorten(listed)}"
        )
    found = []
    for item in listed:
        try:
            message_id = protocol.answer_field(item, "message_id", f"{request} (a message)")
        except FieldPathError as error:
            raise ThreadReadFailed(str(error)) from None
        run_id = protocol.answer_field(item, "message_run_id", request, required=False)
        marker = protocol.answer_field(item, "message_marker", request, required=False)
        found.append(
            ThreadMessage(
                str(message_id), None if run_id is None else str(run_id), None if marker is None else str(marker)
            )
        )
    return tuple(found)


def service_runs(protocol: HttpProtocol, answer: Any, thread: str) -> Iterator[ServiceRun]:
    """The runs of a list_runs answer for ``thread``."""
    try:
        listed = protocol.answer_field(answer, "runs", RequestName.LIST_RUNS)
        if not isinstance(listed, list):
            raise ThreadReadFailed(f"The list_runs answer's run list (answers.runs) is not a list: {shorten(listed)}")
        for run in listed:
            word = protocol.answer_field(run, "run_status", f"{RequestName.LIST_RUNS} (a run)")
            run_id = protocol.answer_field(run, "run_id", f"{RequestName.LIST_RUNS} (a run)")
            marker = protocol.answer_field(run, "run_marker", RequestName.LIST_RUNS, required=False)
            yield ServiceRun(
                str(run_id),
                thread,
                protocol.status_of(word),
                word,
                marker=None if marker is None else str(marker),
                started_at=_run_time(protocol, run, "run_started_at"),
                ended_at=_run_time(protocol, run, "run_ended_at"),
            )
    except FieldPathError as error:
        raise ThreadReadFailed(str(error)) from None


def history(protocol: HttpProtocol, answer: Any) -> tuple[tuple[ThreadMessage, ...], ...]:
    """The messages of each state of a read_history answer."""
    assert protocol.answers.history_states is not None
    try:
        states = protocol.answer_field(answer, "history_states", RequestName.READ_HISTORY)
        if not isinstance(states, list):
            raise ThreadReadFailed(f"The read_history answer's states are not a list: {shorten(states)}")
        return tuple(
            messages_of(
                protocol,
                protocol.answer_field(state, "history_messages", f"{RequestName.READ_HISTORY} (a state)"),
                RequestName.READ_HISTORY,
            )
            for state in states
        )
    except FieldPathError as error:
        raise ThreadReadFailed(str(error)) from None


def _run_time(protocol: HttpProtocol, run: Any, name: str) -> float | None:
    """A time of a listed run in seconds (``answers.<name>``); None where the run list does not give it."""
    value = protocol.answer_field(run, name, RequestName.LIST_RUNS, required=False)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    raise ThreadReadFailed(
        f"The list_runs answer's answers.{name} ({getattr(protocol.answers, name)!r}) is "
        f"{shorten(value)}, not a time: give the path of a number of seconds or an ISO 8601 time, or null"
    )
