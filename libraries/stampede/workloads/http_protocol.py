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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self

from ..errors import ConfigurationError
from ..records.threads import RunPolicy, RunStatus
from ..services.tokens import TokenSpec
from .http_fields import REFERENCE_POLICIES, REFERENCE_STATUSES, REFERENCE_TERMINAL, AnswerPaths, EventPaths
from .http_protocol_json import converted
from .http_request_templates import REFERENCE_REQUESTS, WHERE, RequestName, RequestTemplate
from .websocket_fields import check_keys, lookup, lookup_optional
from .websocket_protocol import event_names, read_protocol
from .websocket_templates import PLACEHOLDERS, RESUME_ONLY, check_placeholders, placeholders_in, render_text

HTTP_PLACEHOLDERS = frozenset((PLACEHOLDERS - RESUME_ONLY) | {"policy", "run_id"})
"""What the templates of an HTTP protocol may use (see the module documentation)."""


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


_NEEDED = frozenset({RequestName.CREATE_THREAD, RequestName.READ_STATE})
_NO_THREAD = frozenset({"thread", "run_id"})
_PER_RUN = frozenset({RequestName.CANCEL, RequestName.RESUME_STREAM})


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
                f"{WHERE}: base_url must start with http:// or https:// and name a host, got {self.base_url!r}"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        try:
            object.__setattr__(self, "auth", HttpAuth(str(self.auth).strip().lower()))
        except ValueError:
            raise ConfigurationError(
                f"{WHERE}: auth must be one of {', '.join(a.value for a in HttpAuth)}, got {self.auth!r}"
            ) from None
        if self.auth is HttpAuth.HEADER and not str(self.header_name).strip():
            raise ConfigurationError(f"{WHERE}: auth 'header' needs a header_name")
        if self.auth is HttpAuth.QUERY and not str(self.query_param).strip():
            raise ConfigurationError(f"{WHERE}: auth 'query' needs a query_param")
        self._check_requests()
        self._check_events()
        if self.resume and self.requests.get(RequestName.RESUME_STREAM) is None:
            raise ConfigurationError(
                f"{WHERE}: resume is on, but requests.resume_stream is null: give the request that resumes a "
                'run\'s stream (it is sent with Last-Event-ID), or set "resume" to false'
            )
        statuses = [*self.refusal_statuses]
        if not statuses or not all(isinstance(s, int) and not isinstance(s, bool) and 400 <= s < 600 for s in statuses):
            raise ConfigurationError(
                f"{WHERE}: refusal_statuses must be a list of HTTP error statuses (400-599), such as [409], "
                f"got {self.refusal_statuses!r}"
            )
        object.__setattr__(self, "messages_per_run", self._messages_per_run())

    def _check_requests(self) -> None:
        for name in RequestName:
            template = self.requests.get(name)
            if template is None:
                if name in _NEEDED:
                    raise ConfigurationError(f"{WHERE}: requests.{name} is needed (it cannot be null)")
                continue
            allowed = HTTP_PLACEHOLDERS
            if name is RequestName.CREATE_THREAD:
                allowed = HTTP_PLACEHOLDERS - _NO_THREAD
            elif name not in _PER_RUN:
                allowed = HTTP_PLACEHOLDERS - {"run_id"}
            for part, value in (("path", template.path), ("body", template.body)):
                check_placeholders(value, allowed, where=f"{WHERE}: requests.{name}.{part}")
        if self.requests.get(RequestName.RUN_STREAM) is None and self.requests.get(RequestName.RUN_WAIT) is None:
            raise ConfigurationError(f"{WHERE}: requests.run_stream and requests.run_wait cannot both be null")
        if self.auth is HttpAuth.HEADER:
            check_placeholders(self.header_value, HTTP_PLACEHOLDERS - _NO_THREAD, where=f"{WHERE}: header_value")

    def _check_events(self) -> None:
        for name in ("queued_events", "started_events", "message_events", "error_events"):
            object.__setattr__(
                self,
                name,
                event_names(getattr(self, name), f"{WHERE}: {name}", names="event names", listed="event names"),
            )
        if not self.terminal_events:
            raise ConfigurationError(
                f"{WHERE}: terminal_events must name at least one event that ends a run, and how "
                '(e.g. {"run_completed": "success"})'
            )
        if None in self.terminal_events.values() and self.events.status is None:
            raise ConfigurationError(
                f"{WHERE}: terminal_events leaves a run's end to its status word, but events.status is null: "
                "give the field path of the status in such an event"
            )
        named: dict[str, str] = {}
        for key in ("queued_events", "started_events", "message_events", "error_events", "terminal_events"):
            for event in getattr(self, key):
                if event in named:
                    raise ConfigurationError(f"{WHERE}: the event {event!r} is in both {named[event]} and {key}")
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
                f"{WHERE}: messages_per_run is the path {value!r} into the run request's body, but the body has "
                f"{'nothing' if found is None else repr(found)} there, not a number: give the number of messages a "
                "run appends, or null if the service does not say"
            )
        raise ConfigurationError(
            f"{WHERE}: messages_per_run must be a whole number of at least 0, null, or a field path into the run "
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
        found = lookup_optional(event, path := getattr(self.events, name))
        if found is None and required and path is not None:  # a null field, or none: the error is worth its text
            return lookup(event, path, what=f"events.{name}, in every {event.get('event')} event", protocol="HTTP")
        return found

    def answer_field(self, answer: Any, name: str, request: str, *, required: bool = True) -> Any:
        found = lookup_optional(answer, path := getattr(self.answers, name))
        if found is None and required and path is not None:  # a null field, or none: the error is worth its text
            return lookup(answer, path, what=f"answers.{name}, in the {request} answer", protocol="HTTP")
        return found

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
        check_keys(data, (spec.name for spec in fields(cls)), article="An", what=WHERE)
        values = dict(data)
        if base_url is not None:
            values["base_url"] = base_url
        if "base_url" not in values:
            raise ConfigurationError(
                f"{WHERE}: base_url is missing and no agent service is in use: give the service's http:// or "
                "https:// address (as the tool's base_url, or the protocol's base_url)"
            )
        return cls(**converted(values))

    @classmethod
    def load(cls, source: Mapping[str, Any] | str, *, base_url: str | None = None) -> Self:
        """A protocol from a dict, a JSON text (starting with ``{``) or the path of a JSON file."""
        return cls.from_dict(read_protocol(source, kind="HTTP"), base_url=base_url)


def reference_service(base_url: str) -> HttpProtocol:
    """The bundled reference agent service's HTTP API (``docs/REFERENCE_HTTP_API.md``) at ``base_url``."""
    return HttpProtocol(base_url=base_url)
