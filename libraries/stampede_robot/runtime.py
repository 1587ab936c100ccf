"""State shared by the Stampede libraries in one Robot process: the loop, services, tools, launches.

Robot creates each library once (GLOBAL scope); they all reach this one
runtime, so a tool defined with ConcurrentAgents can be judged by LockConflicts.

Each launch remembers where it was made (:class:`Scope`: a test, or a suite's
setup or teardown), and a check given no launch judges the latest one of its
own scope (:meth:`Runtime.current_launch`), never an earlier test's. A launch
that did not run (bad input, a tool that could not start) keeps its number and
its cause (:class:`NotRun`), so the checks depending on it say so rather than
failing each in its own way.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from stampede.agents import BaseTool, Tool
from stampede.errors import ConfigurationError, StampedeError
from stampede.faults.windows import FaultWindow
from stampede.history import History
from stampede.launcher import LaunchPlan, LaunchResult, RunningLaunch
from stampede.loop import EngineLoop
from stampede.metrics import LaunchSummary
from stampede.resources import ResourceSampler
from stampede.services.agent_service_target import AgentServiceTarget
from stampede.services.config import resolve_run_id
from stampede.services.embedded_mcp_server import McpServerTarget
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis
from stampede.services.postgres_target import PostgresTarget
from stampede.services.redis_target import RedisTarget
from stampede.workers_running import WorkersRunning

from .pabot import pabot_process

T = TypeVar("T")
SERVICE_CALL_TIMEOUT = 120.0
STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Scope:
    """Where a keyword ran: a test of a suite, or (``test`` None) the suite's own setup or teardown."""

    suite: str
    test: str | None = None

    def __str__(self) -> str:
        return f"test {self.test!r}" if self.test is not None else f"the setup or teardown of suite {self.suite!r}"

    def sees(self, made: Scope) -> bool:
        """Whether a launch ``made`` in that scope is one a check here may judge without being handed it.

        A test sees its own launches; a suite's setup and teardown see every launch of that suite.
        """
        if self.test is None:
            return made.suite == self.suite
        return made == self

    def inherits(self, made: Scope) -> bool:
        """Whether ``made`` is the setup of this test's suite or of a suite around it: launches all its tests share."""
        return (
            self.test is not None
            and made.test is None
            and (made.suite == self.suite or self.suite.startswith(made.suite + "."))
        )


class _ReleasedTool(BaseTool):
    """What is left of a tool whose launch was released: its name."""

    def __init__(self, name: str) -> None:
        self.name = name


@dataclass
class LaunchRecord:
    """A finished launch with its summary, the tool it ran and where its history was saved."""

    number: int
    tool: Tool
    result: LaunchResult
    summary: LaunchSummary
    history_file: Path
    scope: Scope | None = None
    """Where it was made; None outside a Robot run."""
    released: bool = False
    """Its suite finished and its history (and its tool's state) was let go; its summary remains."""

    def release(self) -> None:
        """Let go of the history and the tool's state; keep the summary the report needs."""
        self.result = dataclasses.replace(self.result, history=History(), loop_lag_ns=[])
        self.tool = _ReleasedTool(self.tool.name)
        self.released = True


@dataclass(frozen=True)
class NotRun:
    """A launch that did not run: its number, the tool it was to run, where, and why not."""

    number: int
    tool: str
    scope: Scope | None
    cause: str

    def error(self) -> StampedeError:
        where = f", see {self.scope}" if self.scope is not None else ""
        return StampedeError(f"Not judged: launch {self.number} of {self.tool!r} did not run{where}: {self.cause}")


Running = RunningLaunch | WorkersRunning
"""A launch running in the background: in this process, or on workers."""


@dataclass
class BackgroundLaunch:
    """A launch started in the background: the handle `Wait For Launch` takes."""

    number: int
    tool: Tool
    plan: LaunchPlan
    running: Running
    waited: bool = False
    record: LaunchRecord | None = None

    def __str__(self) -> str:
        return f"background launch {self.number} of {self.tool.name!r}"


@dataclass
class Services:
    """The services one suite uses; the embedded ones are started (and stopped) by Stampede."""

    owner: str
    postgres: PostgresTarget | None = None
    embedded_postgres: EmbeddedPostgres | None = None
    redis: RedisTarget | None = None
    embedded_redis: EmbeddedRedis | None = None
    agent_service: AgentServiceTarget | None = None
    """Stopped before the targets close: closing drops the schema the reference service works in."""
    mcp_server: McpServerTarget | None = None
    """The reference MCP server, stopped before the targets close too."""
    undo: list[Callable[[], str]] = field(default_factory=list)
    """Faults to undo (stop a proxy, wait out a pause) before the services stop; each says what it did."""
    resource_sampler: ResourceSampler | None = None
    """Resource sampling still going on; stopped with the services if no test stopped it."""


class Runtime:
    def __init__(self) -> None:
        self._loop: EngineLoop | None = None
        self._run_id: str | None = None
        self.services: Services | None = None
        self.tools: dict[str, Tool] = {}
        self.launches: list[LaunchRecord] = []
        self.not_run: list[NotRun] = []
        self._launch_numbers = 0
        self.background: list[BackgroundLaunch] = []
        self.fault_windows: list[FaultWindow] = []  # partitions and pauses, for checks of the launches they hit

    @property
    def run_id(self) -> str:
        """Names the run's schema, key prefix and files; fixed at first use, when pabot's variables are known."""
        if self._run_id is None:
            self._run_id = resolve_run_id(pabot_process())
        return self._run_id

    @property
    def loop(self) -> EngineLoop:
        if self._loop is None or not self._loop.running:
            self._loop = EngineLoop()
        return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = SERVICE_CALL_TIMEOUT) -> T:
        return self.loop.run(coroutine, timeout)

    @property
    def postgres(self) -> PostgresTarget:
        if self.services is None or self.services.postgres is None:
            raise StampedeError("No PostgreSQL in use: call Use PostgreSQL first (usually in the suite setup).")
        return self.services.postgres

    @property
    def redis(self) -> RedisTarget:
        if self.services is None or self.services.redis is None:
            raise StampedeError("No Redis in use: call Use Redis first (usually in the suite setup).")
        return self.services.redis

    @property
    def agent_service(self) -> AgentServiceTarget:
        if self.services is None or self.services.agent_service is None:
            raise StampedeError("No agent service in use: call Use Agent Service first (usually in the suite setup).")
        return self.services.agent_service

    def tool(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self.tools) or "none yet"
            raise ConfigurationError(f"No tool named {name!r} is defined (defined: {known}).") from None

    def next_launch_number(self) -> int:
        """The number of a new launch, whether it runs or not (1, 2, ... in this run)."""
        self._launch_numbers += 1
        return self._launch_numbers

    @property
    def launch_numbers(self) -> int:
        """How many launch numbers were handed out so far."""
        return self._launch_numbers

    def did_not_run(self, tool: str, scope: Scope | None, cause: str) -> NotRun:
        """Note a launch that did not run, under a number of its own, for the checks that depend on it."""
        missed = NotRun(self.next_launch_number(), tool, scope, cause)
        self.not_run.append(missed)
        return missed

    def launch(self, number: int) -> LaunchRecord:
        """The launch with ``number``; one that did not run, or whose suite finished, says so."""
        for record in reversed(self.launches):
            if record.number == number:
                if record.released:
                    raise StampedeError(
                        f"Launch {number} was made in {record.scope}, whose suite has finished: its history was "
                        f"released from memory (it is saved in {record.history_file}). Judge a launch in its own suite."
                    )
                return record
        for missed in self.not_run:
            if missed.number == number:
                raise missed.error()
        made = ", ".join(str(record.number) for record in self.launches[-10:]) or "none"
        raise ConfigurationError(f"There is no launch {number}; launches that ran: {made}.")

    def current_launch(self, scope: Scope | None) -> LaunchRecord:
        """The latest launch of ``scope`` (see :meth:`Scope.sees`); in a test with none, that of its suite's setup.

        Outside a Robot run (``scope`` None), the latest launch there is.
        """
        launches: list[LaunchRecord | NotRun] = [*self.launches, *self.not_run]
        if scope is None:
            candidates = launches
        else:
            candidates = [launch for launch in launches if launch.scope is not None and scope.sees(launch.scope)]
            if not candidates:
                candidates = [
                    launch for launch in launches if launch.scope is not None and scope.inherits(launch.scope)
                ]
        if not candidates:
            where = str(scope) if scope is not None else "this run"
            raise StampedeError(
                f"No launch in {where} to judge: call Launch Agents first (checks judge the current test's "
                "launch, or the one given as launch=)."
            )
        latest = max(candidates, key=lambda launch: launch.number)
        if isinstance(latest, NotRun):
            raise latest.error()
        return latest

    def release_suite(self, suite: str) -> None:
        """Let go of the histories of the launches a finished ``suite`` made itself (not its child suites')."""
        for record in self.launches:
            if record.scope is not None and record.scope.suite == suite and not record.released:
                record.release()

    def stop_services(self) -> list[str]:
        """Close targets (dropping this run's schema and keys) and stop embedded servers; say what was done."""
        services, self.services = self.services, None
        done = [undo() for undo in reversed(services.undo)] if services is not None else []
        if services is not None and services.resource_sampler is not None:
            with contextlib.suppress(StampedeError):  # a stuck or failed sampler must not keep the services up
                services.resource_sampler.stop()
            done.append("Stopped resource sampling that no test stopped (call Stop Sampling Resources to judge it).")
        done += self.abort_background_launches()
        if services is None:
            return done
        if services.agent_service is not None:
            done.append(services.agent_service.close())
        if services.mcp_server is not None:
            done.append(services.mcp_server.close())
        self.tools.clear()
        if services.postgres is not None:
            self.run(services.postgres.close(), timeout=30)
            done.append(f"dropped schema {services.postgres.schema} at {services.postgres.display_dsn}")
        if services.redis is not None:
            self.run(services.redis.close(), timeout=30)
            done.append(f"deleted keys under {services.redis.prefix!r} at {services.redis.display_url}")
        for server in (services.embedded_postgres, services.embedded_redis):
            if server is not None:
                server.stop()
                done.append(f"stopped {type(server).__name__} (pid {server.pid})")
        return done

    def abort_background_launches(self) -> list[str]:
        """Cut off background launches nobody waited for, so no agent outlives its services."""
        done = []
        for handle in self.background:
            if not handle.waited and not handle.running.done:
                bound = 30 + handle.plan.operation_timeout  # on workers, each agent ends the operation it is in
                self.run(handle.running.settle(0, STOP_GRACE_SECONDS), timeout=bound)
                done.append(f"Stopped {handle}, which nobody waited for: its operations were not judged.")
        self.background.clear()
        return done

    def close(self) -> None:
        try:
            self.stop_services()
        finally:
            if self._loop is not None:
                self._loop.close()
                self._loop = None


def _made_where(launches: list[LaunchRecord | NotRun], where: Callable[[Scope], bool]) -> list[LaunchRecord | NotRun]:
    return [launch for launch in launches if launch.scope is not None and where(launch.scope)]


_RUNTIME = Runtime()


def runtime() -> Runtime:
    return _RUNTIME
