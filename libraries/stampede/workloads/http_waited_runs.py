"""Waiting for one run: a single request whose answer is the ended run, bounded by the agent's reusable timer.

Each agent keeps one :class:`~stampede.bounds.TaskBound` for all its waited-for
runs (in ``agent.state["run_bound"]``, closed with the agent): starting and
stopping it costs less than a timeout made for every run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from ..agents import AgentContext
from ..bounds import TaskBound
from ..records.threads import HttpFailure
from ..records.websocket import timeout_text
from .http_answers import messages_of
from .http_failures import RunFailed, ThreadReadFailed, body, check_start, field_missing
from .http_outcomes import RunProgress
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName
from .http_requests import answered, send
from .websocket_fields import FieldPathError


class WaitedRuns:
    """The part of :class:`~stampede.workloads.http_agents.HttpAgentTool` that waits for a run's answer."""

    protocol: HttpProtocol
    run_timeout: float
    refusal_statuses: Sequence[int]
    config_problems: list[str]
    _problem_paths: set[str]

    async def _wait_run(self, http: aiohttp.ClientSession, progress: RunProgress, values: dict[str, Any]) -> None:
        """One request whose answer is the ended run, within the agent's run bound; RunFailed otherwise."""
        attempt, bound = progress.attempt, self._run_bound(progress.agent)
        bound.start(time.monotonic_ns())
        try:
            request = send(http, self.protocol, RequestName.RUN_WAIT, values)
            async with await answered(request, RequestName.RUN_WAIT, self.protocol.base_url) as response:
                attempt.status = response.status
                if not 200 <= response.status < 300:
                    await check_start(response, attempt, self.protocol, self.refusal_statuses)
                text = await body(response)
        except asyncio.CancelledError:
            if not bound.took_its_cancel():
                raise
            raise RunFailed(HttpFailure.TIMEOUT, f"no answer within {timeout_text(self.run_timeout)}") from None
        finally:
            bound.stop()
        attempt.end_ns = time.monotonic_ns()
        protocol = self.protocol
        try:
            answer = json.loads(text)
        except ValueError:
            raise RunFailed(HttpFailure.BAD_EVENT, f"the run_wait answer is not JSON: {text[:200]!r}") from None
        try:
            word = protocol.answer_field(answer, "wait_status", RequestName.RUN_WAIT)
            run_id = protocol.answer_field(answer, "wait_run_id", RequestName.RUN_WAIT)
            messages = protocol.answer_field(answer, "wait_messages", RequestName.RUN_WAIT)
            if messages:
                attempt.messages = [m.id for m in messages_of(protocol, messages, RequestName.RUN_WAIT)]
        except FieldPathError as error:
            raise field_missing(error, self.config_problems, self._problem_paths) from None
        except ThreadReadFailed as error:
            raise RunFailed(HttpFailure.BAD_EVENT, str(error)) from None
        attempt.run_id = None if run_id is None else str(run_id)
        attempt.outcome = protocol.status_of(word)
        if attempt.outcome is None or not attempt.outcome.ended:
            raise RunFailed(
                HttpFailure.BAD_EVENT,
                f"the run_wait answer's status {word!r} is not an ended run's status in the protocol's statuses "
                f"({', '.join(protocol.statuses)})",
            )

    def _run_bound(self, agent: AgentContext) -> TaskBound:
        """The agent's bound of a waited-for run (``run_timeout``): one timer for all its runs, not one per run."""
        bound = agent.state.get("run_bound")
        if bound is None:
            bound = agent.state["run_bound"] = TaskBound(self.run_timeout)
        return bound

    def _close_run_bound(self, agent: AgentContext) -> None:
        bound = agent.state.pop("run_bound", None)
        if bound is not None:
            bound.close()
