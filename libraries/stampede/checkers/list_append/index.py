"""Who appended what, which transactions count as committed, and each key's version order from its longest read."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ConfigurationError
from ...records.list_append import APPEND, READ, TransactionStatus
from .transactions import Key, Transaction, Value

Read = tuple[int, Key, tuple[Value, ...]]
"""A committed read: the reading transaction's index, the key, the list it returned."""


class HistoryIndex:
    """The facts every check and every edge is inferred from.

    *Committed* transactions are the ones that returned ok, and those whose outcome is
    unknown but one of whose appends an ok transaction read: a value seen is a value
    committed (unless the read was dirty, which the checks report). An unknown
    transaction no one saw is left out altogether, its reads and its appends: it
    may have committed or not, and counting it either way could claim an anomaly
    that did not happen. Leaving it out can only hide an anomaly, never invent one.
    """

    def __init__(self, transactions: Sequence[Transaction]) -> None:
        self.transactions = transactions
        self.writer = _writers(transactions)
        self.committed = [txn.status is TransactionStatus.OK for txn in transactions]
        self.observed_unknown = self._observed_unknown()
        for index in self.observed_unknown:
            self.committed[index] = True
        self.reads: list[Read] = [
            (txn.index, key, values)
            for txn in transactions
            if self.committed[txn.index]
            for f, key, values in txn.ops
            if f == READ and values is not None
        ]
        self.versions: dict[Key, tuple[Value, ...]] = {}
        """Each key's version order: its longest committed read (the checks report reads that disagree)."""
        self.longest_reader: dict[Key, int] = {}
        for reader, key, values in self.reads:
            if key not in self.versions or len(values) > len(self.versions[key]):
                self.versions[key] = values
                self.longest_reader[key] = reader
        self.position: dict[Key, dict[Value, int]] = {
            key: {value: place for place, value in reversed(list(enumerate(values)))}
            for key, values in self.versions.items()
        }

    def _observed_unknown(self) -> set[int]:
        """The transactions of unknown outcome one of whose appends an ok transaction read."""
        seen: set[int] = set()
        for txn in self.transactions:
            if txn.status is not TransactionStatus.OK:
                continue
            for f, key, values in txn.ops:
                if f != READ or not values:
                    continue
                writers = self.writer.get(key, {})
                for value in values:
                    index = writers.get(value)
                    if index is not None and self.transactions[index].status is TransactionStatus.UNKNOWN:
                        seen.add(index)
        return seen

    def committed_writer(self, key: Key, value: Value) -> int:
        """The index of the committed transaction that appended ``value`` to ``key``, or -1."""
        index = self.writer.get(key, {}).get(value, -1)
        return index if index >= 0 and self.committed[index] else -1

    def external_length(self, reader: int, key: Key, values: tuple[Value, ...]) -> int:
        """How much of a read came from other transactions: its length without the reader's own trailing appends."""
        writers = self.writer.get(key, {})
        end = len(values)
        while end and writers.get(values[end - 1]) == reader:
            end -= 1
        return end

    @property
    def committed_count(self) -> int:
        return sum(self.committed)


def _writers(transactions: Sequence[Transaction]) -> dict[Key, dict[Value, int]]:
    """Per key, which transaction appended each value; a value appended twice raises ConfigurationError."""
    writer: dict[Key, dict[Value, int]] = {}
    for txn in transactions:
        for f, key, value in txn.ops:
            if f != APPEND:
                continue
            writers = writer.setdefault(key, {})
            earlier = writers.setdefault(value, txn.index)
            if earlier != txn.index:
                raise ConfigurationError(
                    f"{transactions[earlier].name} and {txn.name} both appended {value!r} to key {key!r}: "
                    "a list-append history needs each value appended at most once per key, so that a read "
                    "tells which append it saw. Make the tool's values unique per key."
                )
    return writer
