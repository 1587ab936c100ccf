"""The history: every operation every agent performed, in the order it ended.

Checkers read the history, never counters. Recording appends one tuple (a
:data:`~stampede.history_columns.Row`) to the open chunk's piece, so it costs
next to nothing on the hot path; a full piece is moved into the open chunk's
typed columns (:mod:`stampede.history_builder`), and a full chunk becomes a
record batch (:mod:`stampede.history_columns`) and, when the history has a
directory, a file there: recording memory is bounded by the chunk size,
however long the launch.
Readers see :class:`Operation` objects, made one chunk at a time; metrics read
the columns. Serialising to JSON lines happens once, after the launch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .history_builder import PIECE_ROWS, ChunkBuilder, batch_of
from .history_columns import (
    OUTCOME_CODE,
    OUTCOMES,
    SCHEMA,
    Columns,
    Int64s,
    Row,
    Unpicklable,
    joined,
    moved_payloads,
    read_chunk,
    row_fields,
    write_chunk,
)
from .outcomes import Outcome

CHUNK_ROWS = 32_768
"""Operations per chunk: the open chunk's columns (about 60 B per operation) are what recording holds."""

PayloadShift = Callable[[Any, Any, int], tuple[Any, Any]]
"""A row's read and written values with the instants a tool recorded in them moved back by an offset (ns)."""


class Operation:
    """One operation of one agent: who, what, when (monotonic ns) and how it ended."""

    __slots__ = (
        "agent",
        "clock_error_ns",
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
        clock_error_ns: int = 0,
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
        self.clock_error_ns = clock_error_ns
        """ε: its times are on the launch's timeline within ± this (a worker's clock offset's uncertainty)."""

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
        if self.clock_error_ns:
            record["clock_error_ns"] = self.clock_error_ns
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
            clock_error_ns=record.get("clock_error_ns", 0),
        )

    def __repr__(self) -> str:
        return (
            f"Operation(agent={self.agent}, op={self.op!r}, outcome={self.outcome.value}, "
            f"retries={self.retries}, read={self.read!r}, written={self.written!r})"
        )


class History:
    """An append-only sequence of :class:`Operation`, kept in chunks of typed columns, with JSON-lines export.

    ``directory``, when given, is where full chunks are written (``000000.arrow``,
    ``000001.arrow``, ...) and then let go of; without one they stay in memory
    as columns (about 70 B per operation instead of an object's 263).
    Operations appended as objects are the very objects read back until their
    piece of the open chunk (:data:`~stampede.history_builder.PIECE_ROWS`) is
    moved into its columns; one read back from columns is made anew on each reading.
    """

    def __init__(
        self, operations: Iterable[Operation] = (), *, directory: Path | None = None, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.directory = directory
        self._chunk_rows = chunk_rows
        self._sealed: tuple[_Chunk, ...] = ()
        self._builder = ChunkBuilder(chunk_rows)
        self._open: list[Row | Operation] = []
        self._piece_rows = min(PIECE_ROWS, chunk_rows)
        self._objects = False
        """Whether the open piece holds an appended Operation (a piece of rows alone is moved as it is)."""
        self._view: _View = (self._sealed, self._builder, 0, self._open)
        """What readers (another thread's progress display too) take at once: the full chunks and the open one."""
        for operation in operations:
            self.append(operation)

    def record(self, row: Row) -> None:
        """Record one operation given as a :data:`~stampede.history_columns.Row` (the launcher's hot path)."""
        rows = self._open
        rows.append(row)
        if len(rows) >= self._piece_rows:
            self._move_piece()

    def append(self, operation: Operation) -> None:
        self._objects = True
        rows = self._open
        rows.append(operation)
        if len(rows) >= self._piece_rows:
            self._move_piece()

    def snapshot(self) -> History:
        """The operations recorded so far, as a history of their own; this one goes on recording apart from it.

        The open chunk is closed first (written, when there is a directory), so
        the snapshot shares full chunks only and copies nothing.
        """
        if self._open or self._builder.rows:
            self._seal()
        copy = History(directory=self.directory, chunk_rows=self._chunk_rows)
        copy._sealed = self._sealed
        copy._view = (copy._sealed, copy._builder, 0, copy._open)
        return copy

    @classmethod
    def of_chunks(cls, directory: Path) -> History:
        """The history a folder of chunk files holds (``000000.arrow``, ...), as a history with that folder wrote it.

        Files of an earlier version read as this version's columns
        (:func:`~stampede.history_columns.read_chunk`); recording on writes the next chunks there.
        """
        paths = sorted(directory.glob("[0-9][0-9][0-9][0-9][0-9][0-9].arrow"))
        if not paths:
            raise ValueError(f"{directory} holds no history chunk files (000000.arrow, 000001.arrow, ...)")
        history = cls(directory=directory)
        history._sealed = tuple(_Chunk(read_chunk(path).num_rows, None, path, {}) for path in paths)
        history._view = (history._sealed, history._builder, 0, history._open)
        return history

    @classmethod
    def merged(
        cls,
        histories: Sequence[History],
        directory: Path | None = None,
        clocks: Sequence[tuple[int, int]] | None = None,
        payloads: PayloadShift | None = None,
    ) -> History:
        """One history of several (a launch's shards), in the order their operations ended.

        ``clocks``, one ``(offset_ns, error_ns)`` per history, puts each on one
        timeline: its times shifted back by its clock's offset, each row given
        its error ε (``clock_error_ns``). ``payloads`` moves the instants a
        tool records in its read and written values likewise (only the tool
        knows where they are). The merge holds all their columns at once (not
        one chunk): values pickle could not take stay behind in their own history.
        """
        shifts = [(0, 0)] * len(histories) if clocks is None else clocks
        batches = [
            _shifted(columns.batch, offset, error, payloads)
            for history, (offset, error) in zip(histories, shifts, strict=True)
            for columns in history.columns()
        ]
        merged = cls(directory=directory)
        if not batches:
            return merged
        table = pa.Table.from_batches(batches, schema=SCHEMA).unify_dictionaries()
        table = table.take(pc.sort_indices(table, [("end_ns", "ascending")]))
        parts = table.combine_chunks().to_batches(merged._chunk_rows)
        merged._sealed = tuple(merged._chunk_of(part, {}, number) for number, part in enumerate(parts))
        merged._view = (merged._sealed, merged._builder, 0, merged._open)
        return merged

    def _move_piece(self) -> None:
        """Move the open piece into the open chunk's columns, sealing the chunk when that fills it."""
        builder = self._builder
        builder.add(_rows_of(self._open) if self._objects else self._open)  # type: ignore[arg-type]
        self._open = []
        self._objects = False
        if builder.rows >= self._chunk_rows:
            self._seal()
            return
        self._piece_rows = min(PIECE_ROWS, self._chunk_rows - builder.rows)
        self._view = (self._sealed, builder, builder.rows, self._open)

    def _seal(self) -> None:
        builder = self._builder
        builder.add(_rows_of(self._open))
        unpicklable: Unpicklable = {}
        chunk = self._chunk_of(builder.batch(unpicklable=unpicklable), unpicklable, len(self._sealed))
        self._sealed = (*self._sealed, chunk)
        self._builder = ChunkBuilder(self._chunk_rows)
        self._open = []
        self._objects = False
        self._piece_rows = min(PIECE_ROWS, self._chunk_rows)
        self._view = (self._sealed, self._builder, 0, self._open)  # one assignment: a reader sees a row once

    def _chunk_of(self, batch: pa.RecordBatch, unpicklable: Unpicklable, number: int) -> _Chunk:
        """Full chunk ``number`` of ``batch``: written to the directory (when there is one) before anyone sees it."""
        if self.directory is None:
            return _Chunk(batch.num_rows, batch, None, unpicklable)
        path = write_chunk(batch, self.directory / f"{number:06d}.arrow")
        return _Chunk(batch.num_rows, None, path, unpicklable)

    def _chunks(self) -> tuple[list[_Chunk], list[Row | Operation]]:
        """The full chunks and the open chunk's rows in columns (a chunk of its own, for reading), and its piece."""
        sealed, builder, moved, rows = self._view
        chunks = list(sealed)
        if moved:
            unpicklable: Unpicklable = {}
            chunks.append(_Chunk(moved, builder.batch(moved, unpicklable), None, unpicklable))
        return chunks, list(rows)

    def columns(self) -> Iterator[Columns]:
        """The history's columns, one chunk at a time (the open chunk's made on the spot)."""
        chunks, rows = self._chunks()
        for chunk in chunks:
            yield Columns(chunk.batch())
        if rows:
            yield Columns(batch_of(_rows_of(rows)))

    def latencies_ns(self) -> Int64s:
        """Every operation's latency (:attr:`Operation.latency_ns`), in order, from the columns."""
        return joined([columns.latency_ns() for columns in self.columns()])

    def __iter__(self) -> Iterator[Operation]:
        chunks, rows = self._chunks()
        for chunk in chunks:
            yield from chunk.operations()
        for entry in rows:
            yield entry if type(entry) is Operation else _operation_of(entry)  # type: ignore[arg-type]

    def __len__(self) -> int:
        sealed, _, moved, rows = self._view
        return sum(chunk.rows for chunk in sealed) + moved + len(rows)

    def __getitem__(self, index: int) -> Operation:
        chunks, rows = self._chunks()
        count = sum(chunk.rows for chunk in chunks) + len(rows)
        position = index if index >= 0 else count + index
        if not 0 <= position < count:
            raise IndexError(f"history index {index} out of range (it holds {count} operations)")
        for chunk in chunks:
            if position < chunk.rows:
                return chunk.operations()[position]
            position -= chunk.rows
        entry = rows[position]
        return entry if type(entry) is Operation else _operation_of(entry)  # type: ignore[arg-type]

    def outcomes_from(self, start: int) -> list[Outcome]:
        """The outcomes of the operations from index ``start`` on, without making operations (for progress)."""
        sealed, builder, moved, rows = self._view
        found: list[Outcome] = []
        position = start
        for chunk in sealed:
            if position < chunk.rows:
                outcomes = Columns(chunk.batch()).outcome_codes()[position:].tolist()
                found += [OUTCOMES[code] for code in outcomes]
            position = max(0, position - chunk.rows)
        if position < moved:  # the open chunk's columns: read as they are, no batch made (the display asks often)
            found += [OUTCOMES[code] for code in builder.outcome_codes(moved)[position:].tolist()]
        position = max(0, position - moved)
        found += [entry.outcome if type(entry) is Operation else OUTCOMES[entry[6]] for entry in list(rows)[position:]]  # type: ignore[index]
        return found

    def successful(self) -> list[Operation]:
        return [op for op in self if op.outcome is Outcome.OK]

    def write_jsonl(self, path: Path) -> Path:
        """Write one JSON object per line to ``path`` (parents created) and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as stream:
            for operation in self:
                stream.write(json.dumps(_with_text_keys(operation.to_dict()), default=str, separators=(",", ":")))
                stream.write("\n")
        return path

    @classmethod
    def read_jsonl(cls, path: Path) -> History:
        with path.open(encoding="utf-8") as stream:
            return cls(Operation.from_dict(json.loads(line)) for line in stream if line.strip())


_fields_of: Any = attrgetter(*SCHEMA.names)
"""An operation's fields in :data:`~stampede.history_columns.Row` order (the columns are named after them)."""


def _shifted(batch: pa.RecordBatch, offset_ns: int, error_ns: int, payloads: PayloadShift | None) -> pa.RecordBatch:
    """``batch`` with its times moved back by ``offset_ns`` and every row's ε the larger of its own and ``error_ns``."""
    if not offset_ns and not error_ns:
        return batch
    columns = batch.columns
    for name in ("start_ns", "end_ns", "intended_ns"):
        index = SCHEMA.get_field_index(name)
        columns[index] = pc.subtract(columns[index], pa.scalar(offset_ns, pa.int64()))
    if payloads is not None and offset_ns:
        columns[12], columns[13] = moved_payloads(batch, lambda read, written: payloads(read, written, offset_ns))
    index = SCHEMA.get_field_index("clock_error_ns")
    columns[index] = pc.max_element_wise(columns[index], pa.scalar(error_ns, pa.int64()))
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def _row_of(operation: Operation) -> Row:
    fields = _fields_of(operation)
    return (*fields[:6], OUTCOME_CODE[operation.outcome], *fields[7:])


def _operation_of(row: Row) -> Operation:
    agent, user, op, iteration, start, end, outcome, *rest = row
    return Operation(agent, user, op, iteration, start, end, OUTCOMES[outcome], *rest)


def _rows_of(entries: list[Row | Operation]) -> list[Row]:
    return [_row_of(entry) if type(entry) is Operation else entry for entry in entries]  # type: ignore[misc]


_View = tuple[tuple["_Chunk", ...], ChunkBuilder, int, list[Row | Operation]]
"""The full chunks, the open chunk's columns and how many rows they hold, and the open piece of rows."""


@dataclass(frozen=True)
class _Chunk:
    """A full chunk: its batch in memory, or the file it was written to; values pickle could not take beside it."""

    rows: int
    held: pa.RecordBatch | None
    path: Path | None
    unpicklable: Unpicklable

    def batch(self) -> pa.RecordBatch:
        return self.held if self.held is not None else read_chunk(self.path)  # type: ignore[arg-type]

    def operations(self) -> list[Operation]:
        return list(map(Operation, *row_fields(self.batch(), self.unpicklable)))


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
