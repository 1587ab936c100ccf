"""Keywords for deterministic interleavings: sessions, their steps, a permutation run step by step, and its outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from html import escape
from pathlib import Path

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
    run_spec,
)
from stampede.interleavings.spec import DEFAULT_PERMUTATION_LIMIT, InterleavingSpec
from stampede.interleavings.spec_file import read_spec
from stampede.interleavings.table import AnomalyMatrix, AnomalyVerdict, timeline_table
from stampede.interleavings.transcript import SpecRun, compare
from stampede.units import format_duration

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
        self._spec_runs: list[SpecRun] = []
        self._evidence: list[Evidence] = []
        self.matrix = AnomalyMatrix()

    def _current(self) -> InterleavingSpec:
        owner = (str(self.variable("SUITE NAME", "")), str(self.variable("TEST NAME", "")))
        if owner != self._owner:
            self._owner, self._spec, self._runs, self._evidence = owner, InterleavingSpec(), [], []
            self._spec_runs = []
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
    def define_session(self, name: str, isolation: str = "read committed", setup: str = "", teardown: str = "") -> None:
        """Defines a session: a connection of its own whose transactions run at ``isolation``.

        ``isolation`` is ``read committed``, ``repeatable read`` or
        ``serializable``. When a permutation runs, each session opens its
        connection, runs ``setup`` (any SQL: ``SET lock_timeout = '1s'``, or a
        ``BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE`` of its
        own) and, unless the setup began one, begins a transaction; steps
        such as ``COMMIT`` end it (later steps then run in transactions of
        their own). After the steps it runs ``teardown``. A transaction still
        open then is rolled back, and every connection is closed: nothing
        outlives the permutation.

        Sessions and steps belong to the test that defines them.

        | Define Session | T1 | repeatable read |
        | Define Session | T2 | serializable | setup=BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE |
        """
        self._current().add_session(name, isolation, setup=setup, teardown=teardown)

    @keyword(tags=["interleavings"])
    def define_step(self, session: str, step: str, *sql: str) -> None:
        """Defines a step: the SQL that ``session`` runs when a permutation names ``step``.

        Step names are unique across sessions, so a permutation names steps
        only. The SQL runs in this run's schema; it may be ``COMMIT`` or
        ``ROLLBACK``, or several statements separated by ``;`` (sent at once,
        as isolationtester sends a step). SQL continued on ``...`` lines is
        joined with line breaks.

        | Define Step | T1 | r1 | SELECT value FROM il_test WHERE id = 1 |
        | Define Step | T1 | c1 | COMMIT |
        | Define Step | T2 | move | UPDATE il_test SET value = value - 1 WHERE id = 1; |
        | ... | | | UPDATE il_test SET value = value + 1 WHERE id = 2 |
        """
        self._current().add_step(session, step, "\n".join(sql))

    @keyword(tags=["interleavings"])
    def define_permutation_setup(self, *sql: str) -> None:
        """Defines SQL run before each permutation, on a connection of its own: (re)create the data the steps use.

        It may hold several statements, on ``...`` lines too. Tables land in
        this run's schema, which every test of the run shares: prefix their
        names (e.g. ``il_``).

        | Define Permutation Setup | TRUNCATE il_test; INSERT INTO il_test VALUES (1, 10), (2, 20) |
        """
        self._current().setup = "\n".join(sql)

    @keyword(tags=["interleavings"])
    def define_permutation_teardown(self, *sql: str) -> None:
        """Defines SQL run after each permutation (after the sessions' teardowns), on a connection of its own.

        | Define Permutation Teardown | DROP TABLE IF EXISTS il_test |
        """
        self._current().teardown = "\n".join(sql)

    @keyword(tags=["interleavings"])
    def run_permutation(
        self, *steps: str, step_timeout: timedelta = timedelta(seconds=DEFAULT_STEP_TIMEOUT)
    ) -> PermutationRun:
        """Runs the named steps in that order and returns their outcomes; logs a timeline table.

        Steps are named in one argument (``r1 r2 w1 c1``) or several, as a
        spec file's permutation line names them: a step may come back (its
        second run is then named ``r1#2`` in assertions), a name may be
        quoted (``"my step"``), and annotations hold a step's completion back
        as isolationtester's do: ``w2(*)`` shows it waiting once, ``w2(c1)``
        until ``c1`` completes, ``w2(r1 notices 1)`` until ``r1``'s session
        received one more notice. A step
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
        notation = " ".join(steps)
        count = len(spec.permutation(notation)) if spec.steps else 0
        run = self.runtime.run(
            run_permutation(self.runtime.postgres, spec, notation, step_timeout=timeout),
            timeout=self._bound(count, timeout),
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
    def step_should_fail_with(
        self, step: str, sqlstate: str, message: str | None = None, run: PermutationRun | None = None
    ) -> None:
        """Fails unless the step failed with the SQLSTATE ``sqlstate`` (and, given ``message``, that message).

        Common ones: ``40001`` serialization failure, ``40P01`` deadlock,
        ``55P03`` lock not available, ``25P02`` statement in a failed
        transaction, ``57014`` cancelled. ``message`` is the server's primary
        message, whole.

        | Step Should Fail With | w2 | 40001 |
        | Step Should Fail With | w2 | 40001 | message=could not serialize access due to concurrent update |
        """
        self._judge(expectations.step_should_fail_with, step, run, sqlstate, message)

    @keyword(tags=["interleavings"])
    def step_should_send_notices(self, step: str, *messages: str, run: PermutationRun | None = None) -> None:
        """Fails unless the step's session received exactly these NOTICE or WARNING messages while it ran.

        Each message is the primary text (without ``NOTICE:``), in the order
        they arrived. None given: the step must have sent none.

        | Step Should Send Notices | s1 | lock taken | row 1 updated |
        """
        self._judge(expectations.step_should_send_notices, step, run, messages)

    @keyword(tags=["interleavings"])
    def step_should_wait_for_a_safe_snapshot(self, step: str, run: PermutationRun | None = None) -> None:
        """Fails unless the step blocked waiting for a safe snapshot (``pg_safe_snapshot_blocking_pids``), not a lock.

        | Step Should Wait For A Safe Snapshot | r2 |
        """
        self._judge(expectations.step_should_wait_for_a_safe_snapshot, step, run)

    @keyword(tags=["interleavings"])
    def timeline_should_show(self, *entries: str, run: PermutationRun | None = None) -> None:
        """Fails unless the permutation's timeline shows exactly ``entries``, in order: each a step and its kind.

        Kinds: ``blocked``, ``resumed`` (completed after blocking), ``completed``,
        ``failed`` (with an error, blocked first or not), ``cancelled``.

        | Timeline Should Show | w1 completed | w2 blocked | c1 completed | w2 resumed |
        """
        chosen = self._run(run)
        expectations.timeline_should_show(chosen, entries)
        self.log(f"The timeline of {chosen} shows {', '.join(entries)}.")

    @keyword(tags=["interleavings"])
    def step_should_be_released_by(self, step: str, releaser: str, run: PermutationRun | None = None) -> None:
        """Fails unless the step blocked and completed while ``releaser`` ran: the step that let it go on.

        | Step Should Block | w2 |
        | Step Should Be Released By | w2 | c1 |
        """
        self._judge(expectations.step_should_be_released_by, step, run, releaser)

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
    def run_isolation_spec(
        self,
        path: str,
        limit: int = DEFAULT_PERMUTATION_LIMIT,
        step_timeout: timedelta = timedelta(seconds=DEFAULT_STEP_TIMEOUT),
    ) -> SpecRun:
        """Runs a spec file in isolationtester's format and logs its output in isolationtester's expected form.

        The spec holds setup blocks (each run before every permutation), a
        teardown, sessions with their own setup, steps and teardown, and
        permutation lines (with annotations such as ``s1a(*)``, ``s2a(s1a)``,
        ``s2a(s1a notices 1)``); without permutation lines every interleaving
        runs (at most ``limit``). A relative ``path`` is read from the
        directory of the suite file. Sessions run exactly their own SQL, as
        isolationtester's do; tables land in this run's schema. A spec that
        cannot be read fails saying which line to fix.

        Each permutation is logged as a timeline; the whole output, as
        isolationtester would have written it, is logged too. Step
        assertions (`Step Should Block`, ...) then look at the last
        permutation unless given ``run=``.

        | Run Isolation Spec | specs/lost_update.spec |
        | Isolation Spec Output Should Match | expected/lost_update.out |
        """
        source = self._path(path)
        spec = read_spec(source)
        timeout = step_timeout.total_seconds()
        self._current()
        permutations = spec.permutations or spec.every_permutation(limit)
        bound = sum(self._bound(len(steps), timeout) for steps in permutations)
        runs = self.runtime.run(run_spec(self.runtime.postgres, spec, limit=limit, step_timeout=timeout), timeout=bound)
        self._runs.extend(runs)
        for run in runs:
            self._log_run(run)
        spec_run = SpecRun(source, len(spec.sessions), tuple(runs))
        self._spec_runs.append(spec_run)
        self.log_html(f"<pre>{escape(spec_run.text)}</pre>")
        return spec_run

    @keyword(tags=["interleavings"])
    def isolation_spec_output_should_match(self, expected: str, run: SpecRun | None = None) -> None:
        """Fails unless the last spec run's output (or ``run``'s) is the one in the ``expected`` file.

        As pg_regress does, ``name_1.out``, ``name_2.out``... beside it are
        accepted too (a server version may answer differently). Only line
        endings and blank lines at the end are left aside. On a mismatch the
        log shows a unified diff against ``expected``. A relative path is
        read from the directory of the suite file.

        | Run Isolation Spec | specs/lost_update.spec |
        | Isolation Spec Output Should Match | expected/lost_update.out |
        """
        self._current()
        if run is None:
            if not self._spec_runs:
                raise StampedeError("No isolation spec has run in this test: call Run Isolation Spec first.")
            run = self._spec_runs[-1]
        comparison = compare(run.text, self._path(expected))
        if comparison.ok:
            self.log(f"The output of {run.source.name} matches {comparison.matched}.")
            return
        self.log_html(f"<pre>{escape(comparison.diff)}</pre>")
        tried = ", ".join(path.name for path in comparison.tried)
        raise expectations.OutcomeMismatch(
            f"The output of {run.source.name} matches none of {tried}: the diff against {comparison.tried[0].name} "
            "is in the log."
        )

    def _path(self, path: str) -> Path:
        given = Path(path)
        if given.is_absolute():
            return given
        suite = Path(str(self.variable("SUITE SOURCE", "") or "."))
        return (suite.parent if suite.is_file() else suite) / given

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
