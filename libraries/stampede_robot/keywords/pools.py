"""Keywords for connection-pool exhaustion and connection leaks: defining the tool, and judging what it did."""

from __future__ import annotations

from datetime import timedelta

from robot.api.deco import keyword

from stampede.checkers.connection_leaks import check_connections_not_leaked
from stampede.checkers.pool_exhaustion import check_graceful_degradation, describe_acquires
from stampede.errors import ConfigurationError, StampedeError
from stampede.records.snapshots import ConnectionCensus
from stampede.workloads.connection_pool import ConnectionLeak, ConnectionPoolTool

from ..component import LibraryComponent
from ..html import verdict_table
from ..runtime import LaunchRecord


class PoolToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "pools"])
    def define_connection_pool_tool(
        self,
        name: str,
        *,
        pool_size: int = 10,
        hold: timedelta = timedelta(milliseconds=100),
        acquire_timeout: timedelta = timedelta(seconds=1),
        leak: ConnectionLeak = ConnectionLeak.NONE,
        leak_every: int = 10,
    ) -> None:
        """Defines a tool whose agents share one pool of ``pool_size`` PostgreSQL connections.

        Each operation acquires a connection, waiting at most ``acquire_timeout``;
        holds it for ``hold`` while the server works (``SELECT pg_backend_pid()
        FROM pg_sleep(hold)``); and releases it. Launch more agents than
        ``pool_size`` to exhaust the pool: agents queue for a connection, and one
        that waits longer than ``acquire_timeout`` gives up, recorded as a
        ``timeout`` with error code ``acquire_timeout``. Every acquire's wait,
        refused ones included, is recorded as the ``acquire`` phase: thresholds
        can name ``acquire_p50``, ``acquire_p95``, ``acquire_max``.

        ``leak`` seeds a bug, every ``leak_every``-th operation:
        - ``none``: no leak (the default);
        - ``never released``: the connection is never given back to the pool;
        - ``never closed``: a connection is opened beside the pool and never closed.

        The pool's state and the server's backends are counted after each launch
        for `Connections Should Not Leak`; then everything is closed, so a leak
        leaves nothing behind.

        | Define Connection Pool Tool | hold connections | pool_size=10 | hold=100 ms | acquire_timeout=1 s |
        | Define Connection Pool Tool | leaky | pool_size=10 | leak=never released | leak_every=10 |
        """
        self.runtime.tools[name] = ConnectionPoolTool(
            self.runtime.postgres,
            name=name,
            pool_size=pool_size,
            hold=hold.total_seconds(),
            acquire_timeout=acquire_timeout.total_seconds(),
            leak=leak,
            leak_every=leak_every,
        )


class PoolCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""

    def _census(self, launch: LaunchRecord | int | None) -> ConnectionCensus:
        record, tool = self.launch_of(
            launch, ConnectionPoolTool, "a connection pool tool", "Define Connection Pool Tool"
        )
        latest = [other for other in self.runtime.launches if other.tool is tool][-1]
        if latest is not record:
            raise ConfigurationError(
                f"Launch {record.number}'s connection count was replaced by launch {latest.number} of the same "
                f"tool {tool.name!r}: check connections right after each launch."
            )
        if tool.census is None:
            raise StampedeError(
                f"Launch {record.number} of {tool.name!r} has no connection count: the tool's teardown failed "
                "before it could count (see the errors of Launch Agents)."
            )
        return tool.census

    @keyword(tags=["checks", "pools"])
    def connections_should_not_leak(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when the launch leaked connections, from the pool or on the server.

        Two counts, both taken after every agent finished: the pool must have no
        connection still checked out, and the run's backends in
        ``pg_stat_activity`` (counted by ``application_name``) after the tool
        closed its pool must be back to the count before the launch. A miss names
        the numbers and the agents that took the leaked connections. Works on the
        latest launch of a `Define Connection Pool Tool` tool unless ``launch`` is given.

        | Connections Should Not Leak |
        """
        self.judge(*check_connections_not_leaked(self._census(launch)), caption="Connection leaks")

    @keyword(tags=["checks", "pools"])
    def pool_exhaustion_should_degrade_gracefully(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless every operation was either served or refused with an acquire timeout.

        An error, or an operation cut off by the launch's ``operation_timeout``
        (an acquire that waited without a bound), is not graceful. Combine with
        thresholds for how much may be refused, e.g. ``success_rate >= 80%``.

        | Pool Exhaustion Should Degrade Gracefully |
        | Thresholds Should Hold | success_rate >= 80% | acquire_p95 < 2s |
        """
        self.judge(check_graceful_degradation(self.launch_record(launch).result.history))

    @keyword(tags=["checks", "pools"])
    def log_connection_acquire_times(self, launch: LaunchRecord | int | None = None) -> None:
        """Logs acquire-time percentiles (p50, p90, p95, p99, max, mean) and how many acquires timed out.

        | Log Connection Acquire Times |
        """
        verdict = describe_acquires(self.launch_record(launch).result.history)
        self.log_html(verdict_table([verdict], caption=verdict.name))
        self.log(verdict.message)

    @keyword(tags=["checks", "pools"])
    def get_acquire_timeout_count(self, launch: LaunchRecord | int | None = None) -> int:
        """Returns how many operations gave up waiting for a pool connection (error code ``acquire_timeout``).

        | ${refused}= | Get Acquire Timeout Count |
        | Should Be True | ${refused} > 0 |
        """
        return int(describe_acquires(self.launch_record(launch).result.history).value or 0)
