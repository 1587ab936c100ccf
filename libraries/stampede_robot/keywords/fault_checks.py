"""Keywords that judge what faults did to a launch: the ledger, the stall, the added latency."""

from __future__ import annotations

from datetime import timedelta

from robot.api.deco import keyword

from stampede.checkers.fault_effects import check_added_latency, check_stall
from stampede.checkers.ledger import check_ledger
from stampede.errors import ConfigurationError
from stampede.faults.routing import direct_postgres, direct_redis
from stampede.units import positive_seconds
from stampede.workloads.ledgered_credits import LedgeredCreditDeductionTool
from stampede.workloads.redis_counter import RedisCounterTool

from ..component import LibraryComponent
from ..runtime import LaunchRecord


class FaultCheckKeywords(LibraryComponent):
    """Judges launches that ran through faults (LockConflicts)."""

    @keyword(tags=["faults", "checks"])
    def ledger_should_account_for_every_operation(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless the balance and the history match the ledger, and reports unknown outcomes resolved.

        For a tool that keeps a ledger (`Define Ledgered Credit Deduction Tool`,
        `Define Redis Counter Tool`): the balance must be the starting one minus
        (or plus) the ledger's total; every operation the history calls
        successful must be in the ledger and none the server refused; operations
        whose outcome the client could not know (connection lost, timed out) are
        looked up in the ledger and reported: "3 operations with unknown
        outcome: 2 had committed, 1 had not".

        | Ledger Should Account For Every Operation |
        """
        record = self.launch_record(launch)
        tool, key = record.tool, record.result.tool_settings.get("ledger key")
        if isinstance(tool, LedgeredCreditDeductionTool) and key:
            snapshot = self.runtime.run(tool.ledger_snapshot(key, direct_postgres(self.runtime.postgres)))
        elif isinstance(tool, RedisCounterTool) and key:
            snapshot = self.runtime.run(tool.ledger_snapshot(key, direct_redis(self.runtime.redis)))
        else:
            raise ConfigurationError(
                f"Launch {record.number} ran {record.tool.name!r}, which keeps no ledger: define the tool with "
                "Define Ledgered Credit Deduction Tool or Define Redis Counter Tool."
            )
        self.judge(check_ledger(record.result.history, snapshot))

    @keyword(tags=["faults", "checks"])
    def stall_should_match_the_fault(
        self, tolerance: timedelta = timedelta(milliseconds=500), launch: LaunchRecord | int | None = None
    ) -> float:
        """Fails unless progress stalled for about as long as the last partition or Redis pause; returns the stall in s.

        The stall is the longest stretch of the launch in which no operation
        succeeded. It must overlap the fault (a `Partition` until its `Heal`, or
        a `Pause Redis Clients`), differ from its length by at most
        ``tolerance``, and operations must succeed again after it.

        | ${stall}= | Stall Should Match The Fault | tolerance=300 ms |
        """
        record = self.launch_record(launch)
        bound = positive_seconds(tolerance, what="tolerance")
        result = record.result
        windows = [w for w in self.runtime.fault_windows if result.started_ns <= w.start_ns <= result.ended_ns]
        if not windows:
            raise ConfigurationError(
                f"No partition (healed) or Redis pause began during launch {record.number}: inject one while "
                "its agents run (Launch Agents In Background)."
            )
        window = windows[-1]
        verdict = check_stall(result.history, window.fault, window.start_ns, window.end_ns, bound)
        self.judge(verdict)
        return float(verdict.value or 0.0)

    @keyword(tags=["faults", "checks"])
    def median_latency_should_rise_by(
        self,
        added: timedelta,
        baseline: LaunchRecord | int,
        tolerance: timedelta = timedelta(milliseconds=20),
        launch: LaunchRecord | int | None = None,
    ) -> float:
        """Fails unless the p50 latency of ``launch`` is that of ``baseline`` plus ``added``, ± ``tolerance``.

        Returns the measured rise in seconds. ``added`` is what the operations
        should feel: the injected delay times the round trips it applies to.

        | ${quiet}= | Launch Agents | count | 5 | iterations=20 |
        | Add Latency | redis | 50 ms | direction=to client |
        | Launch Agents | count | 5 | iterations=20 |
        | Median Latency Should Rise By | 50 ms | baseline=${quiet} |
        """
        before = self.launch_record(baseline).summary.latency.percentiles[50.0]
        after = self.launch_record(launch).summary.latency.percentiles[50.0]
        added_s = positive_seconds(added, what="added latency")
        verdict = check_added_latency(before, after, added_s, positive_seconds(tolerance, what="tolerance"))
        self.judge(verdict)
        return float(verdict.value or 0.0)
