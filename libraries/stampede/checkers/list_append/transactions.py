"""The history model: transactions of micro-operations, read from a launch's operations."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from ...errors import ConfigurationError
from ...history import Operation
from ...records.list_append import APPEND, READ, TransactionStatus, transaction_status

Key = Hashable
Value = Hashable
MicroOp = tuple[str, Key, Any]
"""``("append", key, value)`` or ``("r", key, list | None)``."""


class Transaction:
    """One transaction: its micro-operations in order, who ran it, when (monotonic ns), and how it ended."""

    __slots__ = ("agent", "end_ns", "index", "ops", "start_ns", "status")

    def __init__(
        self,
        index: int,
        agent: int,
        status: TransactionStatus,
        ops: Sequence[MicroOp],
        start_ns: int = 0,
        end_ns: int = 0,
    ) -> None:
        self.index = index
        self.agent = agent
        self.status = status
        self.ops = ops
        self.start_ns = start_ns
        self.end_ns = end_ns

    @property
    def name(self) -> str:
        """``T12``: the transaction's place in the history, counted from 1."""
        return f"T{self.index + 1}"

    def appends(self, key: Key) -> list[Value]:
        """The values this transaction appended to ``key``, in order."""
        return [value for f, k, value in self.ops if f == APPEND and k == key]

    def __repr__(self) -> str:
        return f"Transaction({self.name}, agent={self.agent}, {self.status.value}, {list(self.ops)!r})"


def transactions_from(operations: Iterable[Operation]) -> list[Transaction]:
    """The operations of a list-append launch as transactions; a malformed record raises ConfigurationError."""
    transactions = []
    for index, operation in enumerate(operations):
        status = transaction_status(operation.outcome, operation.error)
        ops = _micro_ops(operation, index, status)
        transactions.append(Transaction(index, operation.agent, status, ops, operation.start_ns, operation.end_ns))
    return transactions


def _micro_ops(operation: Operation, index: int, status: TransactionStatus) -> list[MicroOp]:
    written = operation.written
    if written is None and status is not TransactionStatus.OK:
        return []  # cut off before it recorded anything: nothing of it can be traced
    if not isinstance(written, (list, tuple)):
        raise _malformed(operation, index, f"its written value is {written!r}, not a list of micro-operations")
    ops: list[MicroOp] = []
    for position, micro in enumerate(written, start=1):
        if not isinstance(micro, (list, tuple)) or len(micro) != 3 or micro[0] not in (APPEND, READ):
            raise _malformed(operation, index, f"micro-operation {position} is {micro!r}")
        f, key, value = micro
        if not isinstance(key, (str, int)):
            raise _malformed(operation, index, f"micro-operation {position} has key {key!r}, not an int or a text")
        if f == APPEND and not isinstance(value, (str, int)):
            raise _malformed(operation, index, f"micro-operation {position} appends {value!r}, not an int or a text")
        if f == READ:
            if value is not None and not isinstance(value, (list, tuple)):
                raise _malformed(operation, index, f"micro-operation {position} read {value!r}, not a list")
            value = None if value is None else tuple(value)
        ops.append((f, key, value))
    return ops


def _malformed(operation: Operation, index: int, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"Operation {index + 1} (agent {operation.agent}, tool {operation.op!r}) is not a list-append record: "
        f"{what}. Each operation's 'written' must list its micro-operations in order, as "
        f"[['append', key, value], ['r', key, [values read]]] (see stampede.records.list_append)."
    )
