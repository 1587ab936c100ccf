"""A tool written in Python by the suite: a factory makes one object per agent, whose ``run()`` is one operation.

The Locust user class, the Stampede way::

    class Deduct:
        def __init__(self, context):          # called on the event loop: keep it quick, connect in setup()
            self.account = int(context.settings["account"])
            self.dsn = context.services.postgres_dsn

        async def setup(self):                # optional, before the start barrier
            self.db = await asyncpg.connect(self.dsn)

        async def run(self):                  # one operation; async, or plain (then it runs in the agent's thread)
            before = await self.db.fetchval("UPDATE accounts SET balance = balance - 1 WHERE id = $1 "
                                            "RETURNING balance + 1", self.account)
            return {"read": {"account": self.account, "balance": before}}

        async def teardown(self):             # optional, after the agent's last operation
            await self.db.close()

What ``run()`` returns is the operation's record:

- ``None``: it succeeded, with nothing to record;
- a dict with any of ``outcome`` (``"ok"`` by default, or ``"conflict"``, ``"serialization_failure"``,
  ``"deadlock"``, ``"timeout"``, ``"error"``), ``error`` (a short code), ``read`` and ``written``
  (JSON-able values the checkers read: the lost-update check groups ``read["account"]`` and
  ``read["balance"]``), and ``timings`` (phase name to nanoseconds, an int, or a ``timedelta``);
- an ``OpResult`` (``stampede.agents``), for code that knows Stampede.

What it raises is classified like any tool's error: an exception with a ``sqlstate`` (asyncpg's,
psycopg's) by its SQLSTATE (40001 serialization failure, 40P01 deadlock, 55P03 conflict, 57014
timeout, others errors with the code), ``stampede.outcomes.ConflictError(code)`` as a conflict,
``TimeoutError`` as a timeout, anything else as an error named by its class. Conflicts are retried
when the tool has retries.

Hooks and ``run()`` that are ``async def`` run on the engine's event loop; plain ones run in a
thread of the agent's own (the same thread for all of one agent's calls), so blocking clients do not
stall the other agents. A plain call cut off by the operation timeout is recorded as a timeout, but
its thread cannot be stopped: it runs on, and the agent's next call waits for it (the thread is a daemon,
so it never keeps the process from exiting).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError, StampedeError
from ..outcomes import Outcome
from ..retry import NO_RETRIES, RetryPolicy, with_retries
from ..services.secrets import mask_dsn, scrub
from .agent_thread import AgentThread
from .python_factory import check_agent_object, load_factory

BAD_RESULT = "bad_result"
RESULT_KEYS = ("outcome", "error", "read", "written", "timings")
_OBJECT = "python_object"
_THREAD = "python_thread"
_SECRET_WORDS = ("password", "secret", "token", "key", "dsn")


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where the services of this run are, for the suite's own clients. They carry passwords: never log them.

    ``postgres_dsn`` lands in the run's schema (``search_path``) under the run's ``application_name``,
    so its connections are ended and its tables dropped with the run's; keep Redis keys under
    ``redis_prefix`` for the same reason. A service not in use is None.
    """

    postgres_dsn: str | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None
    agent_service_url: str | None = None
    agent_service_http_url: str | None = None

    def __repr__(self) -> str:
        shown = {name: mask_dsn(value) if value else value for name, value in vars(self).items()}
        return "ServiceEndpoints(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"


class ToolContext:
    """What a factory is given about one agent: who it is, which operation it is on, the services, the settings."""

    __slots__ = ("_agent", "services", "settings")

    def __init__(self, agent: AgentContext, settings: Mapping[str, Any], services: ServiceEndpoints) -> None:
        self._agent = agent
        self.settings = MappingProxyType(dict(settings))  # one agent's code cannot change another's settings
        self.services = services

    @property
    def agent(self) -> int:
        """The agent's number, 1 to N."""
        return self._agent.agent

    @property
    def user(self) -> str:
        """The user the agent acts for (``user-3``)."""
        return self._agent.user

    @property
    def marker(self) -> str:
        """A marker unique to this agent in this launch, to tag what it writes."""
        return self._agent.marker

    @property
    def iteration(self) -> int:
        """The number of the operation the agent is on (0 first); it changes as the agent goes on."""
        return self._agent.iteration

    def __repr__(self) -> str:
        return f"ToolContext(agent={self.agent}, user={self.user!r}, marker={self.marker!r})"


def operation_result(value: Any, what: str) -> OpResult:
    """The record ``run()``'s return ``value`` stands for; a ConfigurationError naming the fix if it is none."""
    if value is None:
        return OpResult()
    if isinstance(value, OpResult):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{what} returned {type(value).__name__} {value!r:.80}: return None, an OpResult, or a dict with any of "
            f"{', '.join(RESULT_KEYS)}."
        )
    unknown = sorted(str(key) for key in value if key not in RESULT_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{what} returned a dict with {', '.join(map(repr, unknown))}: its keys are {', '.join(RESULT_KEYS)}."
        )
    error = value.get("error")
    return OpResult(
        _outcome(value.get("outcome", Outcome.OK), what),
        error=None if error is None else str(error),
        read=value.get("read"),
        written=value.get("written"),
        timings=_timings(value.get("timings"), what),
    )


def _outcome(value: Any, what: str) -> Outcome:
    if isinstance(value, Outcome):
        return value
    try:
        return Outcome(str(value).strip().lower().replace(" ", "_"))
    except ValueError:
        raise ConfigurationError(
            f"{what} returned outcome {value!r}: use one of {', '.join(o.value for o in Outcome)}."
        ) from None


def _timings(value: Any, what: str) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} returned timings {value!r}: give a dict of phase name to nanoseconds.")
    timings = {}
    for phase, given in value.items():
        duration = round(given.total_seconds() * 1e9) if isinstance(given, timedelta) else given
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise ConfigurationError(
                f"{what} returned timing {phase!r} = {duration!r}: give whole nanoseconds "
                "(time.perf_counter_ns() differences) or a timedelta."
            )
        timings[str(phase)] = duration
    return timings


class PythonTool(BaseTool):
    """Runs the suite's Python object per agent; see the module documentation for the shape it must have."""

    def __init__(
        self,
        *,
        name: str,
        factory: str,
        settings: Mapping[str, Any] | None = None,
        services: ServiceEndpoints | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> None:
        self.name = name
        self.what = f"Python tool {name!r}"
        self.spec = str(factory).strip()
        self.factory = load_factory(self.spec, self.what)
        self.settings = dict(settings or {})
        self.services = services or ServiceEndpoints()
        self.retry = retry
        self._misuse: str | None = None

    def describe(self) -> dict[str, str]:
        shown = {
            f"setting {key}": "***" if any(word in key.lower() for word in _SECRET_WORDS) else str(value)
            for key, value in self.settings.items()
        }
        return {"tool": self.name, "factory": self.spec, "max retries": str(self.retry.max_retries), **shown}

    def recipe(self) -> PythonToolRecipe:
        """Its definition, to rebuild it in a worker process (``stampede.workers``)."""
        return PythonToolRecipe(self.name, self.spec, self.settings, self.services, self.retry)

    async def setup(self, agents: int) -> None:
        self._misuse = None

    async def open_agent(self, agent: AgentContext) -> None:
        context = ToolContext(agent, self.settings, self.services)
        try:
            made = self.factory(context)
            if inspect.isawaitable(made):
                made = await made
        except Exception as error:  # noqa: BLE001 - the suite's code: say whose and what
            raise StampedeError(f"{self.what}: the factory {self.spec} raised {self._describe(error)}") from None
        check_agent_object(made, f"{self.what}: the object {self.spec} returned")
        agent.state[_OBJECT] = made
        try:
            await self._hook(agent, "setup")
        except BaseException:
            _release_thread(agent)  # an agent that could not start is not closed by the launcher
            raise

    async def run(self, agent: AgentContext) -> OpResult:
        method = agent.state[_OBJECT].run

        async def attempt() -> OpResult:
            returned = await self._call(agent, method)
            try:
                return operation_result(returned, f"{self.what}: run() of agent {agent.agent}")
            except ConfigurationError as error:
                self._misuse = self._misuse or str(error)
                agent.finished = True  # the same code would return the same thing again
                return OpResult(Outcome.ERROR, error=BAD_RESULT)

        return await with_retries(attempt, self.retry)

    async def close_agent(self, agent: AgentContext) -> None:
        try:
            if _OBJECT in agent.state:
                await self._hook(agent, "teardown")
        finally:
            _release_thread(agent)

    async def teardown(self) -> None:
        misuse, self._misuse = self._misuse, None
        if misuse is not None:
            raise ConfigurationError(misuse)

    async def _hook(self, agent: AgentContext, name: str) -> None:
        hook = getattr(agent.state[_OBJECT], name, None)
        if hook is None:
            return
        try:
            await self._call(agent, hook)
        except Exception as error:  # noqa: BLE001 - the suite's code: say whose and what
            raise StampedeError(
                f"{self.what}: {name}() of agent {agent.agent} raised {self._describe(error)}"
            ) from None

    async def _call(self, agent: AgentContext, method: Callable[[], Any]) -> Any:
        """Await an async method on the loop; run a plain one in the agent's own thread."""
        if inspect.iscoroutinefunction(method):
            return await method()
        thread = agent.state.get(_THREAD)
        if thread is None:
            thread = agent.state[_THREAD] = AgentThread(f"stampede-agent-{agent.agent}")
        returned = await thread.call(method)
        return await returned if inspect.isawaitable(returned) else returned

    def _describe(self, error: BaseException) -> str:
        text = str(error)
        for secret in (
            self.services.postgres_dsn,
            self.services.redis_url,
            self.services.agent_service_url,
            self.services.agent_service_http_url,
        ):
            if secret:
                text = scrub(text, secret)
        return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _release_thread(agent: AgentContext) -> None:
    thread: AgentThread | None = agent.state.pop(_THREAD, None)
    if thread is not None:
        thread.close()


@dataclass(frozen=True)
class PythonToolRecipe:
    """A Python tool's definition, picklable: a worker process rebuilds the tool from it (its factory by name)."""

    name: str
    factory: str
    settings: Mapping[str, Any]
    services: ServiceEndpoints
    retry: RetryPolicy

    def build(self) -> PythonTool:
        return PythonTool(
            name=self.name, factory=self.factory, settings=self.settings, services=self.services, retry=self.retry
        )
