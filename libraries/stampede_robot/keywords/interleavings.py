"""Keywords for deterministic interleavings: sessions, their steps, a permutation run step by step, and its outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from robot.api.deco import keyword

from stampede.errors import ConfigurationError, StampedeError
from stampede.interleavings import expectations
from stampede.interleavings.evidence import (
    Evidence,
    SessionCommits,
    StepReturns,
    check_evidence,
    normalize_row,
    observe,
)
from stampede.interleavings.outcome import PermutationRun
from stampede.interleavings.runner import (
    CANCEL_GRACE,
    DEFAULT_STEP_TIMEOUT,
    run_every_permutation,
    run_permutation,
)
from stampede.interleavings.spec import DEFAULT_PERMUTATION_LIMIT, InterleavingSpec
from stampede.interleavings.table import AnomalyMatrix, AnomalyVerdict, timeline_table
from stampede.units import format_duration
from stampede.workloads.isolation import IsolationLevel

from ..component import LibraryComponent
from ..html import table
from ..runtime import Runtime

# Every wait of the runner is bounded by the step timeout plus the cancel grace periods.
_SLACK_PER_STEP = 3 * CANCEL_GRACE
_SLACK = 30.0


class InterleavingKeywords(LibraryComponent):
    """Interleavings belong to the test that defines them: a new test starts with no session and no step."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._owner: tuple[str, str] | None = None
        self._spec = InterleavingSpec()
        self._runs: list[PermutationRun] = []
        self._evidence: list[Evidence] = []
        self.matrix = AnomalyMatrix()

    def _current(self) -> InterleavingSpec:
        owner = (str(self.variable("SUITE NAME", "")), str(self.variable("TEST NAME", "")))
        if owner != self._owner:
            self._owner, self._spec, self._runs, self._evidence = owner, InterleavingSpec(), [], []
        return self._spec

    def _run(self, run: PermutationRun | None) -> PermutationRun:
        if run is not None:
            return run
        self._current()
        if not self._runs:
            raise StampedeError("No permutation has run in this test: call Run Permutation first.")
        return self._runs[-1]

    def _bound(self, steps: int, step_timeout: float) -> float:
        return (steps + 1) * (step_timeout + _SLACK_PER_STEP) + _SLACK

    def _log_run(self, run: PermutationRun) -> None:
        headers, rows = timeline_table(run)
        caption = f"Permutation {run.label} on PostgreSQL {run.server_version} ({format_duration(run.seconds)})"
        self.log_html(table(headers, rows, caption))

    @keyword(tags=["interleavings"])
    def define_session(self, name: str, isolation: IsolationLevel = IsolationLevel.READ_COMMITTED) -> None:
        """Defines a session: a connection of its own whose transactions run at ``isolation``.

        ``isolation`` is ``read committed``, ``repeatable read`` or
        ``serializable``. When a permutation runs, each session opens its
        connection and begins a transaction; steps such as ``COMMIT`` end it
        (later steps then run in transactions of their own). A transaction
        still open when the permutation ends is rolled back, and every
        connection is closed: nothing outlives the permutation.

        Sessions and steps belong to the test that defines them.

        | Define Session | T1 | repeatable read |
        | Define Session | T2 | repeatable read |
        """
        self._current().add_session(name, isolation)

    @keyword(tags=["interleavings"])
    def define_step(self, session: str, step: str, sql: str) -> None:
        """Defines a step: one SQL statement that ``session`` runs when a permutation names ``step``.

        Step names are unique across sessions, so a permutation names steps only.
        The statement runs in this run's schema; it may be ``COMMIT`` or
        ``ROLLBACK``. One statement per step, so each has an outcome of its own.

        | Define Step | T1 | r1 | SELECT value FROM il_test WHERE id = 1 |
        | Define Step | T1 | c1 | COMMIT |
        """
        self._current().add_step(session, step, sql)

    @keyword(tags=["interleavings"])
    def define_permutation_setup(self, sql: str) -> None:
        """Defines SQL run before each permutation, on a connection of its own: (re)create the data the steps use.

        It may hold several statements. Tables land in this run's schema, which
        every test of the run shares: prefix their names (e.g. ``il_``).

        | Define Permutation Setup | TRUNCATE il_test; INSERT INTO il_test VALUES (1, 10), (2, 20) |
        """
        self._current().setup = sql

    @keyword(tags=["interleavings"])
    def run_permutation(
        self, *steps: str, step_timeout: timedelta = timedelta(seconds=DEFAULT_STEP_TIMEOUT)
    ) -> PermutationRun:
        """Runs the named steps in that order and returns their outcomes; logs a timeline table.

        Steps are named in one argument (``r1 r2 w1 c1``) or several. A step
        that blocks on a lock held by another session (``pg_blocking_pids``,
        asked every 10 ms as PostgreSQL's isolation tests do) is noted, and the
        permutation goes on with the next step; the blocked step's outcome is
        logged when it completes. A step blocked by sessions that have nothing
        left to run is cancelled and reported as never resumed; a step neither
        finished nor blocked within ``step_timeout`` is cancelled and reported
        as hung.

        The timeline has sessions as columns and what happened in time order
        as rows, and ends with how each session's transaction ended.

        | Run Permutation | r1 r2 w1 w2 c1 c2 |
        | ${run}= | Run Permutation | l1 l2 | step_timeout=2 s |
        """
        spec = self._current()
        timeout = step_timeout.total_seconds()
        names = [name for part in steps for name in part.split()]
        run = self.runtime.run(
            run_permutation(self.runtime.postgres, spec, names, step_timeout=timeout),
            timeout=self._bound(len(names), timeout),
        )
        self._runs.append(run)
        self._log_run(run)
        return run

    @keyword(tags=["interleavings"])
    def run_every_permutation(
        self, limit: int = DEFAULT_PERMUTATION_LIMIT, step_timeout: timedelta = timedelta(seconds=DEFAULT_STEP_TIMEOUT)
    ) -> list[PermutationRun]:
        """Runs every order of all steps that keeps each session's steps in their defined order; returns the runs.

        The permutation setup runs before each one. Refuses to start when there
        are more than ``limit`` permutations. Each run is logged as a timeline;
        step assertions then look at the last run unless given ``run=``.

        | ${runs}= | Run Every Permutation |
        | FOR | ${run} | IN | @{runs} |
        |     | Session Should Commit | T1 | run=${run} |
        | END |
        """
        spec = self._current()
        timeout = step_timeout.total_seconds()
        count = spec.permutation_count()
        bound = count * self._bound(len(spec.steps), timeout) if count <= limit else _SLACK
        runs = self.runtime.run(
            run_every_permutation(self.runtime.postgres, spec, limit=limit, step_timeout=timeout), timeout=bound
        )
        self._runs.extend(runs)
        for run in runs:
            self._log_run(run)
        return runs

    @keyword(tags=["interleavings"])
    def step_should_block(self, step: str, run: PermutationRun | None = None) -> None:
        """Fails unless the step waited on a lock held by another session (whether or not it resumed later).

        | Step Should Block | w2 |
        """
        self._judge(expectations.step_should_block, step, run)

    @keyword(tags=["interleavings"])
    def step_should_not_block(self, step: str, run: PermutationRun | None = None) -> None:
        """Fails when the step waited on a lock held by another session.

        | Step Should Not Block | r2 |
        """
        self._judge(expectations.step_should_not_block, step, run)

    @keyword(tags=["interleavings"])
    def step_should_succeed(self, step: str, status: str | None = None, run: PermutationRun | None = None) -> None:
        """Fails unless the step ran without error; with ``status``, unless its command tag is that one.

        | Step Should Succeed | w1 |
        | Step Should Succeed | w2 | UPDATE 1 |
        """
        self._judge(expectations.step_should_succeed, step, run, status)

    @keyword(tags=["interleavings"])
    def step_should_fail_with(self, step: str, sqlstate: str, run: PermutationRun | None = None) -> None:
        """Fails unless the step failed with the SQLSTATE ``sqlstate``.

        Common ones: ``40001`` serialization failure, ``40P01`` deadlock,
        ``55P03`` lock not available, ``25P02`` statement in a failed
        transaction, ``57014`` cancelled.

        | Step Should Fail With | w2 | 40001 |
        """
        self._judge(expectations.step_should_fail_with, step, run, sqlstate)

    @keyword(tags=["interleavings"])
    def step_should_return(self, step: str, *rows: str, run: PermutationRun | None = None) -> None:
        """Fails unless the step returned exactly ``rows``, in order; each row is its values separated by commas.

        Write ``NULL`` for a null. No rows given: the step must return none.

        | Step Should Return | r1 | 1, 10 | 2, 20 |
        | Step Should Return | r2 |
        """
        self._judge(expectations.step_should_return, step, run, rows)

    @keyword(tags=["interleavings"])
    def session_should_commit(self, session: str, run: PermutationRun | None = None) -> None:
        """Fails unless the session's last transaction committed (a ``COMMIT`` that answered ``COMMIT``).

        A ``COMMIT`` after a failed statement answers ``ROLLBACK``: that fails here, saying where it failed.

        | Session Should Commit | T1 |
        """
        self._judge(expectations.session_should_commit, session, run)

    @keyword(tags=["interleavings"])
    def session_should_roll_back(self, session: str, run: PermutationRun | None = None) -> None:
        """Fails unless the session's last transaction was rolled back (by a step, an error, or at the end).

        | Session Should Roll Back | T2 |
        """
        self._judge(expectations.session_should_roll_back, session, run)

    def _judge(self, check: Callable[..., None], subject: str, run: PermutationRun | None, *expected: object) -> None:
        chosen = self._run(run)
        check(chosen, subject, *expected)
        if subject in chosen.outcomes:
            outcome = chosen.outcome(subject)
            self.log(f"{outcome.label} {outcome.story()}.")
        else:
            self.log(f"Session {subject}: {chosen.transaction(subject).summary()}.")

    @keyword(tags=["interleavings"])
    def anomaly_shows_when_step_returns(self, step: str, *rows: str) -> None:
        """Says what the scenario's anomaly looks like: ``step`` succeeds and returns exactly ``rows``.

        Rows are written as in `Step Should Return` (``1, 10``); none means the
        step returns no rows. With `Anomaly Shows When Session Commits` the
        pieces add up: the anomaly shows only when every one holds.
        `Record Anomaly` reads them to tell what the permutation showed.

        | Anomaly Shows When Step Returns | r2x | 101 |
        | Anomaly Shows When Step Returns | final | 1, 12 | 2, 21 |
        """
        spec = self._current()
        self._evidence.append(check_evidence(spec, StepReturns(step, tuple(normalize_row(row) for row in rows))))

    @keyword(tags=["interleavings"])
    def anomaly_shows_when_session_commits(self, session: str) -> None:
        """Says that the scenario's anomaly needs ``session``'s transaction to commit (both writers of a write skew).

        | Anomaly Shows When Session Commits | T1 |
        | Anomaly Shows When Session Commits | T2 |
        """
        spec = self._current()
        self._evidence.append(check_evidence(spec, SessionCommits(session)))

    @keyword(tags=["interleavings"])
    def record_anomaly(self, anomaly: str, expected: AnomalyVerdict, run: PermutationRun | None = None) -> None:
        """Records in the anomaly matrix whether the permutation showed ``anomaly``, and fails unless as ``expected``.

        What the permutation showed is read from the evidence the scenario
        defined (`Anomaly Shows When Step Returns`, `Anomaly Shows When Session
        Commits`): the anomaly was ``allowed`` when every piece held, else
        ``prevented``, and then the matrix says how, read from the outcomes:
        blocking, a ``40001`` / ``40P01``, or else the reads' snapshot. The
        matrix records what was observed; a test that expected otherwise fails
        saying what the permutation showed.

        | Anomaly Shows When Step Returns | final | 11 |
        | Anomaly Shows When Session Commits | T2 |
        | Run Permutation | r1x r2x w1x w2x c1 c2 final |
        | Record Anomaly | lost update (P4) | allowed |
        """
        chosen = self._run(run)
        if not self._evidence:
            raise ConfigurationError(
                f"Record Anomaly cannot tell whether {chosen} showed {anomaly!r}: say what the anomaly looks like "
                "in this scenario with Anomaly Shows When Step Returns (a step and the rows it returns) or Anomaly "
                "Shows When Session Commits."
            )
        observation = observe(chosen, self._evidence)
        entry = self.matrix.record(anomaly, chosen, observation, str(self.variable("TEST NAME", "")))
        self.log(f"{entry.anomaly} at {entry.level.value}: {entry.cell}; {entry.how}. Evidence seen: {entry.seen}.")
        if entry.verdict is not expected:
            shows = " and ".join(str(piece) for piece in self._evidence)
            raise expectations.OutcomeMismatch(
                f"{entry.anomaly} at {entry.level.value}: expected {expected.value}, but {chosen} showed it "
                f"{entry.verdict.value}: {entry.seen} (the anomaly shows when {shows})."
            )

    @keyword(tags=["interleavings"])
    def log_anomaly_matrix(self) -> None:
        """Logs the anomalies recorded so far as a table: anomalies as rows, isolation levels as columns.

        A second table says how each prevented anomaly was prevented, and by which test.

        | Log Anomaly Matrix |
        """
        if not self.matrix.entries:
            self.log("No anomaly was recorded: nothing to show in the anomaly matrix.")
            return
        versions = " and ".join(sorted({entry.server_version for entry in self.matrix.entries.values()}))
        headers, rows = self.matrix.summary_table()
        self.log_html(table(headers, rows, f"Isolation anomalies on PostgreSQL {versions}: prevented or allowed"))
        headers, rows = self.matrix.details_table()
        self.log_html(table(headers, rows, "How each level prevented each anomaly"))
