"""Where an HTTP agent service's answers and SSE events hold what Stampede reads, and the reference service's words.

Each field is a dotted path (:mod:`~stampede.workloads.websocket_fields`); None
says the service does not give it. The ``REFERENCE_*`` mappings are the words
of the bundled reference service: the events that end a run, its status words
and its word for each policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records.threads import RunPolicy, RunStatus


@dataclass(frozen=True)
class AnswerPaths:
    """Where the JSON answers hold what the tool reads (dotted field paths; None: the service does not say).

    ``thread_id`` is in the create answer; ``state_messages`` (a list of
    messages) in the state answer; ``history_states`` (a list of states, each
    with its messages at ``history_messages``) in the history answer;
    ``message_id``, ``message_run_id`` and ``message_marker`` in each message;
    ``runs`` (a list) in the run list answer, ``run_id`` and ``run_status`` in
    each of its runs, and where the service gives them ``run_marker`` (the
    marker the run was started with), ``run_started_at`` and ``run_ended_at``
    (when it became the thread's active run and when it ended: a number of
    seconds on the service's clock, or an ISO 8601 time; a run without them
    leaves them unknown); ``wait_run_id``, ``wait_status`` and ``wait_messages`` in
    the answer of a run waited for.
    """

    thread_id: str = "thread_id"
    state_messages: str = "state.messages"
    history_states: str | None = "states"
    history_messages: str = "messages"
    message_id: str = "id"
    message_run_id: str | None = "run_id"
    message_marker: str | None = "marker"
    runs: str = "runs"
    run_id: str = "run_id"
    run_status: str = "status"
    run_marker: str | None = "marker"
    run_started_at: str | None = "started_at"
    run_ended_at: str | None = "ended_at"
    wait_run_id: str | None = "run_id"
    wait_status: str = "status"
    wait_messages: str | None = "messages"


@dataclass(frozen=True)
class EventPaths:
    """Where an SSE event, read as ``{"event", "id", "data"}``, holds each field (None: the service does not send it).

    ``message_id`` is read from message events; ``status`` from a terminal
    event mapped to null in ``terminal_events`` (its status word says how the run ended).
    """

    type: str = "event"
    seq: str | None = "data.seq"
    run_id: str | None = "data.run_id"
    thread_id: str | None = "data.thread_id"
    user: str | None = "data.user_id"
    marker: str | None = "data.marker"
    message_id: str | None = "data.message.id"
    status: str | None = "data.status"


REFERENCE_TERMINAL = {
    "run_completed": RunStatus.SUCCESS,
    "run_interrupted": RunStatus.INTERRUPTED,
    "run_rolled_back": RunStatus.ROLLED_BACK,
    "run_failed": RunStatus.FAILED,
}
REFERENCE_STATUSES = {
    "pending": RunStatus.PENDING,
    "running": RunStatus.RUNNING,
    "success": RunStatus.SUCCESS,
    "interrupted": RunStatus.INTERRUPTED,
    "rolled_back": RunStatus.ROLLED_BACK,
    "error": RunStatus.FAILED,
}
REFERENCE_POLICIES = {policy: policy.value for policy in RunPolicy}
