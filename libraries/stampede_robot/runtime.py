"""State shared by the Stampede libraries in one Robot process: the loop, services, tools, launches.

Robot creates each library once (GLOBAL scope); they all reach this one
runtime, so a tool defined with ConcurrentAgents can be judged by LockConflicts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from stampede.agents import Tool
from stampede.errors import ConfigurationError, StampedeError
from stampede.faults.windows import FaultWindow
from stampede.launcher import LaunchPlan, LaunchResult, RunningLaunch
from stampede.loop import EngineLoop
from stampede.metrics import LaunchSummary
from stampede.resources import ResourceSampler
from stampede.services.agent_service_target import AgentServiceTarget
from stampede.services.config import resolve_run_id
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis
from stampede.services.postgres_target import PostgresTarget
from stampede.services.redis_target import RedisTarget

T = TypeVar("T")
SERVICE_CALL_TIMEOUT = 120.0
STOP_GRACE_SECONDS = 5.0


@dataclass
class LaunchRecord:
    """A finished launch with its summary, the tool it ran and where its history was saved."""

    number: int
    tool: Tool
    result: LaunchResult
    summary: LaunchSummary
    history_file: Path


@dataclass
class BackgroundLaunch:
    """A launch started in the background: the handle `Wait For Launch` takes."""

    number: int
    tool: Tool
    plan: LaunchPlan
    running: RunningLaunch
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
    undo: list[Callable[[], str]] = field(default_factory=list)
    """Faults to undo (stop a proxy, wait out a pause) before the services stop; each says what it did."""
    resource_sampler: ResourceSampler | None = None
    """Resource sampling still going on; stopped with the services if no test stopped it."""


class Runtime:
    def __init__(self) -> None:
        self._loop: EngineLoop | None = None
        self.run_id = resolve_run_id()
        self.services: Services | None = None
        self.tools: dict[str, Tool] = {}
        self.launches: list[LaunchRecord] = []
        self.background: list[BackgroundLaunch] = []
        self.fault_windows: list[FaultWindow] = []  # partitions and pauses, for checks of the launches they hit

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

    def launch(self, number: int | None = None) -> LaunchRecord:
        """The launch with ``number`` (1-based in this run), or the latest one."""
        if not self.launches:
            raise StampedeError("No launch has run yet: call Launch Agents first.")
        if number is None:
            return self.launches[-1]
        if not 1 <= number <= len(self.launches):
            raise ConfigurationError(f"There is no launch {number}; launches so far: 1 to {len(self.launches)}.")
        return self.launches[number - 1]

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
                self.run(handle.running.settle(0, STOP_GRACE_SECONDS), timeout=30)
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


_RUNTIME = Runtime()


def runtime() -> Runtime:
    return _RUNTIME
