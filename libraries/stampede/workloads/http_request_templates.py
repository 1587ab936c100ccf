"""The requests of an HTTP protocol: their names, and each one's method, path and JSON body as templates.

A path's placeholders are URL-encoded when it is rendered; a body's keep their
values' types (see :mod:`~stampede.workloads.websocket_templates`). Templates
are compiled once, when the protocol loads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self
from urllib.parse import quote

from ..errors import ConfigurationError
from .websocket_templates import compiled, compiled_text

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WHERE = "HTTP protocol"
"""How an error names what it is about."""


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


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")  # characters quote() leaves as they are
_REFERENCE_RUN = {
    "input": {"marker": "{marker}", "text": "{text}", "steps": 3, "step_ms": 20},
    "multitask_strategy": "{policy}",
}


def _url_encoded(value: Any) -> str:
    text = str(value)
    return text if _URL_SAFE.fullmatch(text) else quote(text, safe="")


@dataclass(frozen=True)
class RequestTemplate:
    """One request: its method, its path below the base URL, and its JSON body (None: no body)."""

    method: str
    path: str
    body: Any = None
    _path: Callable[[Mapping[str, Any]], str] = field(init=False, repr=False, compare=False)
    _body: Callable[[Mapping[str, Any]], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path", compiled_text(self.path, _url_encoded))
        object.__setattr__(self, "_body", compiled(self.body))

    def rendered(self, values: Mapping[str, Any]) -> tuple[str, str, Any]:
        """The method, the path (its placeholders URL-encoded) and the body for ``values``."""
        return self.method, self._path(values), self._body(values)

    @classmethod
    def parse(cls, value: Any, name: str) -> Self:
        where = f"{WHERE}: requests.{name}"
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
