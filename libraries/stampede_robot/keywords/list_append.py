"""Keywords for list-append histories: defining the tool, and judging which isolation anomalies a launch showed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from robot.api.deco import keyword

from stampede.checkers.list_append import Analysis, analyse, check_anomalies_include, check_consistency
from stampede.checkers.list_append.models import ruled_out
from stampede.retry import RetryPolicy
from stampede.workloads.isolation import IsolationLevel
from stampede.workloads.list_append import ListAppendTool

from ..component import LibraryComponent
from ..cycle_drawing import cycle_svg
from ..html import table
from ..runtime import LaunchRecord


class ListAppendToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "isolation"])
    def define_list_append_tool(
        self,
        name: str,
        *,
        keys: int = 10,
        max_transaction_length: int = 4,
        read_fraction: float = 0.5,
        isolation: IsolationLevel = IsolationLevel.SERIALIZABLE,
        appends_per_key: int = 32,
        transaction_timeout: timedelta = timedelta(seconds=5),
        lock_timeout: timedelta | None = None,
        max_retries: int = 0,
    ) -> None:
        """Defines a tool whose every operation is one transaction of random appends to lists and reads of them.

        Each transaction has 1 to ``max_transaction_length`` micro-operations on
        ``keys`` live keys: a read of a key's whole list (a share
        ``read_fraction`` of them) or an append of a value no other append
        uses. Every micro-operation and the values it read or appended go into
        the history, so `History Should Satisfy` and `Get Anomalies` can tell
        from the history alone which isolation anomalies the launch showed. A
        key retires after ``appends_per_key`` appends and a fresh one takes its
        place, so lists stay short; each launch starts on fresh keys.

        Transactions run at ``isolation`` (``read committed``, ``repeatable
        read`` or ``serializable``); one that fails (40001, 40P01, a constraint)
        is recorded as failed, and retried up to ``max_retries`` times. One that
        takes longer than ``transaction_timeout`` is cut off and recorded as a
        timeout: its outcome is unknown, which the checker never takes for a
        commit. Keep it below the launch's operation timeout. With
        ``lock_timeout`` (e.g. ``200 ms``) a transaction waiting longer than
        that for a row lock is aborted (55P03) and recorded as failed: a
        deadlock then costs that wait instead of the server's
        ``deadlock_timeout`` (1 s by default). The lists live in table
        ``list_append`` of the run's schema.

        Any tool that records its transactions in the same shape (see
        ``stampede/records/list_append.py``), such as a Python tool of your own
        on another store, is judged the same way.

        | Define List Append Tool | history | keys=10 | max_transaction_length=4 | isolation=repeatable read |
        | Launch Agents | history | 10 | iterations=50 |
        | History Should Satisfy | snapshot isolation |
        """
        tool = ListAppendTool(
            self.runtime.postgres,
            name=name,
            keys=keys,
            max_transaction_length=max_transaction_length,
            read_fraction=read_fraction,
            appends_per_key=appends_per_key,
            isolation=isolation,
            transaction_timeout=transaction_timeout.total_seconds(),
            lock_timeout=None if lock_timeout is None else lock_timeout.total_seconds(),
            retry=RetryPolicy(max_retries=max_retries),
        )
        self.runtime.run(tool.prepare())
        self.runtime.tools[name] = tool


class ListAppendCheckKeywords(LibraryComponent):
    """Judges a launch's list-append history (LockConflicts)."""

    _last: tuple[LaunchRecord, Analysis] | None = None

    def _analysis(self, launch: LaunchRecord | int | None) -> Analysis:
        """The analysis of the launch's history, made once per launch."""
        record = self.launch_record(launch)
        if self._last is None or self._last[0] is not record:
            self._last = (record, analyse(record.result.history))
        return self._last[1]

    @keyword(tags=["checks", "isolation"])
    def history_should_satisfy(self, model: str, launch: LaunchRecord | int | None = None) -> None:
        """Fails when the launch's list-append history shows an anomaly that consistency ``model`` forbids.

        ``model`` is one of ``read uncommitted``, ``read committed``, ``cursor
        stability``, ``repeatable read``, ``snapshot isolation``,
        ``serializable``, ``strong session snapshot isolation``, ``strong
        snapshot isolation``, ``strong session serializable`` or ``strict
        serializable``; docs/list_append.md has the table of which anomaly each
        forbids. Each anomaly found is explained (which append or read orders
        each pair of transactions), tabled and drawn in the log.

        PostgreSQL's ``repeatable read`` is snapshot isolation: it allows write
        skew (G2-item), so judge it as ``snapshot isolation``, not as
        ``repeatable read`` (which forbids G2-item).

        A history that could not show an anomaly (no committed transaction,
        fewer than two, or no read of a key a committed transaction appended
        to) fails as inconclusive, saying what was missing.

        | History Should Satisfy | serializable |
        | History Should Satisfy | snapshot isolation | launch=${load} |
        """
        analysis = self._analysis(launch)
        self._log_anomalies(analysis)
        self.judge(check_consistency(analysis, model))

    @keyword(tags=["checks", "isolation"])
    def anomalies_should_include(self, *anomalies: str, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless the launch's list-append history shows at least one of each of ``anomalies``.

        Anomalies are named as in docs/list_append.md: ``G0``, ``G1a``, ``G1b``,
        ``G1c``, ``G-single``, ``G-nonadjacent``, ``G2-item`` (and each cycle's
        ``-process`` and ``-realtime`` variant), ``lost update``, ``internal
        inconsistency``, ``duplicate elements``, ``incompatible orders``,
        ``garbage read``. A name matches only itself: ``G2-item`` is not
        ``G2-item-realtime``.

        | Anomalies Should Include | G2-item |
        | Anomalies Should Include | G-single | lost update |
        """
        analysis = self._analysis(launch)
        self._log_anomalies(analysis)
        self.judge(check_anomalies_include(analysis, anomalies))

    @keyword(tags=["checks", "isolation"])
    def get_anomalies(self, launch: LaunchRecord | int | None = None) -> dict[str, Any]:
        """Returns what the launch's list-append history shows, and logs each anomaly with its cycle drawn.

        The result has ``counts`` (each anomaly found → how many; an anomaly
        not found is not in it), ``ruled out`` (the consistency models those
        anomalies rule out, weakest first), ``transactions``, ``committed``,
        ``failed`` and ``unknown``.

        | ${found}= | Get Anomalies |
        | Dictionary Should Not Contain Key | ${found}[counts] | G2-item |
        | Log | ${found}[ruled out] |
        """
        analysis = self._analysis(launch)
        self._log_anomalies(analysis)
        return {
            "counts": analysis.counts(),
            "ruled out": analysis.ruled_out,
            "transactions": analysis.transactions,
            "committed": analysis.committed,
            "failed": analysis.failed,
            "unknown": analysis.unknown,
        }

    def _log_anomalies(self, analysis: Analysis) -> None:
        self.log(analysis.describe() + ".")
        if not analysis.anomalies:
            self.log("No anomaly found.")
            return
        counts = analysis.counts()
        self.log_html(
            table(
                ["anomaly", "found", "models ruled out"],
                [[name, found, ", ".join(ruled_out([name]))] for name, found in counts.items()],
                "Anomalies",
            )
        )
        first = {name: next(a for a in analysis.anomalies if a.name == name) for name in counts}
        for anomaly in first.values():
            if anomaly.is_cycle:
                rows = [[step.source, step.relation, step.target, step.words] for step in anomaly.steps]
                html = table(["from", "edge", "to", "why"], rows, f"{anomaly.name}: {' → '.join(anomaly.transactions)}")
                self.log_html(
                    f"<div style='display:flex;gap:12px;align-items:flex-start'>{cycle_svg(anomaly)}{html}</div>"
                )
            else:
                self.log(f"{anomaly.name}: {anomaly.explanation}")
