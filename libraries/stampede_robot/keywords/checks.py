"""Keywords that judge a launch's history (and the data it left) against an invariant."""

from __future__ import annotations

from robot.api.deco import keyword

from stampede.checkers.conservation import check_conservation
from stampede.checkers.deadlocks import check_forward_progress
from stampede.checkers.fencing import check_protected_data
from stampede.checkers.fields_kept import check_fields_kept
from stampede.checkers.lost_updates import check_lost_updates
from stampede.checkers.outcomes import check_all_succeeded, check_retries_not_exhausted, classify_outcomes
from stampede.checkers.run_completion import check_runs_completed
from stampede.errors import ConfigurationError
from stampede.outcomes import Outcome
from stampede.verdicts import Judgement
from stampede.workloads.credits import CreditDeductionTool
from stampede.workloads.json_config import JsonConfigTool
from stampede.workloads.lock_contention import LockContentionTool
from stampede.workloads.transfers import TransferTool
from stampede.workloads.websocket_agents import WebSocketAgentTool

from ..component import LibraryComponent
from ..html import verdict_table
from ..runtime import LaunchRecord
from .deadlocks import transfer_credits_verdict
from .websocket import agent_credits_verdict


class CheckKeywords(LibraryComponent):
    @keyword(tags=["checks", "credits"])
    def credits_should_be_conserved(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless the credits the launch left are what its successful operations account for.

        Reads the balances from the database now and compares them with the
        launch's history, as the tool the launch ran moves credits:
        - a credit deduction tool: the account's final balance must be its
          starting balance minus every successful deduction;
        - a transfer tool (`Define Transfer Tool`): the accounts must hold in
          total what they held at the start (transfers move credits, never create
          them), and each its starting balance plus what the successful
          transfers moved in, minus what they moved out;
        - a WebSocket agent tool, on the reference agent service: every user's
          credits must be its credits at session start minus the cost of each
          run it completed. Credits left over mean the service lost deductions
          of concurrent runs.
        A credit that appeared or vanished fails the test with the amount.
        Works on this test's latest launch unless ``launch`` is given.

        | Credits Should Be Conserved |
        | Credits Should Be Conserved | ${launch} |
        """
        record = self.launch_record(launch)
        tool = record.tool
        if isinstance(tool, CreditDeductionTool):
            if tool.initial_balance is None:
                raise ConfigurationError(f"Launch {record.number} of {tool.name!r} recorded no starting balance.")
            final = self.runtime.run(tool.final_balance())
            self.judge(check_conservation(tool.initial_balance, final, record.result.history, tool.amount_of))
        elif isinstance(tool, TransferTool):
            self.judge(transfer_credits_verdict(self.runtime, record, tool))
        elif isinstance(tool, WebSocketAgentTool):
            self.judge(agent_credits_verdict(self.runtime, tool))
        else:
            raise ConfigurationError(
                f"Launch {record.number} ran {tool.name!r}, which moves no credits this check knows: it judges a "
                "credit deduction tool, a transfer tool or a WebSocket agent tool."
            )

    @keyword(tags=["checks"])
    def no_update_should_be_lost(
        self,
        launch: LaunchRecord | int | None = None,
        errors_allowed: bool = False,
        subject: str | None = None,
        version: str | None = None,
    ) -> None:
        """Fails when a successful write was wiped out by another: two writers built on the same state.

        From the history, for most tools: each successful write must have read
        a version no other successful write read. For a JSON configuration it
        also checks every agent's last field value is in the final document.
        For a lock tool (`Define Lock Tool`) it reads the shared counter the
        lock guards now: it must equal the number of writes it accepted, and a
        miss lists the writes that wiped increments out (two holders at once);
        lock calls that raised fail it, named, unless ``errors_allowed=True``
        (see `Holders Should Never Overlap`).

        The history check groups successful operations by the ``subject`` and
        the ``version`` they read (the keys of their ``read`` values):
        ``account`` and ``balance`` by default, ``config`` and ``version`` for a
        JSON configuration. Name others for a tool of your own (`Define SQL
        Transaction Tool`, `Define Python Tool`).

        | No Update Should Be Lost |
        | No Update Should Be Lost | subject=seat | version=version |
        """
        record = self.launch_record(launch)
        tool, history = record.tool, record.result.history
        if subject is not None or version is not None:
            self.judge(check_lost_updates(history, subject=subject or "account", version=version or "balance"))
        elif isinstance(tool, JsonConfigTool):
            self.judge(check_lost_updates(history, subject="config", version="version"))
            self.judge(check_fields_kept(history, self.runtime.run(tool.final_document())))
        elif isinstance(tool, LockContentionTool):
            states = self.runtime.run(tool.resource_states())
            self.judge(check_protected_data(history, states, errors_allowed=errors_allowed))
        else:
            self.judge(check_lost_updates(history))

    @keyword(tags=["checks"])
    def get_lost_update_count(self, launch: LaunchRecord | int | None = None) -> int:
        """Returns how many successful writes were overwritten by a writer that read the same version.

        Fails, rather than returning 0, when there was nothing to count: no
        successful operation recorded what it read.

        | ${lost}= | Get Lost Update Count |
        | Should Be True | ${lost} > 0 |
        """
        record = self.launch_record(launch)
        keys = {"subject": "config", "version": "version"} if isinstance(record.tool, JsonConfigTool) else {}
        verdict = check_lost_updates(record.result.history, **keys)
        self.log_html(verdict_table([verdict], caption=verdict.name))
        if verdict.judgement is Judgement.INCONCLUSIVE:
            raise AssertionError(verdict.message)
        return int(verdict.value or 0)

    @keyword(tags=["checks"])
    def retries_should_not_be_exhausted(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when any operation gave up after using all its retries, listing them.

        | Retries Should Not Be Exhausted |
        """
        self.judge(check_retries_not_exhausted(self.launch_record(launch).result.history))

    @keyword(tags=["checks"])
    def all_operations_should_succeed(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless every operation ended ``ok``, telling what else happened in the terms of the launch's tool.

        A miss counts the failed operations by outcome and error code, except:
        - for a transfer tool (`Define Transfer Tool`) it tells deadlock victims
          that retried until they committed (forward progress) from victims not
          retried, victims that gave up after their retries, and other failures;
        - for a WebSocket agent tool, whose operation is a run that succeeds
          when it ends with its done event, it names each error code
          (``connect_failed``, ``refused``, ``bad_frame``, ``field_missing`` and others)
          with its first reason and what to fix. Stricter than `Every Agent
          Should Be Answered`.
        Works on this test's latest launch unless ``launch`` is given.

        | All Operations Should Succeed |
        """
        record = self.launch_record(launch)
        history = record.result.history
        if isinstance(record.tool, TransferTool):
            self.judge(check_forward_progress(history))
        elif isinstance(record.tool, WebSocketAgentTool):
            self.judge(check_runs_completed(history))
        else:
            self.judge(check_all_succeeded(history))

    @keyword(tags=["checks"])
    def log_outcome_classification(self, launch: LaunchRecord | int | None = None) -> None:
        """Logs operations by outcome and by SQLSTATE or exception, with each one's share of attempts.

        | Log Outcome Classification |
        """
        self.judge(classify_outcomes(self.launch_record(launch).result.history))

    @keyword(tags=["checks"])
    def get_outcome_count(self, outcome: Outcome, launch: LaunchRecord | int | None = None) -> int:
        """Returns how many attempts ended in ``outcome``, retried ones included.

        Outcomes: ``ok``, ``conflict``, ``serialization failure``, ``deadlock``, ``timeout``, ``error``.

        | ${failures}= | Get Outcome Count | serialization failure |
        """
        return self.launch_record(launch).summary.counts.attempts_ending(outcome)
