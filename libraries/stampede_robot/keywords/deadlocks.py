"""Keywords for deadlocking transfers: defining the tool, and judging detection and recovery."""

from __future__ import annotations

from datetime import timedelta

from robot.api import logger
from robot.api.deco import keyword

from stampede.checkers.deadlocks import (
    check_deadlock_resolution,
    check_deadlocks_detected,
    check_no_deadlocks,
    check_transfers_conserved,
    count_deadlocks,
)
from stampede.errors import ConfigurationError
from stampede.retry import RetryPolicy
from stampede.units import format_duration, parse_duration
from stampede.verdicts import Verdict
from stampede.workloads.transfers import LockOrder, TransferTool

from ..component import LibraryComponent
from ..runtime import LaunchRecord, Runtime

SEED_BOUND = timedelta(milliseconds=500)
DETECTION_MARGIN = timedelta(milliseconds=250)


class DeadlockToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "deadlocks"])
    def define_transfer_tool(
        self,
        name: str,
        accounts: list[int],
        *,
        lock_order: LockOrder = LockOrder.OPPOSITE,
        amount: int = 1,
        think_time: timedelta = timedelta(milliseconds=10),
        max_retries: int = 20,
        backoff: timedelta = timedelta(milliseconds=2),
        max_backoff: timedelta = timedelta(milliseconds=100),
        **session_settings: str,
    ) -> None:
        """Defines a tool that moves ``amount`` credits between two accounts per operation, in one transaction.

        A transfer updates one account, waits ``think_time`` (which widens the
        window for a deadlock), then updates the other. Agents work in pairs on
        pairs of ``accounts`` (an even number of them; agents 1 and 2 share the
        first two, agents 3 and 4 the next two, and so on, wrapping around):
        odd agents move credits from the first account of their pair to the
        second, even agents back. ``lock_order`` is:
        - ``opposite``: each transfer locks its source first, so partners lock
          the same two rows in opposite orders: deadlocks;
        - ``ordered``: each transfer locks the lower account id first: no deadlock can form.

        PostgreSQL breaks a deadlock by aborting one transaction with SQLSTATE
        40P01; the tool retries it up to ``max_retries`` times (``0``: never),
        waiting a random time up to ``backoff`` × 2^n, capped at ``max_backoff``.
        For each deadlock the tool records how long the victim's blocking
        statement waited until the 40P01 came back: its resolution time.

        Any other ``name=value`` is a PostgreSQL setting for the agents' sessions,
        such as ``deadlock_timeout=1s`` (superuser only) or ``lock_timeout=50ms``;
        a setting the server refuses fails here with its reason. The
        ``deadlock_timeout`` the sessions will run with is logged.

        | ${accounts}= | Create Credit Accounts | 20 | balance=10000 |
        | Define Transfer Tool | transfer | ${accounts} | lock_order=opposite | think_time=10 ms |
        | Define Transfer Tool | slow detection | ${accounts} | deadlock_timeout=1s |
        """
        tool = TransferTool(
            self.runtime.postgres,
            name=name,
            accounts=accounts,
            lock_order=lock_order,
            amount=amount,
            think_time=think_time.total_seconds(),
            retry=RetryPolicy(max_retries, backoff.total_seconds(), max_backoff.total_seconds()),
            session_settings=session_settings,
        )
        deadlock_timeout = self.runtime.run(tool.validate())
        self.runtime.tools[name] = tool
        source = "set for the agents' sessions" if "deadlock_timeout" in session_settings else "the server's"
        self.log(
            f"Tool {name!r}: {len(accounts) // 2} pairs of accounts, lock order {lock_order.value}, "
            f"think time {format_duration(think_time.total_seconds())}; deadlock_timeout {deadlock_timeout} ({source})."
        )


def transfer_credits_verdict(runtime: Runtime, record: LaunchRecord, tool: TransferTool) -> Verdict:
    """The transfer tool's accounts hold, in total and one by one, what the launch's successful transfers left there."""
    if tool.initial_balances is None:
        raise ConfigurationError(f"Launch {record.number} of {tool.name!r} recorded no starting balances.")
    final = runtime.run(tool.final_balances())
    return check_transfers_conserved(tool.initial_balances, final, record.result.history)


class DeadlockCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""

    def _deadlock_timeout(self, record: LaunchRecord) -> tuple[str, str]:
        """The ``deadlock_timeout`` the launch's sessions had, and whether the server or the tool set it."""
        tool = record.tool
        if isinstance(tool, TransferTool) and tool.deadlock_timeout is not None:
            return tool.deadlock_timeout, "session" if "deadlock_timeout" in tool.session_settings else "server"
        return self.runtime.run(self.runtime.postgres.fetch_setting("deadlock_timeout")), "server"

    @keyword(tags=["checks", "deadlocks"])
    def get_deadlock_count(self, launch: LaunchRecord | int | None = None) -> int:
        """Returns how many deadlocks (attempts that ended in SQLSTATE 40P01) the launch met.

        | ${deadlocks}= | Get Deadlock Count |
        | Should Be True | ${deadlocks} > 0 |
        """
        deadlocks = count_deadlocks(self.launch_record(launch).result.history)
        self.log(f"{deadlocks} deadlocks (SQLSTATE 40P01).")
        return deadlocks

    @keyword(tags=["checks", "deadlocks"])
    def every_deadlock_should_be_detected_and_resolved(
        self,
        within: timedelta = SEED_BOUND,
        percentile: float = 95.0,
        launch: LaunchRecord | int | None = None,
    ) -> None:
        """Fails unless every deadlock surfaced as SQLSTATE 40P01 and deadlocks were resolved ``within`` the bound.

        Detection: every attempt that did not commit ended in 40P01; one that
        ended as a timeout or another error is a deadlock PostgreSQL did not
        break in time. Resolution: the ``percentile`` (95 by default; 100 judges
        the slowest) of the victims' waits until their 40P01 must be at most
        ``within``; the slowest and the ``deadlock_timeout`` the sessions had are
        reported. A launch with no deadlock fails: it proves nothing about them.

        | Every Deadlock Should Be Detected And Resolved | within=500 ms |
        | Every Deadlock Should Be Detected And Resolved | within=500 ms | percentile=100 |
        """
        if not 0 < percentile <= 100:
            raise ConfigurationError(f"percentile must be above 0 and at most 100, got {percentile}")
        record = self.launch_record(launch)
        history = record.result.history
        deadlock_timeout, source = self._deadlock_timeout(record)
        self.judge(
            check_deadlocks_detected(history),
            check_deadlock_resolution(
                history,
                within.total_seconds(),
                deadlock_timeout=deadlock_timeout,
                timeout_source=source,
                pct=percentile,
            ),
            caption="Deadlock detection and resolution",
        )

    @keyword(tags=["checks", "deadlocks"])
    def no_deadlock_should_occur(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when any attempt ended in a deadlock (40P01), counting them and the operations that met one.

        | No Deadlock Should Occur |
        """
        self.judge(check_no_deadlocks(self.launch_record(launch).result.history))

    @keyword(tags=["checks", "deadlocks"])
    def get_deadlock_resolution_bound(
        self, bound: timedelta = SEED_BOUND, margin: timedelta = DETECTION_MARGIN
    ) -> timedelta:
        """Returns ``bound``, or twice the server's ``deadlock_timeout`` plus ``margin`` when ``bound`` cannot hold.

        PostgreSQL looks for a deadlock only once a lock wait has lasted
        ``deadlock_timeout``, so no deadlock resolves sooner; and a wait whose
        one check came before the cycle closed is freed only by its partner's
        check, up to twice ``deadlock_timeout`` after it began. On a server whose
        ``deadlock_timeout`` leaves less than ``margin`` below ``bound``, the
        bound cannot hold: this returns ``2 × deadlock_timeout + margin`` instead
        and logs a warning naming the server's value and how to hold ``bound``.

        | ${bound}= | Get Deadlock Resolution Bound | 500 ms | margin=250 ms |
        | Every Deadlock Should Be Detected And Resolved | within=${bound} |
        """
        setting = self.runtime.run(self.runtime.postgres.fetch_setting("deadlock_timeout"))
        timeout = timedelta(seconds=parse_duration(setting, what="deadlock_timeout"))
        asked = format_duration(bound.total_seconds())
        if timeout + margin <= bound:
            self.log(
                f"The server's deadlock_timeout is {setting}: deadlocks can be resolved within {asked}, "
                f"the bound judged."
            )
            return bound
        derived = 2 * timeout + margin
        logger.warn(
            f"The server's deadlock_timeout is {setting}: PostgreSQL looks for a deadlock only once a lock wait has "
            f"lasted that long (a wait checked before its cycle closed, up to twice that), so deadlocks cannot be "
            f"resolved within {asked} there. Judging against 2 × deadlock_timeout "
            f"+ {format_duration(margin.total_seconds())} = {format_duration(derived.total_seconds())} instead; "
            f"set deadlock_timeout below {asked} on the server to hold {asked}."
        )
        return derived
