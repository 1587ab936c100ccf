"""A cycle in words: for each edge, which append or read makes one transaction precede the next."""

from __future__ import annotations

from typing import Any

from ...records.list_append import APPEND, READ
from ...units import format_duration
from .anomaly import Anomaly, Step, key_name, show
from .cycles import Cycle, classify
from .graph import KIND_NAMES, PROCESS, REALTIME, RW, WR, WW
from .index import HistoryIndex
from .transactions import Key


def cycle_anomaly(index: HistoryIndex, cycle: Cycle) -> Anomaly:
    """The anomaly a cycle is, with every edge explained."""
    txns = index.transactions
    steps = tuple(
        Step(txns[a].name, txns[b].name, KIND_NAMES[kind], edge_words(index, a, b, kind)) for a, b, kind in cycle
    )
    names = tuple(step.source for step in steps)
    loop = " → ".join((*names, names[0]))
    explanation = f"{loop}: " + "; ".join(step.words for step in steps) + ". A transaction cannot precede itself."
    return Anomaly(classify([kind for _, _, kind in cycle]), names, explanation, steps)


def edge_words(index: HistoryIndex, a: int, b: int, kind: int) -> str:
    """Why transaction ``a`` precedes ``b`` by an edge of ``kind``."""
    first, second = index.transactions[a], index.transactions[b]
    so = f"so {first.name} precedes {second.name}"
    if kind == PROCESS:
        return f"{first.name} and then {second.name} ran on agent {first.agent}, {so}"
    if kind == REALTIME:
        gap = format_duration((second.start_ns - first.end_ns) / 1e9)
        return f"{first.name} ended {gap} before {second.name} began, {so}"
    for key, earlier, later, values in _evidence(index, a, b, kind):
        place = key_name(key)
        if kind == WW:
            return f"{first.name} appended {earlier} to {place} and {second.name} appended {later} right after it, {so}"
        if kind == WR:
            return f"{first.name} appended {earlier} to {place}; {second.name} read {place} as {show(values)}, {so}"
        if earlier is None:
            return f"{first.name} read {place} as {show(values)}; {second.name} appended {later}, its first value, {so}"
        return (
            f"{first.name} read {place} as {show(values)}, without {later}; {second.name} appended {later} "
            f"right after {earlier}, {so}"
        )
    raise AssertionError(f"no evidence of a {KIND_NAMES[kind]} edge from {first.name} to {second.name}")


def _evidence(index: HistoryIndex, a: int, b: int, kind: int) -> list[tuple[Key, Any, Any, Any]]:
    """``(key, earlier value, later value, list read)`` for each key that makes the edge."""
    found: list[tuple[Key, Any, Any, Any]] = []
    if kind == WW:
        for f, key, value in index.transactions[a].ops:
            order = index.versions.get(key, ())
            place = index.position.get(key, {}).get(value) if f == APPEND else None
            if place is not None and place + 1 < len(order) and index.committed_writer(key, order[place + 1]) == b:
                found.append((key, value, order[place + 1], None))
        return found
    reader, writer = (b, a) if kind == WR else (a, b)
    for f, key, values in index.transactions[reader].ops:
        if f != READ or values is None:
            continue
        order = index.versions[key]
        end = index.external_length(reader, key, values)
        last = values[end - 1] if end else None
        if kind == WR and last is not None and index.committed_writer(key, last) == writer:
            found.append((key, last, None, values))
        if kind == RW:
            place = index.position[key].get(last, len(order)) + 1 if end else 0
            if place < len(order) and index.committed_writer(key, order[place]) == writer:
                found.append((key, last, order[place], values))
    return found
