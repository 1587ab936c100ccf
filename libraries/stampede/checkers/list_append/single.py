"""Anomalies seen without a cycle: aborted and intermediate reads, reads at odds with their own transaction,
duplicate or unknown elements, reads that disagree on an order, and lost updates."""

from __future__ import annotations

from collections import Counter

from ...records.list_append import APPEND, READ, TransactionStatus
from .anomaly import Anomaly, key_name, show
from .index import HistoryIndex
from .transactions import Key, Transaction, Value

G1A = "G1a"
G1B = "G1b"
INTERNAL = "internal inconsistency"
DUPLICATES = "duplicate elements"
INCOMPATIBLE = "incompatible orders"
GARBAGE = "garbage read"
LOST_UPDATE = "lost update"
NAMES = (G1A, G1B, INTERNAL, DUPLICATES, INCOMPATIBLE, GARBAGE, LOST_UPDATE)


def single_anomalies(index: HistoryIndex) -> list[Anomaly]:
    """Every non-cycle anomaly of the committed transactions' reads."""
    found: list[Anomaly] = []
    txns = index.transactions
    traceable = all(txn.ops or txn.status is not TransactionStatus.UNKNOWN for txn in txns)
    first_bad = {key: _first_bad_position(index, key, traceable) for key in index.versions}
    intermediate = _intermediate_values(index)
    for reader, key, values in index.reads:
        longest = index.versions[key]
        if values is not longest and values != longest[: len(values)]:
            found.append(_incompatible(index, reader, key, values))
            found.extend(_element_anomalies(index, txns[reader], key, values, traceable))
        elif first_bad[key] < len(values):
            found.extend(_element_anomalies(index, txns[reader], key, values, traceable))
        end = index.external_length(reader, key, values)
        if end and values[end - 1] in intermediate.get(key, ()) and index.writer[key][values[end - 1]] != reader:
            found.append(_intermediate_read(index, txns[reader], key, values, values[end - 1]))
    for txn in txns:
        if index.committed[txn.index]:
            found.extend(_internal(txn))
    found.extend(_lost_updates(index))
    return found


def _first_bad_position(index: HistoryIndex, key: Key, traceable: bool) -> int:
    """Where in ``key``'s longest read the first duplicate, aborted or unknown element is (its length if none)."""
    writers = index.writer.get(key, {})
    failed = TransactionStatus.FAILED
    seen: set[Value] = set()
    longest = index.versions[key]
    for place, value in enumerate(longest):
        writer = writers.get(value)
        if (
            value in seen
            or (writer is None and traceable)
            or (writer is not None and index.transactions[writer].status is failed)
        ):
            return place
        seen.add(value)
    return len(longest)


def _intermediate_values(index: HistoryIndex) -> dict[Key, set[Value]]:
    """Per key, the values a committed transaction appended and then appended more after, in the same transaction."""
    found: dict[Key, set[Value]] = {}
    for txn in index.transactions:
        if not index.committed[txn.index]:
            continue
        last: dict[Key, Value] = {}
        for f, key, value in txn.ops:
            if f == APPEND:
                if key in last:
                    found.setdefault(key, set()).add(last[key])
                last[key] = value
    return found


def _element_anomalies(
    index: HistoryIndex, reader: Transaction, key: Key, values: tuple[Value, ...], traceable: bool
) -> list[Anomaly]:
    found = []
    txns = index.transactions
    writers = index.writer.get(key, {})
    read = f"{reader.name} read {key_name(key)} as {show(values)}"
    for value, count in Counter(values).items():
        if count > 1:
            found.append(
                Anomaly(DUPLICATES, (reader.name,), f"{read}: {value} appears {count} times, but was appended once.")
            )
        writer = writers.get(value)
        if writer is None:
            if traceable:
                found.append(
                    Anomaly(GARBAGE, (reader.name,), f"{read}, which holds {value}: no transaction appended it.")
                )
        elif txns[writer].status is TransactionStatus.FAILED:
            found.append(
                Anomaly(
                    G1A,
                    (txns[writer].name, reader.name),
                    f"{read}, which holds {value}; {txns[writer].name} appended {value} and failed (rolled back), "
                    "so the read saw an aborted write.",
                )
            )
    return found


def _intermediate_read(
    index: HistoryIndex, reader: Transaction, key: Key, values: tuple[Value, ...], last: Value
) -> Anomaly:
    writer = index.transactions[index.writer[key][last]]
    appended = writer.appends(key)
    later = ", ".join(str(value) for value in appended[appended.index(last) + 1 :])
    return Anomaly(
        G1B,
        (writer.name, reader.name),
        f"{reader.name} read {key_name(key)} as {show(values)}, ending with {last}; {writer.name} appended {last} "
        f"and then {later} to {key_name(key)} in the same transaction, so the read saw an intermediate state.",
    )


def _incompatible(index: HistoryIndex, reader: int, key: Key, values: tuple[Value, ...]) -> Anomaly:
    txns = index.transactions
    longest = index.versions[key]
    other = txns[index.longest_reader[key]]
    return Anomaly(
        INCOMPATIBLE,
        (txns[reader].name, other.name),
        f"{txns[reader].name} read {key_name(key)} as {show(values)} and {other.name} as {show(longest)}: "
        f"neither is a prefix of the other, so they disagree on the order of the appends to {key_name(key)}.",
    )


def _internal(txn: Transaction) -> list[Anomaly]:
    """Reads at odds with the transaction's own earlier reads and appends of the same key.

    Lists only grow, so a read must start with what the transaction read of the key
    before, and end with what it appended to the key since (its own writes are visible
    to it, in order). Other transactions' appends may come between the two only where
    the isolation level lets a transaction see new commits (read committed).
    """
    found = []
    seen: dict[Key, tuple[Value, ...]] = {}
    own: dict[Key, list[Value]] = {}
    for f, key, value in txn.ops:
        if f == APPEND:
            own.setdefault(key, []).append(value)
            continue
        if value is None:
            continue
        before = seen.get(key, ())
        mine = own.get(key, [])
        starts = value[: len(before)] == before
        ends = not mine or list(value[-len(mine) :]) == mine
        if not (starts and ends):
            expected = []
            if before:
                expected.append(f"start with its earlier read {show(before)}")
            if mine:
                expected.append(f"end with its own appends {show(mine)}")
            found.append(
                Anomaly(
                    INTERNAL,
                    (txn.name,),
                    f"{txn.name} read {key_name(key)} as {show(value)}, but within the same transaction that read "
                    f"should {' and '.join(expected)}.",
                )
            )
        seen[key] = value
        own[key] = []
    return found


def _lost_updates(index: HistoryIndex) -> list[Anomaly]:
    """Committed transactions that read the same version of a key and then each appended to it.

    Each built on a version the other had already moved past: in any order of the two,
    the second read a list without the first one's append.
    """
    groups: dict[tuple[Key, tuple[Value, ...]], list[tuple[Transaction, Value]]] = {}
    for txn in index.transactions:
        if not index.committed[txn.index]:
            continue
        first_read: dict[Key, tuple[Value, ...]] = {}
        grouped: set[Key] = set()
        for f, key, value in txn.ops:
            if f == READ and value is not None:
                first_read.setdefault(key, value)
            elif f == APPEND and key in first_read and key not in grouped:
                grouped.add(key)
                groups.setdefault((key, first_read[key]), []).append((txn, value))
    found = []
    for (key, version), members in groups.items():
        if len(members) < 2:
            continue
        names = tuple(txn.name for txn, _ in members)
        every = "both" if len(names) == 2 else "all"
        appends = ", ".join(f"{txn.name} {value}" for txn, value in members)
        found.append(
            Anomaly(
                LOST_UPDATE,
                names,
                f"{' and '.join(names)} {every} read {key_name(key)} as {show(version)} and then appended to it "
                f"({appends}), and {every} committed: each built on a version the others had moved past, so at "
                "most one of them saw the list it changed.",
            )
        )
    return found
