"""What a tool sees of the agent running it, and what it hands back."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .outcomes import Outcome


class AgentContext:
    """The identity of one agent and the per-agent state a tool may keep on it."""

    __slots__ = ("agent", "finished", "iteration", "marker", "state", "user")

    def __init__(self, agent: int, user: str, marker: str) -> None:
        self.agent = agent
        self.user = user
        self.marker = marker
        self.iteration = 0
        self.state: dict[str, Any] = {}
        self.finished = False  # a tool sets it when this agent has no more work: no further run() calls

    def __repr__(self) -> str:
        return f"AgentContext(agent={self.agent}, user={self.user!r}, marker={self.marker!r})"


class OpResult:
    """How one operation ended, as a tool reports it to the launcher."""

    __slots__ = ("error", "exhausted", "outcome", "read", "retries", "retry_causes", "timings", "written")

    def __init__(
        self,
        outcome: Outcome = Outcome.OK,
        *,
        error: str | None = None,
        read: Any = None,
        written: Any = None,
        timings: dict[str, int] | None = None,
    ) -> None:
        self.outcome = outcome
        self.error = error
        self.read = read
        self.written = written
        self.timings = timings  # named phases of the operation in ns, e.g. {"acquire": 1_200_000}
        self.retries = 0
        self.retry_causes: tuple[Outcome, ...] = ()
        self.exhausted = False


@runtime_checkable
class Tool(Protocol):
    """Something agents run: one call of :meth:`run` is one recorded operation.

    ``setup``/``teardown`` bracket a launch; ``open_agent``/``close_agent`` bracket
    one agent (before the start barrier, so the agent is ready when released).
    """

    name: str

    def describe(self) -> dict[str, str]: ...

    async def setup(self, agents: int) -> None: ...

    async def open_agent(self, agent: AgentContext) -> None: ...

    async def run(self, agent: AgentContext) -> OpResult: ...

    async def close_agent(self, agent: AgentContext) -> None: ...

    async def teardown(self) -> None: ...


class BaseTool:
    """No-op hooks, so a tool only writes the ones it needs."""

    name = "tool"
    timed_phases: tuple[str, ...] = ()
    """Phases the tool times within operations (``OpResult.timings``): figures such as ``acquire_p95`` even when
    no operation timed them, so a threshold on one says there was nothing to measure."""
    close_bound = 0.0
    """How long ``close_agent`` may take by the tool's own bounds (s): the launcher waits that beyond its grace."""

    def describe(self) -> dict[str, str]:
        return {"tool": self.name}

    async def setup(self, agents: int) -> None:
        return None

    async def open_agent(self, agent: AgentContext) -> None:
        return None

    async def run(self, agent: AgentContext) -> OpResult:
        raise NotImplementedError

    async def close_agent(self, agent: AgentContext) -> None:
        return None

    async def teardown(self) -> None:
        return None
