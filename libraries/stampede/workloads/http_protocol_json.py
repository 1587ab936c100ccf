"""Reading an HTTP protocol from JSON: each value checked and turned into what the protocol holds, naming its key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ..records.threads import RunPolicy, RunStatus
from ..services.tokens import TokenSpec
from .http_fields import REFERENCE_POLICIES, AnswerPaths, EventPaths
from .http_request_templates import REFERENCE_REQUESTS, WHERE, RequestName, RequestTemplate


def converted(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each JSON value turned into what the protocol holds (checked, naming the key)."""
    for name in ("header_name", "header_value", "query_param"):
        if name in values and not isinstance(values[name], str):
            raise ConfigurationError(f"{WHERE}: {name} must be a string, got {values[name]!r}")
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
        raise ConfigurationError(f"{WHERE}: resume must be true or false, got {values['resume']!r}")
    return values


def _requests(value: Any) -> dict[str, RequestTemplate | None]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{WHERE}: requests must be an object of request templates, got {value!r}")
    known = [name.value for name in RequestName]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigurationError(
            f"{WHERE}: unknown request(s) {', '.join(map(repr, unknown))} under requests; known requests are "
            f"{', '.join(known)}"
        )
    merged = dict(REFERENCE_REQUESTS)
    for name, template in value.items():
        merged[name] = None if template is None else RequestTemplate.parse(template, name)
    return merged


_Paths = TypeVar("_Paths", AnswerPaths, EventPaths)


def _paths(value: Any, name: str, kind: type[_Paths]) -> _Paths:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{WHERE}: {name} must be an object of field paths, got {value!r}")
    specs = {spec.name: spec for spec in fields(kind)}
    unknown = sorted(set(value) - set(specs))
    if unknown:
        raise ConfigurationError(
            f"{WHERE}: unknown field(s) {', '.join(map(repr, unknown))} under {name}; known fields are "
            f"{', '.join(specs)}"
        )
    for key, path in value.items():
        nullable = "None" in str(specs[key].type)
        if path is None and nullable:
            continue
        if not isinstance(path, str) or not all(path.split(".")):
            raise ConfigurationError(
                f"{WHERE}: {name}.{key} must be a dotted field path such as 'data.run_id'"
                f"{' (or null when the service has none)' if nullable else ''}, got {path!r}"
            )
    return kind(**value)


def _run_status(value: Any, where: str) -> RunStatus:
    try:
        return RunStatus(str(value).strip().lower())
    except ValueError:
        raise ConfigurationError(
            f"{WHERE}: {where} must be one of {', '.join(s.value for s in RunStatus)}, got {value!r}"
        ) from None


def _terminal(value: Any) -> dict[str, RunStatus | None]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f'{WHERE}: terminal_events must be an object such as {{"run_completed": "success"}}, got {value!r}'
        )
    return {
        str(event): None if status is None else _run_status(status, f"terminal_events.{event}")
        for event, status in value.items()
    }


def _statuses(value: Any) -> dict[str, RunStatus]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f'{WHERE}: statuses must be an object such as {{"done": "success"}}, got {value!r}')
    return {str(word): _run_status(status, f"statuses.{word}") for word, status in value.items()}


def _policies(value: Any) -> dict[RunPolicy, str]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f'{WHERE}: policies must be an object such as {{"reject": "refuse"}}, got {value!r}')
    merged = dict(REFERENCE_POLICIES)
    for policy, word in value.items():
        try:
            key = RunPolicy(str(policy).strip().lower())
        except ValueError:
            raise ConfigurationError(
                f"{WHERE}: policies.{policy} is not a policy: use {', '.join(p.value for p in RunPolicy)}"
            ) from None
        if not isinstance(word, str) or not word:
            raise ConfigurationError(f"{WHERE}: policies.{policy} must be the service's word for it, got {word!r}")
        merged[key] = word
    return merged
