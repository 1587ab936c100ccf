"""Keywords that launch agents and hand back what they did."""

from __future__ import annotations

import re
from datetime import timedelta

import asyncpg
from robot.api.deco import keyword

from stampede.errors import ConfigurationError, StampedeError
from stampede.launcher import LaunchPlan, launch
from stampede.metrics import summarize
from stampede.shapes import AllAtOnce, FixedRate, LoadShape, RampInBatches
from stampede.units import require_positive_int

from ..component import LibraryComponent
from ..report import launch_table
from ..runtime import LaunchRecord

SETUP_ALLOWANCE_SECONDS = 60.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "launch"


def _shape(batch_size: int | None, batch_interval: timedelta, rate: float | None) -> LoadShape:
    if batch_size is not None and rate is not None:
        raise ConfigurationError("Give either batch_size (ramp in batches) or rate (fixed arrival rate), not both.")
    if rate is not None:
        return FixedRate(rate)
    if batch_size is not None:
        return RampInBatches(batch_size, batch_interval.total_seconds())
    return AllAtOnce()


class LaunchKeywords(LibraryComponent):
    @keyword(tags=["launching"])
    def launch_agents(
        self,
        tool: str,
        agents: str,
        iterations: int | None = None,
        duration: timedelta | None = None,
        batch_size: int | None = None,
        batch_interval: timedelta = timedelta(seconds=1),
        rate: float | None = None,
        users: int | None = None,
        operation_timeout: timedelta = timedelta(seconds=10),
        timeout: timedelta = timedelta(seconds=60),
    ) -> LaunchRecord:
        """Runs ``agents`` agents of ``tool`` concurrently and waits (at most ``timeout``) for them to finish.

        Load shape:
        - by default all agents get ready, wait at a start barrier and are released
          at the same instant: the most contention the machine can produce;
        - ``batch_size`` ramps up in batches, one every ``batch_interval``;
        - ``rate`` runs operations at a fixed arrival rate (per second) with
          latency counted from when each operation was due, so a stalled server
          cannot hide behind busy agents.

        Each agent runs ``iterations`` operations (1 by default), or keeps going
        for ``duration``. ``users`` spreads agents over that many user ids
        (default: one user per agent). Each operation is bounded by
        ``operation_timeout``; an agent still running at ``timeout`` is cut off,
        and one that ignores cancellation is reported as hung.

        The launch never fails because operations failed: checkers and
        thresholds judge that. It fails when it could not run as asked (a tool
        that cannot start, agents cut off by ``timeout``). Every operation is
        saved as JSON lines under ``${OUTPUT DIR}/histories`` either way, and a
        summary table is logged. Returns the launch, for checker keywords.

        | Launch Agents | deduct | 50 |
        | Launch Agents | deduct | 100 | iterations=5 | batch_size=25 | batch_interval=1 s |
        | ${launch}= | Launch Agents | deduct | 20 | rate=200 | duration=10 s |
        """
        plan = LaunchPlan(
            agents=require_positive_int(agents, what="agents"),
            iterations=iterations,
            duration=duration.total_seconds() if duration is not None else None,
            shape=_shape(batch_size, batch_interval, rate),
            operation_timeout=operation_timeout.total_seconds(),
            run_timeout=timeout.total_seconds(),
            users=users,
        )
        chosen = self.runtime.tool(tool)
        try:
            result = self.runtime.run(launch(chosen, plan), timeout=plan.run_timeout + SETUP_ALLOWANCE_SECONDS)
        except (StampedeError, TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise StampedeError(f"Launch of {tool!r} with {plan.agents} agents could not start: {error}") from error
        number = len(self.runtime.launches) + 1
        test = self.variable("TEST NAME") or self.variable("SUITE NAME", "suite")
        history_file = result.history.write_jsonl(
            self.output_dir / "histories" / f"{_slug(test)}.{number}.{_slug(tool)}.{self.runtime.run_id}.jsonl"
        )
        record = LaunchRecord(number, chosen, result, summarize(result), history_file)
        self.runtime.launches.append(record)
        self.log_html(launch_table(record))
        errors = sorted(result.agent_errors.items())
        problems = [f"agent {agent} {error}" if agent else error for agent, error in errors]
        if result.timed_out:
            problems.insert(
                0,
                f"the launch hit its {plan.run_timeout:g} s timeout with {len(result.unfinished_agents)} of "
                f"{plan.agents} agents unfinished (agents {_ids(result.unfinished_agents)})"
                + (f"; hung, ignoring cancellation: agents {_ids(result.hung_agents)}" if result.hung_agents else ""),
            )
        if problems:
            raise StampedeError(f"Launch {number} of {tool!r} did not run as asked: " + "; ".join(problems[:10]))
        return record


def _ids(agents: list[int]) -> str:
    shown = ", ".join(str(a) for a in agents[:10])
    return shown + (f" and {len(agents) - 10} more" if len(agents) > 10 else "")
