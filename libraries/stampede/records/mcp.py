"""What the MCP tool records for each tool call: the JSON-RPC exchange, its stream's notifications, the answer.

Plain data, so the MCP checks run on hand-made records as well as on a launch's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class McpFailure(StrEnum):
    """Why a tool call got no JSON-RPC answer, or an unusable one."""

    CONNECT_FAILED = "connect_failed"
    """No HTTP answer: refused, reset, unknown host."""
    HTTP_ERROR = "http_error"
    """An HTTP error status (401/403 included) instead of a JSON-RPC answer."""
    BAD_ANSWER = "bad_answer"
    """Not JSON-RPC: a body that is not JSON, an answer to another id, a stream cut before the answer."""
    RPC_ERROR = "rpc_error"
    """A JSON-RPC error answer."""
    TOOL_ERROR = "tool_error"
    """A result with ``isError`` true: the tool itself failed."""
    TIMEOUT = "timeout"
    """No answer within the call timeout."""
    CANCELLED = "cancelled"
    """The tool cancelled the call on purpose (``cancel_after``)."""


@dataclass(frozen=True, slots=True)
class McpNotification:
    """A notification that arrived on a call's stream: its method, its params, when (monotonic ns)."""

    method: str
    params: Any
    at_ns: int


@dataclass(slots=True)
class McpCall:
    """One ``tools/call``: who sent it in which session, with which id and nonce, and what came back."""

    agent: int
    user: str
    session: str | None
    """The ``Mcp-Session-Id`` (None: the server gave none)."""
    request_id: int
    nonce: str
    marker: str
    tool: str
    arguments: Any
    start_ns: int
    end_ns: int | None = None
    http_status: int | None = None
    notifications: list[McpNotification] = field(default_factory=list)
    result: Any = None
    """The JSON-RPC ``result`` as received."""
    error: Any = None
    """The JSON-RPC ``error`` as received."""
    content: list[Any] = field(default_factory=list)
    """The result's ``content`` blocks."""
    structured: Any = None
    """The result's ``structuredContent`` (None when absent)."""
    failure: McpFailure | None = None
    detail: str | None = None
    cancelled_ns: int | None = None
    """When the tool cancelled this call (``notifications/cancelled``), if it did."""
    late_watch: bool = False
    """Whether the tool listened on the call's stream after cancelling it (not in the stateless era over HTTP,
    where closing the stream is the cancel)."""
    late_answer: Any = None
    """A response to this call that arrived after its cancel (other than the cancellation error)."""
    late_ns: int | None = None
    """When :attr:`late_answer` arrived."""

    @property
    def answered(self) -> bool:
        """Whether the tool answered with a result (an error result from the tool included)."""
        return self.result is not None

    def returned_text(self) -> str:
        """What the tool returned as text: its text blocks joined, else its structured content as JSON."""
        texts = [block.get("text", "") for block in self.content if isinstance(block, dict)]
        if any(texts):
            return "\n".join(texts)
        return "" if self.structured is None else repr(self.structured)


@dataclass(frozen=True, slots=True)
class McpSessionRecord:
    """One session an agent (0: the tool, listing the tools before the launch) opened: its id, how long
    ``initialize`` took (the tool's: with the listing), and what ``DELETE`` answered."""

    agent: int
    user: str
    session: str | None
    setup_ns: int
    delete_status: int | None = None


@dataclass(slots=True)
class McpServerMemory:
    """The MCP server process's resident memory (RSS, bytes) around a launch's sessions."""

    pid: int
    before: int
    """Before the launch opened its first session."""
    open_sessions: int = 0
    """Sessions the agents had open at once (each agent opens one)."""
    held: int | None = None
    """Once every agent's session was open."""
    after: int | None = None
    """After every session of the launch was ended (``DELETE``)."""
    ended: int = 0
    """Sessions of the launch the server acknowledged ending (its set-up's listing session included)."""


class McpRecords(Protocol):
    """What the MCP checks read from a tool (:class:`~stampede.workloads.mcp_tool.McpTool` provides it)."""

    @property
    def calls(self) -> Sequence[McpCall]: ...

    @property
    def marker_owners(self) -> dict[str, str]:
        """Marker → the user whose call sent it."""
        ...
