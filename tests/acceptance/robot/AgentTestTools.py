"""Test-only tools for the agent-service, resource and parallelism acceptance suites.

- ``Define Agent Run Tool``: each operation is one agent run on the agent service
  in use (hello once per agent, then ``start_run`` and wait for the run's end), so
  the service has work while its resources are sampled. A minimal client, not the
  WebSocket workload the product ships.
- ``Define Redis Wait Tool``: each operation waits in Redis (``BLPOP`` on a list
  nobody pushes to). With ``client=blocking`` it makes the call with redis-py's
  synchronous client inside async agent code, a common real bug that blocks the
  event loop, so agents take turns instead of running in parallel.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import timedelta
from typing import Any

import redis
from websockets.asyncio.client import ClientConnection, connect

from reference_agent_service.protocol import RUN_ENDS, EventType, hello_frame, start_run_frame
from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.outcomes import Outcome
from stampede.services.agent_service_target import AgentServiceTarget
from stampede.services.redis_target import RedisTarget
from stampede_robot.runtime import runtime

FRAME_TIMEOUT = 10.0


class AgentRunTool(BaseTool):
    """One agent run per operation, on a session each agent opens before the start barrier."""

    def __init__(self, service: AgentServiceTarget, name: str) -> None:
        self.service = service
        self.name = name
        self._connections: dict[int, ClientConnection] = {}
        self._launch = ""

    async def setup(self, agents: int) -> None:
        self._launch = secrets.token_hex(3)  # users of one launch never meet the last launch's sessions

    async def open_agent(self, agent: AgentContext) -> None:
        user = f"{agent.user}-{self._launch}"
        connection = await connect(self.service.url, open_timeout=FRAME_TIMEOUT, close_timeout=2)
        await connection.send(hello_frame(self.service.token_for(user)))
        started = json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT))
        if started.get("type") != EventType.SESSION_STARTED:
            await connection.close()
            raise RuntimeError(f"the service did not start a session for {user}: {started}")
        self._connections[agent.agent] = connection

    async def run(self, agent: AgentContext) -> OpResult:
        connection = self._connections[agent.agent]
        request = f"r{agent.iteration}"
        await connection.send(start_run_frame("t1", agent.marker, {"agent": agent.agent}, request_id=request))
        while True:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT))
            if frame.get("request_id") == request and frame.get("type") in RUN_ENDS:
                if frame["type"] == EventType.AGENT_FAILED:
                    return OpResult(Outcome.ERROR, error=str(frame.get("code")))
                return OpResult(written={"run_id": frame.get("run_id")})

    async def close_agent(self, agent: AgentContext) -> None:
        connection = self._connections.pop(agent.agent, None)
        if connection is not None:
            await connection.close(1000)


class RedisWaitTool(BaseTool):
    """Each operation waits ``wait`` seconds inside Redis, with the asyncio client or a blocking one."""

    def __init__(self, target: RedisTarget, name: str, wait: float, blocking: bool) -> None:
        self.target = target
        self.name = name
        self.wait = wait
        self.blocking = blocking
        self.key = target.key("parallelism:never-pushed")
        self._sync: redis.Redis | None = None

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "wait": f"{self.wait:g} s",
            "client": "blocking (sync redis-py)" if self.blocking else "asyncio",
        }

    async def setup(self, agents: int) -> None:
        if self.blocking:
            self._sync = redis.Redis.from_url(self.target.url, socket_timeout=self.wait + 5)

    async def run(self, agent: AgentContext) -> OpResult:
        if self._sync is not None:
            self._sync.blpop([self.key], timeout=self.wait)  # the bug: a blocking call on the event loop
        else:
            await self.target.client.blpop([self.key], timeout=self.wait)
        return OpResult()

    async def teardown(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None


class AgentTestTools:
    """Keywords that define the test-only tools above."""

    ROBOT_LIBRARY_SCOPE = "GLOBAL"

    def define_agent_run_tool(self, name: str) -> None:
        """Each operation is one agent run on the agent service in use.

        | Define Agent Run Tool | runs |
        """
        runtime().tools[name] = AgentRunTool(runtime().agent_service, name)

    def define_redis_wait_tool(
        self, name: str, wait: timedelta = timedelta(milliseconds=50), client: str = "asyncio"
    ) -> None:
        """Each operation waits ``wait`` in Redis; ``client`` is ``asyncio`` or ``blocking``.

        | Define Redis Wait Tool | wait | wait=50 ms | client=blocking |
        """
        if client not in ("asyncio", "blocking"):
            raise ValueError(f"client must be asyncio or blocking, got {client!r}")
        runtime().tools[name] = RedisWaitTool(runtime().redis, name, wait.total_seconds(), client == "blocking")
