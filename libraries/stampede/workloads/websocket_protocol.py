"""How Stampede talks to a WebSocket agent service: configuration, so a user can point it at their own service.

A :class:`WebSocketProtocol` says where the service is, how an agent
authenticates (a first ``hello`` frame, a handshake header, or a query
parameter), which frames it sends (JSON templates with placeholders), where
the fields a checker needs live in a received message (dotted field paths),
and which event types mean "run done", "run failed" and "error". Its defaults
are the bundled reference service's protocol (:func:`reference_service`).

Templates (:mod:`~stampede.workloads.websocket_templates`) are JSON values
whose strings hold placeholders such as ``{token}`` and ``{marker}``; field
paths (:mod:`~stampede.workloads.websocket_fields`) are keys joined by dots,
such as ``data.user_id``.

The JWT each user presents is configuration too (``"token"``, a
:class:`~stampede.services.tokens.TokenSpec`): ``subject_claim`` (default
``sub``), ``issuer`` (default ``stampede-agent-service``; null for none),
``audience`` (default none), ``claims`` (extra claims, default none),
``algorithm`` (HS256, HS384 or HS512; default HS256) and ``lifetime``
(default ``1 h``).

A run's lifecycle (``run_events``) is an ordered pattern: an event type may
appear in it more than once (``started, step, tool, step, finished``), and a
run that succeeds sends exactly that sequence.

Example, as JSON (every key is optional; ``url`` defaults to the agent service under test)::

    {"url": "wss://agents.example.com/ws", "auth": "header",
     "header_value": "Bearer {token}", "ready_event": null,
     "start": {"op": "run", "input": "{context}", "tag": "{marker}", "id": "{request}"},
     "message": null,
     "fields": {"type": "event", "seq": "meta.seq", "user": "meta.user", "marker": "data.tag",
                "run_id": "data.run", "request": "data.id", "session_id": null, "resume_token": null},
     "run_events": ["started", "finished"], "done_events": ["finished"], "failed_events": ["failed"],
     "error_events": ["error"], "resume": null,
     "token": {"subject_claim": "user_id", "audience": "agents", "issuer": null, "lifetime": "15 min"}}
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, Self

from ..errors import ConfigurationError
from ..services.tokens import TokenSpec
from .websocket_fields import FieldPaths, MessageFields, check_keys, lookup, lookup_optional
from .websocket_templates import PLACEHOLDERS, RESUME_ONLY, check_placeholders, placeholders_in


class AuthMode(StrEnum):
    """Where an agent's token goes."""

    HELLO = "hello"
    """In the first frame (the ``hello`` template); the service answers with the ready event or an error."""
    HEADER = "header"
    """In a header of the opening handshake (``header_name: header_value``)."""
    QUERY = "query"
    """In a query parameter of the URL (``?<query_param>=<token>``)."""
    NONE = "none"
    """No token."""


REFERENCE_HELLO = {"type": "hello", "token": "{token}"}
REFERENCE_START = {
    "type": "start_run",
    "thread_id": "{thread}",
    "marker": "{marker}",
    "context": "{context}",
    "request_id": "{request}",
}
REFERENCE_MESSAGE = {
    "type": "send_message",
    "thread_id": "{thread}",
    "marker": "{marker}",
    "text": "{text}",
    "request_id": "{request}",
}
REFERENCE_RESUME = {"type": "hello", "token": "{token}", "resume_token": "{resume_token}", "last_seq": "{last_seq}"}
REFERENCE_RUN_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


@dataclass(frozen=True)
class WebSocketProtocol:
    """How to talk to one WebSocket agent service; the defaults are the reference service's protocol."""

    url: str
    auth: AuthMode = AuthMode.HELLO
    hello: Any = field(default_factory=partial(copy.deepcopy, REFERENCE_HELLO))
    """The first frame in ``hello`` auth mode."""
    ready_event: str | None = "session_started"
    """The event that says the session is open (None: open once the hello is sent, or the handshake is done)."""
    header_name: str = "Authorization"
    header_value: str = "Bearer {token}"
    query_param: str = "token"
    start: Any = field(default_factory=partial(copy.deepcopy, REFERENCE_START))
    """An agent's first frame of a run."""
    message: Any = field(default_factory=partial(copy.deepcopy, REFERENCE_MESSAGE))
    """Each later run's frame (None: ``start`` again)."""
    resume: Any = field(default_factory=partial(copy.deepcopy, REFERENCE_RESUME))
    """The first frame on a new connection that resumes a dropped session (None: the service cannot resume)."""
    resumed_event: str | None = "session_resumed"
    fields: FieldPaths = field(default_factory=FieldPaths)
    run_events: tuple[str, ...] = REFERENCE_RUN_EVENTS
    """The events of a run that succeeds, in the order the service sends them."""
    done_events: tuple[str, ...] = ("agent_completed",)
    failed_events: tuple[str, ...] = ("agent_failed",)
    error_events: tuple[str, ...] = ("error",)
    token: TokenSpec = field(default_factory=TokenSpec)
    """The claims of the JWT each user presents (the defaults are what the reference service checks)."""

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not re.match(r"wss?://[^/?#\s]+", self.url):
            raise ConfigurationError(
                f"WebSocket protocol: url must start with ws:// or wss:// and name a host, got {self.url!r}"
            )
        try:
            object.__setattr__(self, "auth", AuthMode(str(self.auth).strip().lower()))
        except ValueError:
            raise ConfigurationError(
                f"WebSocket protocol: auth must be one of {_choices(AuthMode)}, got {self.auth!r}"
            ) from None
        self._check_events()
        for name in ("ready_event", "resumed_event"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"WebSocket protocol: {name} must be an event type or null, got {value!r}")
        if self.auth is AuthMode.HELLO and self.hello is None:
            raise ConfigurationError("WebSocket protocol: auth 'hello' needs a hello template (the first frame)")
        if self.start is None:
            raise ConfigurationError("WebSocket protocol: start must be the template of a run's first frame")
        if self.auth is AuthMode.HEADER and not str(self.header_name).strip():
            raise ConfigurationError("WebSocket protocol: auth 'header' needs a header_name")
        if self.auth is AuthMode.QUERY and not str(self.query_param).strip():
            raise ConfigurationError("WebSocket protocol: auth 'query' needs a query_param")
        for name, template in self._templates().items():
            allowed = PLACEHOLDERS if name == "resume" else PLACEHOLDERS - RESUME_ONLY
            check_placeholders(template, allowed, where=f"WebSocket protocol: the {name} template")

    def _check_events(self) -> None:
        for name in ("run_events", "done_events", "failed_events", "error_events"):
            object.__setattr__(self, name, event_names(getattr(self, name), f"WebSocket protocol: {name}"))
        if not self.done_events:
            raise ConfigurationError(
                "WebSocket protocol: done_events must name at least one event type (the event that says a run is done)"
            )
        early = [kind for kind in self.run_events[:-1] if kind in self.done_events]
        if early:
            raise ConfigurationError(
                f"WebSocket protocol: run_events lists the done event {early[0]} before its end, but a run ends at "
                f"its first {early[0]}: put it last in run_events, or name another event in done_events"
            )

    def _templates(self) -> dict[str, Any]:
        templates = {"start": self.start, "message": self.message, "resume": self.resume}
        if self.auth is AuthMode.HELLO:
            templates["hello"] = self.hello
        if self.auth is AuthMode.HEADER:
            templates["header_value"] = self.header_value
        return {name: template for name, template in templates.items() if template is not None}

    def needs_token(self, *, resuming: bool = False) -> bool:
        """Whether an agent needs a token: the auth mode or a template it sends uses ``{token}``."""
        if self.auth in (AuthMode.HEADER, AuthMode.QUERY):
            return True
        sent = {name: template for name, template in self._templates().items() if resuming or name != "resume"}
        return any("token" in placeholders_in(template) for template in sent.values())

    @property
    def can_resume(self) -> bool:
        """Whether a dropped session can be resumed: a resume template, and a ready event carrying a resume token."""
        return self.resume is not None and self.fields.resume_token is not None and self.ready_event is not None

    @property
    def run_event_types(self) -> frozenset[str]:
        """Every event type that belongs to a run, so must carry the run's fields."""
        return frozenset((*self.run_events, *self.done_events, *self.failed_events))

    def fields_of(self, message: Any) -> MessageFields:
        """The configured fields of ``message``; FieldPathError (naming the path) for a required one it lacks."""
        paths = self.fields
        kind = lookup(message, paths.type, what="fields.type, the event type")
        seq = None if paths.seq is None else lookup(message, paths.seq, what="fields.seq, the sequence number")
        kind_text = str(kind)
        in_run = kind_text in self.run_event_types

        def run_field(name: str, meaning: str) -> Any:
            path = getattr(paths, name)
            if path is None:
                return None
            if in_run:
                return lookup(message, path, what=f"fields.{name}, {meaning}, in every {kind_text} event")
            return lookup_optional(message, path)

        session_id = None
        if kind_text in (self.ready_event, self.resumed_event) and paths.session_id is not None:
            session_id = lookup(message, paths.session_id, what=f"fields.session_id, in the {kind_text} event")
        error_code = None
        if kind_text in self.failed_events or kind_text in self.error_events:
            error_code = lookup_optional(message, paths.error_code)
        return MessageFields(
            kind_text,
            seq,
            run_field("user", "the user id"),
            run_field("marker", "the marker"),
            run_field("run_id", "the run id"),
            run_field("request", "the request id"),
            session_id,
            error_code,
        )

    def resume_token_of(self, ready: Any) -> Any:
        """The resume token in the ready event (FieldPathError if the path matches nothing)."""
        assert self.fields.resume_token is not None, "can_resume is checked first"
        return lookup(ready, self.fields.resume_token, what=f"fields.resume_token, in the {self.ready_event} event")

    def describe(self) -> dict[str, str]:
        return {
            "url": self.url,
            "auth": self.auth.value,
            "ready event": self.ready_event or "(none)",
            "run events": ", ".join(self.run_events),
            "done events": ", ".join(self.done_events),
            "token": self.token.describe() if self.needs_token() else "(none)",
            "resumable": "yes" if self.can_resume else "no",
        }

    # Loading

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, url: str | None = None) -> Self:
        """A protocol from a JSON-like dict: reference defaults for what it leaves out; ``url`` overrides its url."""
        check_keys(data, (spec.name for spec in fields(cls)), article="A", what="WebSocket protocol")
        values = dict(data)
        if url is not None:
            values["url"] = url
        if "url" not in values:
            raise ConfigurationError(
                "WebSocket protocol: url is missing and no agent service is under test: give the service's ws:// or "
                "wss:// address (as the tool's url, ${AGENT_SERVICE_URL}, STAMPEDE_AGENT_SERVICE_URL, or the "
                "protocol's url)"
            )
        auth = str(values.get("auth", AuthMode.HELLO)).strip().lower()
        if auth in set(AuthMode) - {AuthMode.HELLO} and "ready_event" not in values:
            raise ConfigurationError(
                f"WebSocket protocol: auth {auth!r} sends no hello, yet ready_event is left at the reference "
                f'service\'s {cls.ready_event!r}, which answers a hello: set "ready_event" to the event your '
                "service sends when a session is open, or to null if it sends none"
            )
        if "fields" in values:
            values["fields"] = _field_paths(values["fields"])
        if "token" in values:
            values["token"] = TokenSpec.from_dict(values["token"])
        for name in ("ready_event", "resumed_event"):
            if values.get(name) is not None and not isinstance(values[name], str):
                raise ConfigurationError(
                    f"WebSocket protocol: {name} must be an event type or null, got {values[name]!r}"
                )
        for name in ("header_name", "header_value", "query_param"):
            if name in values and not isinstance(values[name], str):
                raise ConfigurationError(f"WebSocket protocol: {name} must be a string, got {values[name]!r}")
        return cls(**values)

    @classmethod
    def load(cls, source: Mapping[str, Any] | str | Path, *, url: str | None = None) -> Self:
        """A protocol from a dict, a JSON text (starting with ``{``) or the path of a JSON file."""
        return cls.from_dict(read_protocol(source), url=url)


def read_protocol(source: Mapping[str, Any] | str | Path, *, kind: str = "WebSocket") -> Mapping[str, Any]:
    """The protocol's JSON object from a dict, a JSON text (starting with ``{``) or the path of a JSON file.

    ``kind`` names the protocol in errors (``WebSocket``, ``HTTP``).
    """
    if isinstance(source, Mapping):
        return source
    text, origin = str(source), "the JSON text"
    article = "An" if kind[0] in "AEHIOU" else "A"
    if not text.lstrip().startswith("{"):
        path = Path(text)
        origin = f"{path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(
                f"Cannot read the {kind} protocol file {path}: {error.strerror or error}"
            ) from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigurationError(f"The {kind} protocol in {origin} is not valid JSON: {error}") from None
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{article} {kind} protocol must be a JSON object, got {type(data).__name__}")
    return data


def reference_service(url: str) -> WebSocketProtocol:
    """The bundled reference agent service's protocol (described in ``reference_agent_service.protocol``) at ``url``."""
    return WebSocketProtocol(url=url)


def _field_paths(value: Any) -> FieldPaths:
    if isinstance(value, FieldPaths):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"WebSocket protocol: fields must be an object of field paths, got {value!r}")
    known = {spec.name for spec in fields(FieldPaths)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigurationError(
            f"WebSocket protocol: unknown field(s) {', '.join(map(repr, unknown))} under "
            f"fields; known fields are {', '.join(sorted(known))}"
        )
    return FieldPaths(**value)


def event_names(
    value: Any, where: str, *, names: str = "event type names", listed: str = "event types"
) -> tuple[str, ...]:
    """A list of event names (or one comma-separated string); ConfigurationError starting ``where`` otherwise."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ConfigurationError(f"{where} must be a list of {listed}, got {value!r}")
    found = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{where} must hold {names}, got {item!r}")
        found.append(item.strip())
    return tuple(found)


def _choices(kind: type[StrEnum]) -> str:
    return ", ".join(member.value for member in kind)
