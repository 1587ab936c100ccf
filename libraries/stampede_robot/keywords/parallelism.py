"""Keywords that judge how agents shared a service: fairly, and in parallel rather than one at a time."""

from __future__ import annotations

from robot.api.deco import keyword

from stampede.checkers.fairness import WorkMeasure, check_fairness
from stampede.checkers.run_execution import check_runs_in_parallel
from stampede.checkers.serialization import check_ran_in_parallel
from stampede.workloads.websocket_agents import WebSocketAgentTool

from ..component import LibraryComponent
from ..runtime import LaunchRecord


class ParallelismCheckKeywords(LibraryComponent):
    """Fairness and hidden serialization (LockConflicts), for a launch of any tool."""

    @keyword(tags=["checks"])
    def agents_should_be_served_fairly(
        self,
        at_least: float = 0.8,
        measure: WorkMeasure = WorkMeasure.OPERATIONS,
        launch: LaunchRecord | int | None = None,
    ) -> None:
        """Fails when Jain's fairness index over the agents' successful work is below ``at_least``.

        The index is 1.00 when every agent got the same work done and 1/N when one
        agent got all of it; k starved agents of N, the rest equal, give (N-k)/N.
        ``measure`` is ``operations`` (successful operations per agent) or
        ``service time`` (the time their successful operations took). Every
        agent of the launch counts, also one that recorded nothing. The verdict
        names the most and the least served agents. Works on this test's latest launch
        unless ``launch`` is given.

        | Agents Should Be Served Fairly |               |                        |
        | Agents Should Be Served Fairly | at_least=0.9  | measure=service time   |
        """
        record = self.launch_record(launch)
        agents = range(1, record.result.plan.agents + 1)
        self.judge(check_fairness(record.result.history, at_least=at_least, measure=measure, agents=agents))

    @keyword(tags=["checks", "parallelism"])
    def agents_should_run_in_parallel(
        self, at_least: float | None = None, launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails when fewer than ``at_least`` operations were in flight on average: hidden serialization.

        The average in flight is the operations' total time divided by the wall
        time from the first start to the last end; N agents working in parallel
        keep it near N, agents that take turns keep it near 1. ``at_least``
        defaults to a quarter of the agents that recorded operations, and at
        least 1.5.

        Operations are timed as the tool timed them: a wait inside an operation
        (for a lock, a pool slot) counts as in flight, so this catches
        serialization outside what an operation times, such as agent code
        blocking the event loop or a service that queues work before it reports
        it started. For a WebSocket agent tool each run is timed
        from its first event to its done event instead, as the service executed
        it: a service that queues runs before it starts them is caught even
        though the requests were all in flight. Works on this test's latest launch
        unless ``launch`` is given.

        | Agents Should Run In Parallel |             |
        | Agents Should Run In Parallel | at_least=10 |
        """
        record = self.launch_record(launch)
        if isinstance(record.tool, WebSocketAgentTool):
            self.judge(check_runs_in_parallel(record.result.history, at_least=at_least))
        else:
            self.judge(check_ran_in_parallel(record.result.history, at_least=at_least))
