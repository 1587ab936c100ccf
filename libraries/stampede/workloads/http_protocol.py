"""How Stampede talks to an HTTP + SSE agent service: configuration, so a user can point it at their own service.

An :class:`HttpProtocol` says where the service is (``base_url``), how a user
authenticates (``auth``: a bearer header, another header with a template, a
query parameter, or none), which requests make a thread, start a run
(streamed or waited for) and read a thread (method, path and JSON body, each a
template with placeholders), where the fields a checker needs sit in the
answers and in the SSE events (dotted field paths), which events mean a run
was queued, started, appended a message or ended and how (onto
:class:`~stampede.records.threads.RunStatus`), which statuses refuse a
concurrent run, and whether a cut stream resumes with ``Last-Event-ID``. Its
defaults are the bundled reference service's HTTP API
(``docs/REFERENCE_HTTP_API.md``; :func:`reference_service`).

Templates are those of the WebSocket protocol
(:mod:`~stampede.workloads.websocket_templates`) with the placeholders of
:data:`HTTP_PLACEHOLDERS`: ``{thread}`` is the thread id the service gave,
``{marker}`` the operation's own marker, ``{policy}`` the service's word for the
launch's policy (``policies``), ``{run_id}`` the run a cancel or a resume is for.
Placeholders in a path are URL-encoded.

An SSE event is read as ``{"event": <its event name>, "id": <its id>, "data":
<its data, parsed as JSON>}``, and the ``events`` paths point into that:
``event`` or ``data.kind`` for its type, ``data.seq`` or ``id`` for its sequence
number (an id such as ``r-4:17`` counts as 17: the number it ends with). Each of
``run_id``, ``user``, ``marker`` and ``seq`` must be in every event of a run
(those named in the ``*_events`` keys) unless its path is null.

Example, as JSON (every key is optional; ``base_url`` defaults to the agent service under test)::

    {"base_url": "https://agents.example.com/api", "auth": "header",
     "header_name": "X-Api-Key", "header_value": "{token}",
     "requests": {"create_thread": {"method": "POST", "path": "/conversations", "body": {"owner": "{user}"}},
                  "run_stream": {"method": "POST", "path": "/conversations/{thread}/turns",
                                 "body": {"prompt": "{text}", "tag": "{marker}", "on_busy": "{policy}"}},
                  "run_wait": null, "read_history": null, "cancel": null,
                  "read_state": {"method": "GET", "path": "/conversations/{thread}"},
                  "list_runs": {"method": "GET", "path": "/conversations/{thread}/turns"},
                  "resume_stream": {"method": "GET", "path": "/conversations/{thread}/turns/{run_id}/events"}},
     "answers": {"thread_id": "id", "state_messages": "transcript", "message_id": "mid",
                 "message_run_id": "turn", "message_marker": "tag", "runs": "turns", "run_id": "id",
                 "run_status": "state"},
     "events": {"seq": "id", "run_id": "data.turn", "user": "data.owner", "marker": "data.tag",
                "thread_id": null, "message_id": "data.mid"},
     "started_events": ["turn.begin"], "queued_events": ["turn.waiting"], "message_events": ["turn.output"],
     "terminal_events": {"turn.done": "success", "turn.stopped": "interrupted", "turn.undone": "rolled_back",
                         "turn.crashed": "failed"},
     "statuses": {"waiting": "pending", "active": "running", "done": "success", "stopped": "interrupted",
                  "undone": "rolled_back", "crashed": "failed"},
     "policies": {"reject": "refuse", "enqueue": "queue", "interrupt": "preempt", "rollback": "revert"},
     "refusal_statuses": [423], "messages_per_run": 2, "resume": true}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self, TypeVar
from urllib.parse import quote

from ..errors import ConfigurationError
from ..records.threads import RunPolicy, RunStatus
from ..services.tokens import TokenSpec
from .websocket_fields import lookup, lookup_optional
from .websocket_protocol import read_protocol
from .websocket_templates import PLACEHOLDERS, RESUME_ONLY, check_placeholders, compiled, placeholders_in, render_text

HTTP_PLACEHOLDERS = frozenset((PLACEHOLDERS - RESUME_ONLY) | {"policy", "run_id"})
"""What the templates of an HTTP protocol may use (see the module documentation)."""
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_WHERE = "HTTP protocol"


class HttpAuth(StrEnum):
    """Where a user's token goes on every request."""

    BEARER = "bearer"
    """``Authorization: Bearer <token>``."""
    HEADER = "header"
    """``<header_name>: <header_value>`` (a template: ``{token}`` where the token goes)."""
    QUERY = "query"
    """A query parameter of every request's URL (``?<query_param>=<token>``)."""
    NONE = "none"
    """No token."""


class RequestName(StrEnum):
    """The requests an HTTP protocol describes."""

    CREATE_THREAD = "create_thread"
    RUN_STREAM = "run_stream"
    RUN_WAIT = "run_wait"
    READ_STATE = "read_state"
    READ_HISTORY = "read_history"
    LIST_RUNS = "list_runs"
    CANCEL = "cancel"
    RESUME_STREAM = "resume_stream"


_NEEDED = frozenset({RequestName.CREATE_THREAD, RequestName.READ_STATE})
_NO_THREAD = frozenset({"thread", "run_id"})
_PER_RUN = frozenset({RequestName.CANCEL, RequestName.RESUME_STREAM})
_REFERENCE_RUN = {
    "input": {"marker": "{marker}", "text": "{text}", "steps": 3, "step_ms": 20},
    "multitask_strategy": "{policy}",
}


@dataclass(frozen=True)
class RequestTemplate:
    """One request: its method, its path below the base URL, and its JSON body (None: no body)."""

    method: str
    path: str
    body: Any = None
    _path_names: frozenset[str] = field(init=False, repr=False, compare=False)
    _body: Callable[[Mapping[str, Any]], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path_names", frozenset(placeholders_in(self.path)))
        object.__setattr__(self, "_body", compiled(self.body))

    def rendered(self, values: Mapping[str, Any]) -> tuple[str, str, Any]:
        """The method, the path (its placeholders URL-encoded) and the body for ``values``."""
        path = self.path
        if self._path_names:
            path = render_text(path, {name: quote(str(values[name]), safe="") for name in self._path_names})
        return self.method, path, self._body(values)

    @classmethod
    def parse(cls, value: Any, name: str) -> Self:
        where = f"{_WHERE}: requests.{name}"
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f'{where} must be an object such as {{"method": "POST", "path": "/threads", "body": {{}}}}, '
                f"or null, got {value!r}"
            )
        unknown = sorted(set(value) - {"method", "path", "body"})
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known keys are body, method, path"
            )
        method = str(value.get("method", "")).strip().upper()
        if method not in METHODS:
            raise ConfigurationError(f"{where}.method must be one of {', '.join(METHODS)}, got {value.get('method')!r}")
        path = value.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"{where}.path must be a path starting with '/', got {path!r}")
        return cls(method, path, copy.deepcopy(value.get("body")))


REFERENCE_REQUESTS: Mapping[str, RequestTemplate | None] = {
    RequestName.CREATE_THREAD: RequestTemplate("POST", "/threads", {}),
    RequestName.RUN_STREAM: RequestTemplate("POST", "/threads/{thread}/runs/stream", _REFERENCE_RUN),
    RequestName.RUN_WAIT: RequestTemplate("POST", "/threads/{thread}/runs/wait", _REFERENCE_RUN),
    RequestName.READ_STATE: RequestTemplate("GET", "/threads/{thread}"),
    RequestName.READ_HISTORY: RequestTemplate("GET", "/threads/{thread}/history"),
    RequestName.LIST_RUNS: RequestTemplate("GET", "/threads/{thread}/runs"),
    RequestName.CANCEL: RequestTemplate("POST", "/threads/{thread}/runs/{run_id}/cancel"),
    RequestName.RESUME_STREAM: RequestTemplate("GET", "/threads/{thread}/runs/{run_id}/stream"),
}


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


@dataclass(frozen=True)
class HttpProtocol:
    """How to talk to one HTTP + SSE agent service; the defaults are the reference service's HTTP API."""

    base_url: str
    auth: HttpAuth = HttpAuth.BEARER
    header_name: str = "Authorization"
    header_value: str = "Bearer {token}"
    query_param: str = "token"
    token: TokenSpec = field(default_factory=TokenSpec)
    """The claims of the JWT Stampede signs for each user (unless the suite gives each user's token)."""
    requests: Mapping[str, RequestTemplate | None] = field(default_factory=lambda: dict(REFERENCE_REQUESTS))
    answers: AnswerPaths = field(default_factory=AnswerPaths)
    events: EventPaths = field(default_factory=EventPaths)
    queued_events: tuple[str, ...] = ("run_queued",)
    started_events: tuple[str, ...] = ("run_started",)
    message_events: tuple[str, ...] = ("message_appended",)
    terminal_events: Mapping[str, RunStatus | None] = field(default_factory=lambda: dict(REFERENCE_TERMINAL))
    """Each event that ends a run, and how (None: its ``events.status`` word says, through ``statuses``)."""
    error_events: tuple[str, ...] = ()
    """Events that say the stream failed (not a run's end): the request ends as a stream error."""
    statuses: Mapping[str, RunStatus] = field(default_factory=lambda: dict(REFERENCE_STATUSES))
    """The service's status words (run list, wait answer) and what they mean."""
    policies: Mapping[RunPolicy, str] = field(default_factory=lambda: dict(REFERENCE_POLICIES))
    """The service's word for each policy (the ``{policy}`` placeholder)."""
    refusal_statuses: tuple[int, ...] = (409,)
    messages_per_run: int | str | None = "input.steps"
    """How many messages a run that succeeds appends: a number, null (the service does not say), or a field
    path into the run request's body (the run input template says it)."""
    resume: bool = True
    """Whether a stream cut before its run ended is resumed (``resume_stream`` with ``Last-Event-ID``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not re.match(r"https?://[^/?#\s]+", self.base_url):
            raise ConfigurationError(
                f"{_WHERE}: base_url must start with http:// or https:// and name a host, got {self.base_url!r}"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        try:
            object.__setattr__(self, "auth", HttpAuth(str(self.auth).strip().lower()))
        except ValueError:
            raise ConfigurationError(
                f"{_WHERE}: auth must be one of {', '.join(a.value for a in HttpAuth)}, got {self.auth!r}"
            ) from None
        if self.auth is HttpAuth.HEADER and not str(self.header_name).strip():
            raise ConfigurationError(f"{_WHERE}: auth 'header' needs a header_name")
        if self.auth is HttpAuth.QUERY and not str(self.query_param).strip():
            raise ConfigurationError(f"{_WHERE}: auth 'query' needs a query_param")
        self._check_requests()
        self._check_events()
        if self.resume and self.requests.get(RequestName.RESUME_STREAM) is None:
            raise ConfigurationError(
                f"{_WHERE}: resume is on, but requests.resume_stream is null: give the request that resumes a "
                'run\'s stream (it is sent with Last-Event-ID), or set "resume" to false'
            )
        statuses = [*self.refusal_statuses]
        if not statuses or not all(isinstance(s, int) and not isinstance(s, bool) and 400 <= s < 600 for s in statuses):
            raise ConfigurationError(
                f"{_WHERE}: refusal_statuses must be a list of HTTP error statuses (400-599), such as [409], "
                f"got {self.refusal_statuses!r}"
            )
        object.__setattr__(self, "messages_per_run", self._messages_per_run())

    def _check_requests(self) -> None:
        for name in RequestName:
            template = self.requests.get(name)
            if template is None:
                if name in _NEEDED:
                    raise ConfigurationError(f"{_WHERE}: requests.{name} is needed (it cannot be null)")
                continue
            allowed = HTTP_PLACEHOLDERS
            if name is RequestName.CREATE_THREAD:
                allowed = HTTP_PLACEHOLDERS - _NO_THREAD
            elif name not in _PER_RUN:
                allowed = HTTP_PLACEHOLDERS - {"run_id"}
            for part, value in (("path", template.path), ("body", template.body)):
                check_placeholders(value, allowed, where=f"{_WHERE}: requests.{name}.{part}")
        if self.requests.get(RequestName.RUN_STREAM) is None and self.requests.get(RequestName.RUN_WAIT) is None:
            raise ConfigurationError(f"{_WHERE}: requests.run_stream and requests.run_wait cannot both be null")
        if self.auth is HttpAuth.HEADER:
            check_placeholders(self.header_value, HTTP_PLACEHOLDERS - _NO_THREAD, where=f"{_WHERE}: header_value")

    def _check_events(self) -> None:
        for name in ("queued_events", "started_events", "message_events", "error_events"):
            object.__setattr__(self, name, _event_names(getattr(self, name), name))
        if not self.terminal_events:
            raise ConfigurationError(
                f"{_WHERE}: terminal_events must name at least one event that ends a run, and how "
                '(e.g. {"run_completed": "success"})'
            )
        if None in self.terminal_events.values() and self.events.status is None:
            raise ConfigurationError(
                f"{_WHERE}: terminal_events leaves a run's end to its status word, but events.status is null: "
                "give the field path of the status in such an event"
            )
        named: dict[str, str] = {}
        for key in ("queued_events", "started_events", "message_events", "error_events", "terminal_events"):
            for event in getattr(self, key):
                if event in named:
                    raise ConfigurationError(f"{_WHERE}: the event {event!r} is in both {named[event]} and {key}")
                named[event] = key

    def _messages_per_run(self) -> int | None:
        value = self.messages_per_run
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        run = self.requests.get(RequestName.RUN_STREAM) or self.requests.get(RequestName.RUN_WAIT)
        if isinstance(value, str) and run is not None:
            found = lookup_optional(run.body, value)
            if isinstance(found, int) and not isinstance(found, bool) and found >= 0:
                return found
            raise ConfigurationError(
                f"{_WHERE}: messages_per_run is the path {value!r} into the run request's body, but the body has "
                f"{'nothing' if found is None else repr(found)} there, not a number: give the number of messages a "
                "run appends, or null if the service does not say"
            )
        raise ConfigurationError(
            f"{_WHERE}: messages_per_run must be a whole number of at least 0, null, or a field path into the run "
            f"request's body, got {value!r}"
        )

    # Reading events and answers

    @property
    def run_events(self) -> frozenset[str]:
        """Every event of a run: these must carry the run's fields."""
        return frozenset((*self.queued_events, *self.started_events, *self.message_events, *self.terminal_events))

    def request(self, name: RequestName) -> RequestTemplate | None:
        return self.requests.get(name)

    def needs_token(self) -> bool:
        """Whether a user needs a token: the auth mode, or a template that uses ``{token}``."""
        if self.auth is not HttpAuth.NONE:
            return True
        return any(
            "token" in placeholders_in(template.path) | placeholders_in(template.body)
            for template in self.requests.values()
            if template is not None
        )

    def headers(self, token: str | None, values: Mapping[str, Any]) -> dict[str, str]:
        """The auth header(s) of a request."""
        if self.auth is HttpAuth.BEARER:
            return {"Authorization": f"Bearer {token}"}
        if self.auth is HttpAuth.HEADER:
            return {self.header_name: render_text(self.header_value, values)}
        return {}

    def query(self, token: str | None) -> dict[str, str]:
        return {self.query_param: str(token)} if self.auth is HttpAuth.QUERY else {}

    def event_field(self, event: Mapping[str, Any], name: str, *, required: bool) -> Any:
        """Field ``name`` of an event (``events.<name>``); FieldPathError if ``required`` and it matches nothing."""
        path = getattr(self.events, name)
        if path is None:
            return None
        if required:
            return lookup(event, path, what=f"events.{name}, in every {event.get('event')} event", protocol="HTTP")
        return lookup_optional(event, path)

    def answer_field(self, answer: Any, name: str, request: str, *, required: bool = True) -> Any:
        path = getattr(self.answers, name)
        if path is None:
            return None
        if required:
            return lookup(answer, path, what=f"answers.{name}, in the {request} answer", protocol="HTTP")
        return lookup_optional(answer, path)

    def status_of(self, word: Any) -> RunStatus | None:
        """The RunStatus a service status word stands for (None: a word the protocol does not map)."""
        return self.statuses.get(str(word)) if word is not None else None

    def describe(self) -> dict[str, str]:
        run = self.requests.get(RequestName.RUN_STREAM) or self.requests.get(RequestName.RUN_WAIT)
        assert run is not None, "checked when loaded"
        return {
            "base URL": self.base_url,
            "auth": self.auth.value if self.auth is not HttpAuth.HEADER else f"header {self.header_name}",
            "run request": f"{run.method} {run.path}",
            "terminal events": ", ".join(f"{e} ({s or 'its status'})" for e, s in self.terminal_events.items()),
            "refusal statuses": ", ".join(map(str, self.refusal_statuses)),
            "messages per run": "not said" if self.messages_per_run is None else str(self.messages_per_run),
            "resumes a cut stream": "yes, with Last-Event-ID" if self.resume else "no",
        }

    # Loading

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_url: str | None = None) -> Self:
        """A protocol from a JSON-like dict: reference defaults for what it leaves out; ``base_url`` overrides it."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"An HTTP protocol must be a JSON object, got {type(data).__name__}")
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"{_WHERE}: unknown key(s) {', '.join(map(repr, unknown))}; known keys are {', '.join(sorted(known))}"
            )
        values = dict(data)
        if base_url is not None:
            values["base_url"] = base_url
        if "base_url" not in values:
            raise ConfigurationError(
                f"{_WHERE}: base_url is missing and no agent service is in use: give the service's http:// or "
                "https:// address (as the tool's base_url, or the protocol's base_url)"
            )
        return cls(**_converted(values))

    @classmethod
    def load(cls, source: Mapping[str, Any] | str, *, base_url: str | None = None) -> Self:
        """A protocol from a dict, a JSON text (starting with ``{``) or the path of a JSON file."""
        return cls.from_dict(read_protocol(source, kind="HTTP"), base_url=base_url)


def reference_service(base_url: str) -> HttpProtocol:
    """The bundled reference agent service's HTTP API (``docs/REFERENCE_HTTP_API.md``) at ``base_url``."""
    return HttpProtocol(base_url=base_url)


def _converted(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each JSON value turned into what the protocol holds (checked, naming the key)."""
    for name in ("header_name", "header_value", "query_param"):
        if name in values and not isinstance(values[name], str):
            raise ConfigurationError(f"{_WHERE}: {name} must be a string, got {values[name]!r}")
    if "token" in values:
        values["token"] = TokenSpec.from_dict(values["token"], protocol="HTTP")
    if "requests" in values:
        values["requests"] = _requests(values["requests"])
    if "answers" in values:
        values["answers"] = _paths(values["answers"], "answers", AnswerPaths)
    if "events" in values:
        values["events"] = _paths(values["events"], "events", EventPaths)
    if "terminal_events" in values:
        values["terminal_events"] = _terminal(values["terminal_events"])
    if "statuses" in values:
        values["statuses"] = _statuses(values["statuses"])
    if "policies" in values:
        values["policies"] = _policies(values["policies"])
    if "refusal_statuses" in values:
        given = values["refusal_statuses"]
        values["refusal_statuses"] = tuple(given) if isinstance(given, (list, tuple)) else (given,)
    if "resume" in values and not isinstance(values["resume"], bool):
        raise ConfigurationError(f"{_WHERE}: resume must be true or false, got {values['resume']!r}")
    return values


def _requests(value: Any) -> dict[str, RequestTemplate | None]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{_WHERE}: requests must be an object of request templates, got {value!r}")
    known = [name.value for name in RequestName]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigurationError(
            f"{_WHERE}: unknown request(s) {', '.join(map(repr, unknown))} under requests; known requests are "
            f"{', '.join(known)}"
        )
    merged = dict(REFERENCE_REQUESTS)
    for name, template in value.items():
        merged[name] = None if template is None else RequestTemplate.parse(template, name)
    return merged


_Paths = TypeVar("_Paths", AnswerPaths, EventPaths)


def _paths(value: Any, name: str, kind: type[_Paths]) -> _Paths:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{_WHERE}: {name} must be an object of field paths, got {value!r}")
    specs = {spec.name: spec for spec in fields(kind)}
    unknown = sorted(set(value) - set(specs))
    if unknown:
        raise ConfigurationError(
            f"{_WHERE}: unknown field(s) {', '.join(map(repr, unknown))} under {name}; known fields are "
            f"{', '.join(specs)}"
        )
    for key, path in value.items():
        nullable = "None" in str(specs[key].type)
        if path is None and nullable:
            continue
        if not isinstance(path, str) or not all(path.split(".")):
            raise ConfigurationError(
                f"{_WHERE}: {name}.{key} must be a dotted field path such as 'data.run_id'"
                f"{' (or null when the service has none)' if nullable else ''}, got {path!r}"
            )
    return kind(**value)


def _run_status(value: Any, where: str) -> RunStatus:
    try:
        return RunStatus(str(value).strip().lower())
    except ValueError:
        raise ConfigurationError(
            f"{_WHERE}: {where} must be one of {', '.join(s.value for s in RunStatus)}, got {value!r}"
        ) from None


def _terminal(value: Any) -> dict[str, RunStatus | None]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f'{_WHERE}: terminal_events must be an object such as {{"run_completed": "success"}}, got {value!r}'
        )
    return {
        str(event): None if status is None else _run_status(status, f"terminal_events.{event}")
        for event, status in value.items()
    }


def _statuses(value: Any) -> dict[str, RunStatus]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f'{_WHERE}: statuses must be an object such as {{"done": "success"}}, got {value!r}')
    return {str(word): _run_status(status, f"statuses.{word}") for word, status in value.items()}


def _policies(value: Any) -> dict[RunPolicy, str]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f'{_WHERE}: policies must be an object such as {{"reject": "refuse"}}, got {value!r}')
    merged = dict(REFERENCE_POLICIES)
    for policy, word in value.items():
        try:
            key = RunPolicy(str(policy).strip().lower())
        except ValueError:
            raise ConfigurationError(
                f"{_WHERE}: policies.{policy} is not a policy: use {', '.join(p.value for p in RunPolicy)}"
            ) from None
        if not isinstance(word, str) or not word:
            raise ConfigurationError(f"{_WHERE}: policies.{policy} must be the service's word for it, got {word!r}")
        merged[key] = word
    return merged


def _event_names(value: Any, name: str) -> tuple[str, ...]:
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) and not isinstance(value, str):
        raise ConfigurationError(f"{_WHERE}: {name} must be a list of event names, got {value!r}")
    names = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{_WHERE}: {name} must hold event names, got {item!r}")
        names.append(item.strip())
    return tuple(names)
