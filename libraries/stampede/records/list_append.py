"""The record of one list-append transaction, as any tool (ours, or a user's Python tool on any store) writes it.

A list-append transaction is a short list of micro-operations on keys whose
values are lists: *append* a value to a key's list, or *read* a key's whole
list. Each value is appended at most once per key, so every read reveals the
order in which the writes it saw were applied (Kingsbury & Alvaro, "Elle",
VLDB 2020).

The operation's ``written`` holds the transaction's micro-operations in the order
they ran, each a three-item list::

    [["append", "x", 3], ["r", "y", [1, 2]], ["r", "x", [7, 3]]]

- ``["append", key, value]``: ``value`` (an int or a text, unique for ``key``)
  appended to ``key``'s list;
- ``["r", key, values]``: ``key``'s list as the read returned it (``[]`` for a key
  never written), or ``null`` for a read that never came back.

Keys are ints or texts. ``read`` is not used. The operation's outcome says how
the transaction ended (:func:`transaction_status`): ``ok`` committed; a
concurrency conflict (serialization failure 40001, deadlock 40P01, a lock not
available) or an error whose SQLSTATE says the server rolled it back (class
23, integrity constraint; class 40, transaction rollback) *failed*, its appends
never visible; anything else (a timeout, a connection lost at commit, an
exception) is *unknown*: it may have committed. A tool that cannot tell
whether its commit went through must report one of the latter, never ``ok``
nor a conflict. Record the planned micro-operations even for a transaction
cut off part-way (reads that never returned as ``null``), so a value a later
read shows can be traced to the transaction that appended it.
"""

from __future__ import annotations

from enum import StrEnum

from ..outcomes import Outcome

APPEND = "append"
READ = "r"

ROLLED_BACK_SQLSTATE_CLASSES = ("23", "40")
"""SQLSTATE classes after which PostgreSQL has rolled the transaction back: integrity constraints, rollbacks."""


class TransactionStatus(StrEnum):
    """How a transaction ended, as far as its client knows."""

    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


def transaction_status(outcome: Outcome, error: str | None) -> TransactionStatus:
    """Committed, surely rolled back, or unknown (the safe reading of anything else)."""
    if outcome is Outcome.OK:
        return TransactionStatus.OK
    if outcome.is_concurrency_conflict:
        return TransactionStatus.FAILED
    if (
        outcome is Outcome.ERROR
        and error is not None
        and len(error) == 5
        and error.isalnum()
        and error[:2] in ROLLED_BACK_SQLSTATE_CLASSES
    ):
        return TransactionStatus.FAILED
    return TransactionStatus.UNKNOWN
