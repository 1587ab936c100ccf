"""Judging a list-append history: every anomaly it shows, and whether it satisfies a consistency model."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...errors import ConfigurationError
from ...history import Operation
from ...records.list_append import APPEND, TransactionStatus
from ...verdicts import Verdict
from .._report import capped, plural, rows_note
from .anomaly import Anomaly
from .cycles import NAMES as CYCLE_NAMES
from .cycles import component_cycles, components
from .explain import cycle_anomaly
from .graph import dependency_graph
from .index import HistoryIndex
from .models import model, ruled_out
from .single import NAMES as SINGLE_NAMES
from .single import single_anomalies
from .transactions import Transaction, transactions_from

ANOMALY_NAMES = SINGLE_NAMES + CYCLE_NAMES
MIN_COMMITTED = 2
"""Fewer committed transactions than this cannot show a dependency between two of them."""


@dataclass
class Analysis:
    """What a history shows: how its transactions ended, its anomalies, and what (if anything) it lacked."""

    transactions: int
    committed: int
    failed: int
    unknown: int
    unknown_seen: int
    anomalies: list[Anomaly]
    missing: str | None
    """Why the history cannot show that an anomaly is absent (None when it can)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Where the checking time went, by phase."""

    def counts(self) -> dict[str, int]:
        """How many of each anomaly, in the order of :data:`ANOMALY_NAMES`."""
        found = Counter(anomaly.name for anomaly in self.anomalies)
        return {name: found[name] for name in ANOMALY_NAMES if found[name]}

    @property
    def ruled_out(self) -> list[str]:
        """The consistency models the anomalies found rule out, weakest first."""
        return ruled_out(anomaly.name for anomaly in self.anomalies)

    def describe(self) -> str:
        """``120 transactions: 100 committed, 15 failed, 5 of unknown outcome left out (…)``."""
        seen = f" (incl. {self.unknown_seen} of unknown outcome that a read saw)" if self.unknown_seen else ""
        left = self.unknown - self.unknown_seen
        unseen = f", {left} of unknown outcome left out (they may or may not have committed)" if left else ""
        counted = plural(self.transactions, "transaction")
        return f"{counted}: {self.committed} committed{seen}, {self.failed} failed{unseen}"


def analyse(operations: Iterable[Operation]) -> Analysis:
    """Every anomaly of a launch's list-append history (see stampede.records.list_append)."""
    return analyse_transactions(transactions_from(operations))


def analyse_transactions(
    transactions: Sequence[Transaction], *, process: bool = True, realtime: bool = True
) -> Analysis:
    """Every anomaly of ``transactions``; ``process`` and ``realtime`` add per-agent and real-time order edges."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    index = HistoryIndex(transactions)
    phase("index: writers, committed, version orders")
    anomalies = single_anomalies(index)
    phase("non-cycle anomalies")
    successors = dependency_graph(index, process=process, realtime=realtime)
    phase("dependency edges")
    found = components(successors)
    phase("strongly connected components")
    cycles = [cycle for component in found for cycle in component_cycles(successors, component)]
    phase("cycle searches")
    anomalies.extend(cycle_anomaly(index, cycle) for cycle in cycles)
    phase("explanations")
    statuses = Counter(txn.status for txn in transactions)
    return Analysis(
        len(transactions),
        index.committed_count,
        statuses[TransactionStatus.FAILED],
        statuses[TransactionStatus.UNKNOWN],
        len(index.observed_unknown),
        anomalies,
        _missing(index),
        seconds,
    )


def _missing(index: HistoryIndex) -> str | None:
    txns = index.transactions
    if not txns:
        return "the history holds no transaction"
    committed = index.committed_count
    if committed == 0:
        return f"none of its {plural(len(txns), 'transaction')} committed (each failed or ended unknown)"
    if committed < MIN_COMMITTED:
        return f"only {plural(committed, 'transaction')} committed: too few to depend on one another"
    written = {key for txn in txns if index.committed[txn.index] for f, key, _ in txn.ops if f == APPEND}
    if not any(key in written for _, key, _ in index.reads):
        return "no committed transaction read a key a committed transaction appended to, so no order can be inferred"
    return None


def check_consistency(analysis: Analysis, model_name: str) -> Verdict:
    """Passes when the history shows none of the anomalies ``model_name`` forbids (and could have shown them)."""
    wanted = model(model_name)
    forbidden = [anomaly for anomaly in analysis.anomalies if anomaly.name in wanted.forbids]
    counts = Counter(anomaly.name for anomaly in forbidden)
    verdict = f"{wanted.name} history"
    expected = f"no anomaly {wanted.name} forbids"
    if forbidden:
        found = ", ".join(f"{count} {name}" for name, count in counts.items())
        rows = [_row(anomaly) for anomaly in forbidden]
        return Verdict(
            verdict,
            False,
            expected,
            found,
            found,
            f"The history is not {wanted.name}: it shows {found}, which {wanted.name} forbids "
            f"({analysis.describe()}). For example, {forbidden[0].name}: {forbidden[0].explanation}"
            f"{rows_note(len(rows))}",
            capped(rows),
            value=len(forbidden),
        )
    allowed = analysis.counts()
    shown = (
        f"; it does show {', '.join(f'{n} {name}' for name, n in allowed.items())}, which {wanted.name} allows"
        if allowed
        else ""
    )
    if analysis.missing:
        return Verdict(
            verdict,
            True,
            expected,
            "nothing to judge",
            message=f"Not judged against {wanted.name}: {analysis.missing} ({analysis.describe()}).",
            inconclusive=True,
            value=0,
        )
    return Verdict(
        verdict,
        True,
        expected,
        "none found",
        message=f"The history is consistent with {wanted.name}: none of the anomalies it forbids was found "
        f"({analysis.describe()}){shown}.",
        details=capped([_row(anomaly) for anomaly in analysis.anomalies]),
        value=0,
    )


def check_anomalies_include(analysis: Analysis, names: Sequence[str]) -> Verdict:
    """Passes when the history shows at least one of each anomaly in ``names``."""
    if not names:
        raise ConfigurationError("Name at least one anomaly to look for, such as G2-item.")
    unknown = [name for name in names if name not in ANOMALY_NAMES]
    if unknown:
        raise ConfigurationError(
            f"Unknown anomaly {', '.join(repr(n) for n in unknown)}; the anomalies are: {', '.join(ANOMALY_NAMES)}."
        )
    counts = analysis.counts()
    absent = [name for name in names if name not in counts]
    expected = "at least one " + ", ".join(names)
    measured = ", ".join(f"{counts.get(name, 0)} {name}" for name in names)
    rows = [_row(anomaly) for anomaly in analysis.anomalies if anomaly.name in names]
    if not absent:
        return Verdict(
            "anomalies found",
            True,
            expected,
            measured,
            message=f"The history shows {measured} ({analysis.describe()}).",
            details=capped(rows),
            value=len(rows),
        )
    others = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no anomaly at all"
    if analysis.missing:
        return Verdict(
            "anomalies found",
            False,
            expected,
            measured,
            message=f"Not judged: {analysis.missing} ({analysis.describe()}), so the history could not show "
            f"{', '.join(absent)}.",
            inconclusive=True,
            value=len(rows),
        )
    return Verdict(
        "anomalies found",
        False,
        expected,
        measured,
        f"no {', '.join(absent)}",
        f"Expected the history to show {', '.join(absent)}, found none ({analysis.describe()}); it shows {others}.",
        capped(rows),
        value=len(rows),
    )


def _row(anomaly: Anomaly) -> dict[str, str]:
    return {"anomaly": anomaly.name, "transactions": ", ".join(anomaly.transactions), "why": anomaly.explanation}
