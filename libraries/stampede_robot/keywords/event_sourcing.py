"""Keywords for event-sourced writes and their projection: defining the tool, and judging it."""

from __future__ import annotations

import time
from datetime import timedelta

from robot.api.deco import keyword

from stampede.checkers.projection import appended_seq, check_projection_converged, check_read_your_writes_lag
from stampede.errors import ConfigurationError
from stampede.workloads.event_store import EventAppendTool
from stampede.workloads.projection_worker import Projector

from ..component import LibraryComponent
from ..runtime import LaunchRecord

CONVERGENCE_CALL_ALLOWANCE_SECONDS = 30.0


class EventSourcingToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""

    @keyword(tags=["workloads"])
    def define_event_append_tool(
        self,
        name: str,
        *,
        streams: int = 10,
        projector: Projector = Projector.SAFE,
        poll_interval: timedelta = timedelta(milliseconds=20),
        commit_delay: timedelta = timedelta(milliseconds=50),
        read_timeout: timedelta = timedelta(seconds=2),
        max_catch_up: timedelta = timedelta(seconds=30),
    ) -> None:
        """Defines a tool that appends credit and debit events to ``streams`` user streams, with a projection.

        Each operation appends one event (a random credit or debit of 1 to 100)
        to one of the streams ``user-1`` … ``user-<streams>``, holds its
        transaction open for a random time up to ``commit_delay`` (so commits
        land out of sequence order, as they do when a tool does more work before
        committing), commits, and then waits at most ``read_timeout`` until the
        projection reflects its own event. That wait is recorded as the
        operation's ``projection_lag`` (thresholds: ``projection_lag_p95 < 1s``);
        keep ``read_timeout`` below the launch's ``operation_timeout``.

        A projection worker starts with each launch, polls for new events every
        ``poll_interval`` and folds them into a total per stream. After the
        launch it catches up and stops by itself (at most ``max_catch_up``
        later); `Projection Should Converge` stops it at once. ``projector``:
        - ``safe``: reads only events of transactions older than every running
          transaction (``pg_snapshot_xmin``), in transaction order: skips nothing,
          but waits for the oldest writing transaction on the server.
        - ``naive``: reads ``WHERE seq > last seen``: an event committed after a
          higher-numbered one is skipped for ever. The seeded bug.

        | Define Event Append Tool | append events | streams=10 | projector=safe | poll_interval=20 ms |
        """
        self.runtime.tools[name] = EventAppendTool(
            self.runtime.postgres,
            name=name,
            streams=streams,
            projector=projector,
            poll_interval=poll_interval.total_seconds(),
            commit_delay=commit_delay.total_seconds(),
            read_timeout=read_timeout.total_seconds(),
            max_catch_up=max_catch_up.total_seconds(),
        )

    @keyword(tags=["workloads"])
    def stop_projection_workers(self) -> None:
        """Stops the projection worker of every event append tool that still has one running, and logs each state.

        A worker stops by itself once it has caught up after a launch, and
        `Projection Should Converge` stops it too; use this as a test teardown so
        none is left running when a test fails before its check.

        | Test Teardown | Stop Projection Workers |
        """
        for tool in self.runtime.tools.values():
            if not isinstance(tool, EventAppendTool) or tool.worker is None:
                continue
            state = tool.worker.describe_state()
            if tool.worker.running:
                self.runtime.run(tool.stop_worker(), timeout=CONVERGENCE_CALL_ALLOWANCE_SECONDS)
                self.log(f"Stopped the projection worker of {tool.name!r}, which {state}.")
            else:
                self.log(f"The projection worker of {tool.name!r} had already stopped: it {state}.")


class EventSourcingCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""

    def _event_tool(self, launch: LaunchRecord | int | None) -> tuple[LaunchRecord, EventAppendTool]:
        return self.launch_of(launch, EventAppendTool, "an event append tool", "Define Event Append Tool")

    @keyword(tags=["checks"])
    def projection_should_converge(
        self, within: timedelta = timedelta(seconds=5), launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails unless the projection became exactly the fold of the events within ``within`` of the last append.

        Gives the projection worker until ``within`` after the last append of
        this test's latest launch (or ``launch``) committed, then stops it and compares,
        per stream, the projected total with the sum of the stream's events in
        the event store, and checks that every event was applied exactly once.
        The failure names the events never applied or applied twice by sequence
        number and the streams whose totals differ, with both totals. A
        projection that got there, but later than ``within``, fails too.

        | Projection Should Converge | within=5 s |
        """
        record, tool = self._event_tool(launch)
        committed = [int(op.written["committed_ns"]) for op in record.result.history if appended_seq(op) is not None]
        deadline_ns = (max(committed) if committed else time.monotonic_ns()) + int(within.total_seconds() * 1e9)
        wait = max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9)
        try:
            snapshot = self.runtime.run(tool.converge(deadline_ns), timeout=wait + CONVERGENCE_CALL_ALLOWANCE_SECONDS)
        finally:
            self.runtime.run(tool.stop_worker(), timeout=CONVERGENCE_CALL_ALLOWANCE_SECONDS)
        self.judge(check_projection_converged(record.result.history, snapshot, within=within.total_seconds()))

    @keyword("Read-Your-Writes Lag Should Be Below", tags=["checks"])
    def read_your_writes_lag_should_be_below(
        self, bound: timedelta, percentile: float = 95.0, launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails unless agents saw their own appends in the projection within ``bound``, at the ``percentile``.

        The lag of one append is the time from its commit until the projection
        reflected it; an append its agent never saw within the tool's
        ``read_timeout`` counts as longer than any bound. Logs p50, the chosen
        percentile and max over every successful append of this test's latest launch
        (or ``launch``), and the appends over the bound.

        | Read-Your-Writes Lag Should Be Below | 1 s |
        | Read-Your-Writes Lag Should Be Below | 250 ms | percentile=99 |
        """
        if not 0 < percentile <= 100:
            raise ConfigurationError(f"percentile must be between 0 (exclusive) and 100, got {percentile}")
        record, _ = self._event_tool(launch)
        self.judge(
            check_read_your_writes_lag(record.result.history, bound=bound.total_seconds(), percentile_rank=percentile)
        )
