"""The dependency graph of the committed transactions: ww, wr and rw edges, plus process and real-time ones.

Nodes are transaction indexes; ``successors[a][b]`` is a bit set of the kinds of
edge from ``a`` to ``b`` (one pair may depend on each other in several ways).

- ww: ``b`` appended the value right after ``a``'s in a key's version order;
- wr: ``b`` read a list whose last element (not counting ``b``'s own appends) ``a`` appended;
- rw: ``a`` read a list that ``b``'s append extends next (``a`` did not see it);
- process: ``a`` and ``b`` ran on the same agent, ``b`` next;
- realtime: ``a`` ended before ``b`` began, with no transaction wholly between them
  (the transitive reduction of real-time order, so the graph stays linear in size).

A transaction of unknown outcome (committed because a read saw it) has no process or
real-time edge *from* it: its client stopped waiting, but its commit may have come
later, so nothing is known to have begun after it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from ...records.list_append import TransactionStatus
from .index import HistoryIndex
from .transactions import Transaction

WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
DATA = WW | WR | RW
KINDS = (WW, WR, RW, PROCESS, REALTIME)
KIND_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}

Successors = list[dict[int, int]]


def dependency_graph(index: HistoryIndex, *, process: bool = True, realtime: bool = True) -> Successors:
    """The edges between committed transactions, by kind."""
    successors: Successors = [{} for _ in index.transactions]

    def add(source: int, target: int, kind: int) -> None:
        if source != target and source >= 0 and target >= 0:
            edges = successors[source]
            edges[target] = edges.get(target, 0) | kind

    for key, order in index.versions.items():
        writers = [index.committed_writer(key, value) for value in order]
        for earlier, later in pairwise(writers):
            add(earlier, later, WW)
    for reader, key, values in index.reads:
        order = index.versions[key]
        end = index.external_length(reader, key, values)
        if end:
            last = values[end - 1]
            add(index.committed_writer(key, last), reader, WR)
            place = index.position[key].get(last, len(order)) + 1
        else:
            place = 0
        if place < len(order):
            add(reader, index.committed_writer(key, order[place]), RW)
    committed = [txn for txn in index.transactions if index.committed[txn.index]]
    if process:
        last_of: dict[int, int] = {}
        for txn in sorted(committed, key=lambda t: t.start_ns):
            if txn.agent in last_of:
                add(last_of[txn.agent], txn.index, PROCESS)
            if txn.status is TransactionStatus.OK:
                last_of[txn.agent] = txn.index
    if realtime:
        _realtime_edges(committed, add)
    return successors


def _realtime_edges(committed: list[Transaction], add: Callable[[int, int, int], None]) -> None:
    """``a`` → ``b`` when ``a`` ended before ``b`` began and no transaction began and ended between the two.

    Sweeping transactions in order of start: those ended before the current start
    that ended after the latest start among them are its immediate predecessors.
    """
    by_end = sorted((txn for txn in committed if txn.status is TransactionStatus.OK), key=lambda t: t.end_ns)
    frontier: list[tuple[int, int]] = []  # (end_ns, index) of ended transactions, in order of end
    latest_start = -1
    ended = 0
    for txn in sorted(committed, key=lambda t: t.start_ns):
        while ended < len(by_end) and by_end[ended].end_ns < txn.start_ns:
            done = by_end[ended]
            frontier.append((done.end_ns, done.index))
            latest_start = max(latest_start, done.start_ns)
            ended += 1
        cut = 0
        while cut < len(frontier) and frontier[cut][0] <= latest_start:
            cut += 1
        if cut:
            del frontier[:cut]
        for _, before in frontier:
            add(before, txn.index, REALTIME)
