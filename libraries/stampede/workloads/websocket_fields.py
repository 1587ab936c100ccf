"""Field paths: where a received message holds the fields the checkers need, and reading them out of it.

A field path is keys joined by dots, with numbers indexing lists: ``seq``,
``data.user_id``, ``events.0.type``. A path that matches nothing raises a
:class:`FieldPathError` that names the path and shows the message (secrets
hidden), so a misconfigured path is fixed from the error alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from ..errors import ConfigurationError

SHOWN_CHARACTERS = 300  # of a message quoted in an error
_SECRET_FIELD = re.compile(r"token|secret|password|authorization|api_?key", re.IGNORECASE)


@dataclass(frozen=True)
class FieldPaths:
    """Where a received message holds each field; None for a field the service does not send.

    ``type`` and ``seq`` must be in every message (``seq`` may be null, as in a
    refusal). ``user``, ``marker``, ``run_id`` and ``request`` must be in every
    run event (``run_events``, ``done_events``, ``failed_events``).
    ``session_id`` and ``resume_token`` are read from the ready event;
    ``error_code`` from failure and error events when present.
    """

    type: str = "type"
    seq: str | None = "seq"
    user: str | None = "user_id"
    marker: str | None = "marker"
    run_id: str | None = "run_id"
    request: str | None = "request_id"
    session_id: str | None = "session_id"
    resume_token: str | None = "resume_token"
    error_code: str | None = "code"

    def __post_init__(self) -> None:
        for spec in fields(self):
            path = getattr(self, spec.name)
            if path is None and spec.name != "type":
                continue
            if not isinstance(path, str) or not all(path.split(".")):
                raise ConfigurationError(
                    f"WebSocket protocol: fields.{spec.name} must be a dotted field path such as 'seq' or "
                    f"'data.user_id'{'' if spec.name == 'type' else ' (or null when the service has none)'}, "
                    f"got {path!r}"
                )


class MessageFields(NamedTuple):
    """The fields :meth:`WebSocketProtocol.fields_of` found in one message (None: absent or not configured)."""

    type: Any
    seq: Any
    user: Any
    marker: Any
    run_id: Any
    request: Any
    session_id: Any
    error_code: Any


class FieldPathError(ConfigurationError):
    """A configured field path matched nothing in a received message."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


_MISSING = object()


def lookup(message: Any, path: str, *, what: str = "", protocol: str = "WebSocket") -> Any:
    """The value at dotted ``path`` in ``message``; FieldPathError naming the path and showing the message if none.

    ``protocol`` names the protocol configuration in the error (``WebSocket``, ``HTTP``).
    """
    found = _walk(message, path)
    if found is _MISSING:
        raise FieldPathError(_no_field(message, path, what, protocol), path)
    return found


def lookup_optional(message: Any, path: str | None) -> Any:
    """The value at ``path``, or None when the path is None or matches nothing."""
    if path is None:
        return None
    found = _walk(message, path)
    return None if found is _MISSING else found


def _walk(message: Any, path: str) -> Any:
    value = message
    for segment in path.split("."):
        if type(value) is dict:  # decoded JSON: a cheaper test than Mapping's, on every field of every message
            if segment not in value:
                return _MISSING
            value = value[segment]
        elif isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return _MISSING
    return value


def _no_field(message: Any, path: str, what: str, protocol: str) -> str:
    value, reached = message, list[str]()
    for segment in path.split("."):
        if isinstance(value, Mapping) and segment in value:
            value, reached = value[segment], [*reached, segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value, reached = value[int(segment)], [*reached, segment]
        else:
            break
    where = f"under {'.'.join(reached)!r}" if reached else "at the top level"
    if isinstance(value, Mapping):
        there = f"the fields there are {', '.join(map(str, value)) or 'none'}"
    elif isinstance(value, list):
        there = f"a list of {len(value)} there"
    else:
        there = f"a {type(value).__name__} there, not an object"
    named = f" ({what})" if what else ""
    return (
        f"The {protocol} protocol's field path {path!r}{named} matches no field in a received message: "
        f"nothing {where}, {there}. Message: {shorten(message)}. Fix the path in the protocol configuration "
        "(or set it to null if the service does not send this field)."
    )


def shorten(message: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """A message as compact JSON (or its repr), secrets hidden, cut to ``limit`` characters."""
    try:
        text = json.dumps(_hide_secrets(message), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(message)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _hide_secrets(value: Any) -> Any:
    """``value`` with every field whose name says it is a secret (a token, a password) shown as ``<hidden>``."""
    if isinstance(value, Mapping):
        return {
            key: "<hidden>" if _SECRET_FIELD.search(str(key)) else _hide_secrets(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hide_secrets(item) for item in value]
    return value


def message_text(message: Any) -> str | None:
    """A failure or error event's human message, if it has one at the top level."""
    if isinstance(message, Mapping) and isinstance(message.get("message"), str):
        return str(message["message"])[:300]
    return None


def check_keys(data: object, known: Iterable[str], *, article: str, what: str) -> None:
    """Refuse ``data`` unless it is a JSON object whose keys are all ``known``; the error names ``what`` it is for."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{article} {what} must be a JSON object, got {type(data).__name__}")
    names = set(known)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigurationError(
            f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; known keys are {', '.join(sorted(names))}"
        )
