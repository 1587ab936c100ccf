"""What the checker reports: an anomaly, with the transactions it involves and its explanation in words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SHOWN_ELEMENTS = 6
"""A list read is shown whole up to this many elements, else as its last ones."""


@dataclass(frozen=True)
class Step:
    """One edge of a cycle: ``source`` precedes ``target`` because of ``relation`` (ww, wr, rw, process, realtime)."""

    source: str
    target: str
    relation: str
    words: str


@dataclass(frozen=True)
class Anomaly:
    """One instance of an anomaly: its name (``G1a``, ``G-single-realtime``, ``lost update``) and why it is one."""

    name: str
    transactions: tuple[str, ...]
    explanation: str
    steps: tuple[Step, ...] = field(default=())

    @property
    def is_cycle(self) -> bool:
        return bool(self.steps)


def show(values: Sequence[Any] | None) -> str:
    """A read list as a reader wants it: ``[1, 2, 3]``, or ``[… 7, 8, 9]`` (12 elements) when long."""
    if values is None:
        return "nothing (the read never returned)"
    if len(values) <= SHOWN_ELEMENTS:
        return "[" + ", ".join(str(value) for value in values) + "]"
    tail = ", ".join(str(value) for value in values[-3:])
    return f"[… {tail}] ({len(values)} elements)"


def key_name(key: Any) -> str:
    return f"key {key}"
