"""Tables a reader takes in at a glance: a permutation's timeline, and the anomaly × isolation level matrix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..errors import ConfigurationError
from ..workloads.isolation import IsolationLevel
from .evidence import Observation
from .outcome import PermutationRun

ABORTING_SQLSTATES = {"40001": "serialization failure", "40P01": "deadlock"}


def timeline_table(run: PermutationRun) -> tuple[list[str], list[list[str]]]:
    """Sessions as columns, what happened in time order as rows, and how each transaction ended last."""
    names = list(run.sessions)
    headers = ["#", *(session.heading for session in run.sessions.values())]
    rows = []
    for number, entry in enumerate(run.timeline, 1):
        row = [str(number)] + [""] * len(names)
        # What ran on the control connection (a set-up or teardown block) is shown under the first session.
        row[1 + (names.index(entry.session) if entry.session in names else 0)] = entry.text
        rows.append(row)
    rows.append(["end", *(run.transactions[name].summary() for name in names)])
    return headers, rows


class AnomalyVerdict(StrEnum):
    """Whether an isolation level lets an anomaly happen."""

    PREVENTED = "prevented"
    ALLOWED = "allowed"


@dataclass(frozen=True)
class MatrixEntry:
    anomaly: str
    level: IsolationLevel
    verdict: AnomalyVerdict
    """What the permutation showed (not what the test expected)."""
    ways: tuple[tuple[str, str], ...]  # (short, detailed) for each way the level prevented it
    test: str
    server_version: str
    seen: str = ""
    """What the permutation showed of the anomaly's evidence."""

    @property
    def cell(self) -> str:
        """``prevented (blocking + 40001)``, ``allowed``."""
        if not self.ways:
            return self.verdict.value
        return f"{self.verdict.value} ({' + '.join(short for short, _ in self.ways)})"

    @property
    def how(self) -> str:
        return "; ".join(detail for _, detail in self.ways) or "—"


def ways_prevented(run: PermutationRun) -> tuple[tuple[str, str], ...]:
    """What stopped the anomaly, read from the outcomes: blocking, an aborting error, or else the reads' snapshot."""
    ways = []
    blocked = [outcome for outcome in run.outcomes.values() if outcome.blocked]
    if blocked:
        ways.append(("blocking", "blocking: " + ", ".join(f"{o.name} blocked {o.waited}" for o in blocked)))
    for code, name in ABORTING_SQLSTATES.items():
        steps = [outcome.name for outcome in run.outcomes.values() if outcome.sqlstate == code]
        if steps:
            ways.append((code, f"{code} {name} on {', '.join(steps)}"))
    if not ways:
        levels = {session.isolation for session in run.sessions.values()}
        if levels == {IsolationLevel.READ_COMMITTED}:
            ways.append(("snapshot", "snapshot: each statement reads only data committed before it began"))
        else:
            ways.append(("snapshot", "snapshot: every read sees the data as of the transaction's first statement"))
    return tuple(ways)


class AnomalyMatrix:
    """Which anomaly each isolation level prevented or allowed, as the tests recorded it."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, IsolationLevel], MatrixEntry] = {}

    def record(self, anomaly: str, run: PermutationRun, observation: Observation, test: str = "") -> MatrixEntry:
        """Record for ``anomaly``, at the one isolation level of ``run``'s sessions, what ``observation`` showed."""
        if not anomaly.strip():
            raise ConfigurationError("Name the anomaly to record, e.g. 'lost update (P4)'.")
        levels = {session.isolation for session in run.sessions.values()}
        level = next(iter(levels)) if len(levels) == 1 else None
        if level is None:
            shown = ", ".join(
                f"{name} at {s.isolation.value if s.isolation else 'its own setup'}" for name, s in run.sessions.items()
            )
            raise ConfigurationError(
                f"The anomaly matrix needs every session at one isolation level, but {run} ran {shown}."
            )
        verdict = AnomalyVerdict.ALLOWED if observation.shown else AnomalyVerdict.PREVENTED
        ways = ways_prevented(run) if verdict is AnomalyVerdict.PREVENTED else ()
        entry = MatrixEntry(anomaly.strip(), level, verdict, ways, test, run.server_version, observation.text)
        self.entries[(entry.anomaly, level)] = entry
        return entry

    def summary_table(self) -> tuple[list[str], list[list[str]]]:
        """Anomalies as rows (in the order first recorded), isolation levels as columns."""
        headers = ["anomaly", *(level.value for level in IsolationLevel)]
        anomalies = list(dict.fromkeys(anomaly for anomaly, _ in self.entries))
        rows = [
            [
                anomaly,
                *(
                    self.entries[(anomaly, level)].cell if (anomaly, level) in self.entries else "not tested"
                    for level in IsolationLevel
                ),
            ]
            for anomaly in anomalies
        ]
        return headers, rows

    def details_table(self) -> tuple[list[str], list[list[str]]]:
        """One row per recorded cell: how the level prevented the anomaly, and the test that showed it."""
        headers = ["anomaly", "isolation level", "verdict", "how", "evidence seen", "test"]
        rows = [[e.anomaly, e.level.value, e.verdict.value, e.how, e.seen, e.test] for e in self.entries.values()]
        return headers, rows
