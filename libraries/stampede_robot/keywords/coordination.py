"""Keywords for two-phase commit and sagas across services: defining the tool, and judging what it did."""

from __future__ import annotations

from robot.api.deco import keyword
from robot.api.exceptions import SkipExecution

from stampede.checkers.atomicity import check_all_or_nothing, check_none_in_doubt, check_sagas, launch_batch
from stampede.checkers.conservation import check_conservation
from stampede.errors import ConfigurationError
from stampede.workloads.injected_faults import parse_rate
from stampede.workloads.saga import Compensation, SagaStep, SagaTool
from stampede.workloads.two_phase_commit import CommitProtocol, CoordinatorFault, TwoPhaseCommitTool

from ..component import LibraryComponent
from ..html import table
from ..runtime import LaunchRecord


class CoordinationToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "coordination"])
    def skip_unless_prepared_transactions_are_allowed(self) -> None:
        """Skips the test, saying why, when the PostgreSQL in use has ``max_prepared_transactions = 0``.

        Two-phase commit needs ``PREPARE TRANSACTION``, which such a server
        refuses. The test is then skipped with the setting and its value as the
        reason: never passed. The embedded PostgreSQL allows 100.

        | Skip Unless Prepared Transactions Are Allowed |
        """
        target = self.runtime.postgres
        allowed = self.runtime.run(target.fetch_setting("max_prepared_transactions"))
        if int(allowed) == 0:
            raise SkipExecution(
                f"PostgreSQL at {target.display_dsn} has max_prepared_transactions = {allowed}: it refuses PREPARE "
                "TRANSACTION, so two-phase commit cannot be tested there. Set max_prepared_transactions above 0 "
                "(needs a server restart), or use the embedded PostgreSQL."
            )
        self.log(f"max_prepared_transactions = {allowed}: two-phase commit is allowed.")

    @keyword("Define Two-Phase Commit Tool", tags=["workloads", "coordination"])
    def define_two_phase_commit_tool(
        self,
        name: str,
        *,
        protocol: CommitProtocol = CommitProtocol.TWO_PHASE,
        fault: CoordinatorFault = CoordinatorFault.NONE,
        fault_rate: str = "25%",
        amount: int = 1,
    ) -> None:
        """Defines a tool that places an order in one service and charges for it in another, per operation.

        The two services are two schemas of this run (``…_orders``, ``…_billing``),
        each written over its own connection. ``protocol``:
        - ``two-phase``: ``PREPARE TRANSACTION`` on both, log the decision in the
          coordinator's table, then ``COMMIT PREPARED`` on both;
        - ``naive``: commit orders, then billing (a seeded bug: no atomicity).

        ``fault`` happens to ``fault_rate`` of the operations (exactly that share,
        spread evenly):
        - ``none``;
        - ``billing refuses``: billing votes no, and the operation is aborted;
        - ``crash after first prepare``, ``crash before decision``, ``crash after
          decision``, ``crash after first commit``: the coordinator drops its
          connections at that point, leaving prepared transactions in doubt
          until `Recover In-Doubt Transactions` resolves them.
        The naive protocol knows only ``billing refuses`` and ``crash after first commit``.

        Each operation records how long its phases took: ``prepare``, ``decide``
        and ``commit`` (thresholds can name ``prepare_p95``, ``commit_max``…).

        Two-phase commit needs two free prepared-transaction slots per agent
        (``max_prepared_transactions``); the launch says so and stops when the
        server has fewer.

        | Define Two-Phase Commit Tool | place order | fault=crash before decision | fault_rate=30% |
        | Define Two-Phase Commit Tool | naive order | protocol=naive | fault=crash after first commit |
        """
        self.runtime.tools[name] = TwoPhaseCommitTool(
            self.runtime.postgres,
            name=name,
            protocol=protocol,
            fault=fault,
            fault_rate=parse_rate(fault_rate, what="fault_rate"),
            amount=amount,
        )

    @keyword("Recover In-Doubt Transactions", tags=["workloads", "coordination"])
    def recover_in_doubt_transactions(self, tool: str | None = None) -> dict[str, int]:
        """Resolves what a crashed coordinator left prepared: commit where its decision was logged, else roll back.

        Recovery reads ``pg_prepared_xacts`` for the transactions of two-phase
        commit tool ``tool`` (by default this test's latest launch's tool), looks each
        operation up in the coordinator's decision log, and commits it where the
        decision was logged, rolls it back where not (presumed abort). Run it
        after the launch: an operation still in flight has no decision yet.
        Returns ``committed`` and ``rolled back`` counts and logs each transaction.

        | ${recovered}= | Recover In-Doubt Transactions |
        | Should Be True | ${recovered}[committed] > 0 |
        """
        chosen = self.runtime.tool(tool) if tool is not None else self.launch_record(None).tool
        if not isinstance(chosen, TwoPhaseCommitTool):
            raise ConfigurationError(
                f"{chosen.name!r} is not a two-phase commit tool: define one with Define Two-Phase Commit Tool."
            )
        recovery = self.runtime.run(chosen.recover())
        rows = [(gid, "COMMIT PREPARED") for gid in recovery.committed]
        rows += [(gid, "ROLLBACK PREPARED") for gid in recovery.rolled_back]
        self.log_html(table(["prepared transaction (gid)", "resolved by"], rows, f"Recovery of {chosen.name!r}"))
        self.log(
            f"Recovery resolved {recovery.resolved} in-doubt transactions of {chosen.name!r}: "
            f"committed {len(recovery.committed)} (decision logged), rolled back {len(recovery.rolled_back)} "
            "(no decision: presumed abort)."
        )
        return {"committed": len(recovery.committed), "rolled back": len(recovery.rolled_back)}

    @keyword(tags=["workloads", "coordination"])
    def define_saga_tool(
        self,
        name: str,
        *,
        failing_step: SagaStep = SagaStep.ISSUE_TICKET,
        failure_rate: str = "25%",
        compensation: Compensation = Compensation.FULL,
        amount: int = 10,
        balance: int = 1_000_000,
    ) -> None:
        """Defines a tool that books a trip per operation as a saga over PostgreSQL and Redis.

        Steps: ``reserve credits`` (PostgreSQL: take ``amount`` from a wallet of
        ``balance`` credits the launch creates, record the reservation),
        ``record booking`` (Redis: ``HSET``), ``issue ticket`` (PostgreSQL).
        ``failing_step`` fails for ``failure_rate`` of the sagas (exactly that
        share), and the completed steps are compensated in reverse order.
        ``compensation``:
        - ``full``: every completed step is undone;
        - ``none``: nothing is undone (a seeded bug);
        - ``skip booking``: the Redis booking is never removed (a seeded bug).

        | Define Saga Tool | book trip | failure_rate=30% |
        | Define Saga Tool | book trip | failing_step=record booking | compensation=none |
        """
        self.runtime.tools[name] = SagaTool(
            self.runtime.postgres,
            self.runtime.redis,
            name=name,
            failing_step=failing_step,
            failure_rate=parse_rate(failure_rate, what="failure_rate"),
            compensation=compensation,
            amount=amount,
            balance=balance,
        )


class CoordinationCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""

    def _two_phase(self, launch: LaunchRecord | int | None) -> tuple[LaunchRecord, TwoPhaseCommitTool, str]:
        record, tool = self.launch_of(
            launch, TwoPhaseCommitTool, "a two-phase commit tool", "Define Two-Phase Commit Tool"
        )
        return record, tool, launch_batch(record.result.history) or tool.batch

    @keyword(tags=["checks", "coordination"])
    def every_operation_should_be_all_or_nothing(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless every operation of the launch took effect in every service it touched, or in none.

        Reads what each service holds now, for the tool the launch ran:
        - a two-phase commit tool (`Define Two-Phase Commit Tool`): both
          participants' tables and the coordinator's decision log. Fails on an
          operation found on one participant only (partial state), on one
          reported successful but applied nowhere, and on one whose commit
          decision was logged but that is applied nowhere (run `Recover In-Doubt
          Transactions` first after a crash).
        - a saga tool (`Define Saga Tool`): the reservations and tickets in
          PostgreSQL and the bookings in Redis. Every saga must have completed
          all its steps or had all of them compensated; a saga with some steps
          left and others not fails, naming the steps. The wallet must then hold
          its starting balance minus ``amount`` per completed saga: a compensated
          reservation gives its credits back.
        Works on this test's latest launch unless ``launch`` is given.

        | Every Operation Should Be All Or Nothing |
        """
        record = self.launch_record(launch)
        tool = record.tool
        if isinstance(tool, SagaTool):
            self._judge_sagas(record, tool)
        elif isinstance(tool, TwoPhaseCommitTool):
            batch = launch_batch(record.result.history) or tool.batch
            self.judge(check_all_or_nothing(record.result.history, self.runtime.run(tool.observe(batch))))
        else:
            raise ConfigurationError(
                f"Launch {record.number} ran {tool.name!r}, which does not span services: define a two-phase "
                "commit tool with Define Two-Phase Commit Tool or a saga tool with Define Saga Tool."
            )

    @keyword(tags=["checks", "coordination"])
    def no_prepared_transaction_should_be_left_in_doubt(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails while any prepared transaction of the launch is still in ``pg_prepared_xacts``.

        Such a transaction waits for a decision, holding its locks, until someone
        commits or rolls it back: after a coordinator crash, that is recovery's job.

        | No Prepared Transaction Should Be Left In Doubt |
        """
        record, tool, batch = self._two_phase(launch)
        self.judge(check_none_in_doubt(record.result.history, self.runtime.run(tool.observe(batch))))

    def _judge_sagas(self, record: LaunchRecord, tool: SagaTool) -> None:
        history = record.result.history
        state = self.runtime.run(tool.observe(launch_batch(history) or tool.batch))
        self.judge(check_sagas(history, state))
        self.judge(check_conservation(state.initial_credits, state.final_credits, history, lambda _: tool.amount))
