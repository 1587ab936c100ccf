"""The history: every operation every agent performed, in the order it ended.

Checkers read the history, never counters. Recording is an append of a slotted
object to a list, so it costs next to nothing on the hot path; serialising to
JSON lines happens once, after the launch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .outcomes import Outcome


class Operation:
    """One operation of one agent: who, what, when (monotonic ns) and how it ended."""

    __slots__ = (
        "agent",
        "end_ns",
        "error",
        "exhausted",
        "intended_ns",
        "iteration",
        "op",
        "outcome",
        "read",
        "retries",
        "retry_causes",
        "start_ns",
        "timings",
        "user",
        "written",
    )

    def __init__(
        self,
        agent: int,
        user: str,
        op: str,
        iteration: int,
        start_ns: int,
        end_ns: int,
        outcome: Outcome,
        intended_ns: int | None = None,
        error: str | None = None,
        retries: int = 0,
        retry_causes: tuple[Outcome, ...] = (),
        exhausted: bool = False,
        read: Any = None,
        written: Any = None,
        timings: dict[str, int] | None = None,
    ) -> None:
        self.agent = agent
        self.user = user
        self.op = op
        self.iteration = iteration
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.intended_ns = intended_ns
        self.outcome = outcome
        self.error = error
        self.retries = retries
        self.retry_causes = retry_causes
        self.exhausted = exhausted
        self.read = read
        self.written = written
        self.timings = timings

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def latency_ns(self) -> int:
        """Service time, or time since the intended start when one was scheduled."""
        return self.end_ns - (self.intended_ns if self.intended_ns is not None else self.start_ns)

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "agent": self.agent,
            "user": self.user,
            "op": self.op,
            "iteration": self.iteration,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "outcome": self.outcome.value,
            "retries": self.retries,
        }
        if self.intended_ns is not None:
            record["intended_ns"] = self.intended_ns
        if self.error is not None:
            record["error"] = self.error
        if self.retry_causes:
            record["retry_causes"] = [cause.value for cause in self.retry_causes]
        if self.exhausted:
            record["exhausted"] = True
        if self.read is not None:
            record["read"] = self.read
        if self.written is not None:
            record["written"] = self.written
        if self.timings:
            record["timings"] = self.timings
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Operation:
        return cls(
            record["agent"],
            record["user"],
            record["op"],
            record.get("iteration", 0),
            record["start_ns"],
            record["end_ns"],
            Outcome(record["outcome"]),
            intended_ns=record.get("intended_ns"),
            error=record.get("error"),
            retries=record.get("retries", 0),
            retry_causes=tuple(Outcome(c) for c in record.get("retry_causes", ())),
            exhausted=record.get("exhausted", False),
            read=record.get("read"),
            written=record.get("written"),
            timings=record.get("timings"),
        )

    def __repr__(self) -> str:
        return (
            f"Operation(agent={self.agent}, op={self.op!r}, outcome={self.outcome.value}, "
            f"retries={self.retries}, read={self.read!r}, written={self.written!r})"
        )


class History:
    """An append-only list of :class:`Operation` with JSON-lines persistence."""

    def __init__(self, operations: Iterable[Operation] = ()) -> None:
        self._operations: list[Operation] = list(operations)
        self.append = self._operations.append

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._operations)

    def __len__(self) -> int:
        return len(self._operations)

    def __getitem__(self, index: int) -> Operation:
        return self._operations[index]

    def successful(self) -> list[Operation]:
        return [op for op in self._operations if op.outcome is Outcome.OK]

    def write_jsonl(self, path: Path) -> Path:
        """Write one JSON object per line to ``path`` (parents created) and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as stream:
            for operation in self._operations:
                stream.write(json.dumps(_with_text_keys(operation.to_dict()), default=str, separators=(",", ":")))
                stream.write("\n")
        return path

    @classmethod
    def read_jsonl(cls, path: Path) -> History:
        with path.open(encoding="utf-8") as stream:
            return cls(Operation.from_dict(json.loads(line)) for line in stream if line.strip())


def _with_text_keys(value: Any) -> Any:
    """``value`` with every dict key JSON cannot hold (a tuple, a Decimal) turned into its text."""
    if isinstance(value, Mapping):
        return {
            key if key is None or isinstance(key, (str, int, float)) else str(key): _with_text_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_with_text_keys(item) for item in value]
    return value
