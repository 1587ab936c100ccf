"""Server memory per MCP session: what the server's process holds per open session, and keeps after their DELETE.

Reads :class:`~stampede.records.mcp.McpServerMemory` (the MCP tool's, with
``server_pid``, or hand-made). The first launch against a fresh server fills
its allocator's pools and keeps them: judge a later launch.
"""

from __future__ import annotations

from ..errors import ConfigurationError
from ..records.mcp import McpServerMemory
from ..units import format_size
from ..verdicts import Verdict
from ._report import plural


def _nothing(name: str, expected: str, memory: McpServerMemory | None, missing: str) -> Verdict | None:
    """The inconclusive verdict when ``missing`` (what the record lacks) is the case, else None."""
    if memory is not None and not missing:
        return None
    why = missing or "the server's memory was not read: define the MCP tool with the server's pid (server_pid)"
    return Verdict(name, False, expected, "not measured", message=f"Nothing judged: {why}.", inconclusive=True)


def check_memory_kept_per_session(memory: McpServerMemory | None, limit: float) -> Verdict:
    """Fail when the server's resident memory after the launch's sessions were ended grew by more than ``limit``
    bytes per ended session over what it was before the launch: state of ended sessions never reaped.

    No record, no ended session, or no reading after them is inconclusive.
    """
    if not limit >= 0:
        raise ConfigurationError(f"The memory kept per session must be 0 or more bytes, got {limit!r}.")
    name = "MCP server memory kept per ended session"
    expected = f"at most {format_size(limit)} per session"
    missing = ""
    if memory is not None and memory.ended == 0:
        missing = "no session of the launch was ended with DELETE (the stateless era has none)"
    elif memory is not None and memory.after is None:
        missing = f"the server process {memory.pid} could not be read after the sessions ended"
    if (verdict := _nothing(name, expected, memory, missing)) is not None:
        return verdict
    assert memory is not None and memory.after is not None
    each = (memory.after - memory.before) / memory.ended
    passed = each <= limit
    span = (
        f"{format_size(memory.before)} before the launch, {format_size(memory.after)} after "
        f"{plural(memory.ended, 'session')} ended"
    )
    message = f"The MCP server (pid {memory.pid}) kept {format_size(each)} per ended session ({span})" + (
        f", within the {format_size(limit)} allowed."
        if passed
        else f": more than the {format_size(limit)} allowed: the state of ended sessions is not reaped."
    )
    return Verdict(
        name,
        passed,
        expected,
        f"{format_size(each)} per session",
        "" if passed else format_size(each - limit),
        message,
        [_row(memory)],
        value=each,
    )


def check_memory_held_per_session(memory: McpServerMemory | None, limit: float) -> Verdict:
    """Fail when the server's resident memory with every agent's session open grew by more than ``limit`` bytes
    per open session over what it was before the launch.

    No record, or no moment when every agent's session was open, is inconclusive.
    """
    if not limit >= 0:
        raise ConfigurationError(f"The memory held per open session must be 0 or more bytes, got {limit!r}.")
    name = "MCP server memory per open session"
    expected = f"at most {format_size(limit)} per session"
    missing = ""
    if memory is not None and (memory.held is None or memory.open_sessions == 0):
        missing = f"not every agent's session was open at once ({plural(memory.open_sessions, 'session')} opened)"
    if (verdict := _nothing(name, expected, memory, missing)) is not None:
        return verdict
    assert memory is not None and memory.held is not None
    each = (memory.held - memory.before) / memory.open_sessions
    passed = each <= limit
    message = (
        f"The MCP server (pid {memory.pid}) grew by {format_size(each)} per open session "
        f"({format_size(memory.before)} before, {format_size(memory.held)} with {memory.open_sessions} open)"
        + (
            f", within the {format_size(limit)} allowed."
            if passed
            else f", more than the {format_size(limit)} allowed."
        )
    )
    return Verdict(
        name,
        passed,
        expected,
        f"{format_size(each)} per session",
        "" if passed else format_size(each - limit),
        message,
        [_row(memory)],
        value=each,
    )


def _row(memory: McpServerMemory) -> dict[str, object]:
    return {
        "server pid": memory.pid,
        "rss before": format_size(memory.before),
        "rss, all sessions open": format_size(memory.held) if memory.held is not None else "(not read)",
        "rss after they ended": format_size(memory.after) if memory.after is not None else "(not read)",
        "sessions open": memory.open_sessions,
        "sessions ended": memory.ended,
    }
