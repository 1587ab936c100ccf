"""A chunk of the history as typed columns (an Arrow record batch), and the columns metrics read from it.

A chunk holds one row per operation in the order the fields of
:class:`~stampede.history.Operation` are given. Names (user, operation, error,
outcome) are dictionary-encoded; what few operations carry (the values read and
written, phase timings, retry causes) is kept sparse: null where absent, so a
chunk of operations that read nothing costs nothing for it. Read and written
values are pickled (they are any Python value a tool returns, and come back as
they were recorded); the JSON-lines export stays the readable form.

Chunk files are Arrow IPC files, LZ4-compressed (bench/history_storage.py:
recording, size and read-back of Arrow IPC, Parquet and numpy chunks). Anything
that reads Arrow (pandas, polars, DuckDB) can open them.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from .outcomes import Outcome

ShortRow = tuple[
    int,  # agent
    str,  # user
    str,  # op
    int,  # iteration
    int,  # start_ns
    int,  # end_ns
    int,  # outcome, as its code (OUTCOME_CODE): a row of plain values is one the garbage collector lets go of
    int | None,  # intended_ns
    str | None,  # error
]
"""An operation without retries, values read or written, or timings, on the launching process's clock.

The fields a full row has after these are then :data:`ROW_TAIL`. Most operations
are like this, and a short row costs recording less: fewer fields to make and
take apart, none of the payload columns to look through.
"""
FullRow = tuple[
    int,
    str,
    str,
    int,
    int,
    int,
    int,
    int | None,
    str | None,
    int,  # retries
    tuple[Outcome, ...],  # retry_causes
    bool,  # exhausted
    Any,  # read
    Any,  # written
    dict[str, int] | None,  # timings
    int,  # clock_error_ns: 0 on the launching process's own clock
]
Row = ShortRow | FullRow
"""One operation as the launcher records it: :class:`~stampede.history.Operation`'s arguments, in order.

The outcome is its code, not the enum member: a tuple holding only plain values
(numbers, strings, None, empty tuples) is untracked by the garbage collector
once it has been seen, so a chunk of rows costs the collector nothing; a
member in every row kept each one tracked and made recording 40% slower.
"""
ROW_TAIL = (0, (), False, None, None, None, 0)
"""What a :data:`ShortRow` leaves out: no retries, no causes, not exhausted, nothing read, written or timed, ε 0."""

OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
"""Outcome codes: an outcome's code is its index here."""
OUTCOME_CODE = {outcome: code for code, outcome in enumerate(OUTCOMES)}
OUTCOME_NAMES = pa.array([outcome.value for outcome in OUTCOMES], pa.string())
_PICKLED = pa.binary()
_TIMINGS = pa.map_(pa.string(), pa.int64())
_TIMING_LIST = pa.list_(pa.struct([("key", pa.string()), ("value", pa.int64())]))
_CAUSES = pa.list_(pa.string())
# One thread: on a chunk this small, handing its buffers to Arrow's pool costs more CPU than it saves
# (bench/metrics_cost.py: writing a chunk 2.1 ms of CPU with threads, 1.3 ms without; reading 1.4 and 0.8 ms).
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_IPC_READ_OPTIONS = ipc.IpcReadOptions(use_threads=False)

SCHEMA = pa.schema(
    [
        ("agent", pa.int32()),
        ("user", pa.dictionary(pa.int32(), pa.string())),
        ("op", pa.dictionary(pa.int32(), pa.string())),
        ("iteration", pa.int64()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("outcome", pa.dictionary(pa.int8(), pa.string())),
        ("intended_ns", pa.int64()),
        ("error", pa.dictionary(pa.int32(), pa.string())),
        ("retries", pa.int32()),
        ("retry_causes", _CAUSES),
        ("exhausted", pa.bool_()),
        ("read", _PICKLED),
        ("written", _PICKLED),
        ("timings", _TIMINGS),
        ("clock_error_ns", pa.int64()),
    ],
    metadata={"stampede.history.version": "2"},
)
"""A chunk's columns; its version is in each chunk file's schema metadata.

Version 2 (this one) is the first to say it; a file without a version is of
version 1, whose columns were these same ones, save those added since
(:data:`ADDED_COLUMNS`), which some version-1 files lack.
"""
VERSION = int(SCHEMA.metadata[b"stampede.history.version"])
ADDED_COLUMNS: dict[str, int] = {"clock_error_ns": 0}
"""Columns added after the first chunk files were written, and the value a file without one reads as."""

Int64s = npt.NDArray[np.int64]

Unpicklable = dict[tuple[int, int], Any]
"""Read or written values pickle cannot take, by (row, field): kept as they are, beside the chunk."""


def moved_payloads(batch: pa.RecordBatch, move: Callable[[Any, Any], tuple[Any, Any]]) -> tuple[pa.Array, pa.Array]:
    """The batch's read and written columns with ``move`` applied to each row's two values (pickled again)."""
    reads, writes = (
        [None if value is None else pickle.loads(value) for value in batch.column(index).to_pylist()]
        for index in (12, 13)
    )
    moved = [move(read, written) for read, written in zip(reads, writes, strict=True)]
    return _pickled_column([read for read, _ in moved]), _pickled_column([written for _, written in moved])


def _pickled_column(values: list[Any]) -> pa.Array:
    return pa.array(
        [None if value is None else pickle.dumps(value, pickle.HIGHEST_PROTOCOL) for value in values], _PICKLED
    )


def joined(parts: Sequence[Int64s]) -> Int64s:
    """One array of the chunks' arrays, in order (empty for none)."""
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def write_chunk(batch: pa.RecordBatch, path: Path) -> Path:
    """Write ``batch`` as an Arrow IPC file at ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_batch(batch)
    return path


def read_chunk(path: Path) -> pa.RecordBatch:
    """The batch a chunk file holds, in :data:`SCHEMA` (a column added since it was written read as its default)."""
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source, options=_IPC_READ_OPTIONS)
        batch = reader.get_batch(0) if reader.num_record_batches else reader.schema.empty_table().to_batches()[0]
    return batch if batch.schema.equals(SCHEMA, check_metadata=True) else _current(batch, path)


def _current(batch: pa.RecordBatch, path: Path) -> pa.RecordBatch:
    """``batch``, read from a chunk file of an earlier version, in this version's schema."""
    version = int((batch.schema.metadata or {}).get(b"stampede.history.version", 1))
    if version > VERSION:
        raise ValueError(f"{path} is a history chunk of version {version}, newer than this Stampede's ({VERSION})")
    columns = []
    for field in SCHEMA:
        if field.name in batch.schema.names:
            column = batch.column(field.name)
            if not column.type.equals(field.type):
                raise ValueError(f"{path}: column {field.name!r} is {column.type}, a history chunk's is {field.type}")
            columns.append(column)
        elif field.name in ADDED_COLUMNS:
            columns.append(pa.array(np.full(batch.num_rows, ADDED_COLUMNS[field.name]), field.type))
        else:
            raise ValueError(f"{path} is not a history chunk Stampede can read: it has no column {field.name!r}")
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def row_fields(batch: pa.RecordBatch, unpicklable: Unpicklable) -> list[list[Any]]:
    """The batch's columns as Python values, in :data:`Row` order (for building operations).

    Through numpy and the dictionaries, not ``to_pylist`` (which makes an Arrow scalar per value, ten times slower).
    """
    count = batch.num_rows
    fields = [_values(batch.column(index), count) for index in range(len(SCHEMA))]
    fields[6] = _values(batch.column(6), count, Outcome)
    fields[10] = [() if causes is None else tuple(map(Outcome, causes)) for causes in fields[10]]
    for index in (12, 13):
        if batch.column(index).null_count != count:
            fields[index] = [None if value is None else pickle.loads(value) for value in fields[index]]
    if batch.column(14).null_count != count:
        fields[14] = [None if pairs is None else dict(pairs) for pairs in fields[14]]
    for (row, field), value in unpicklable.items():
        fields[field][row] = value
    return fields


def _values(column: pa.Array, count: int, decode: Any = str) -> list[Any]:
    """The column's values; a dictionary column's names made with ``decode`` (once per distinct name)."""
    if column.null_count == count:
        return [None] * count
    if pa.types.is_dictionary(column.type):
        names = list(map(decode, column.dictionary.to_pylist()))
        if column.null_count:
            return [None if code is None else names[code] for code in column.indices.to_pylist()]
        return list(map(names.__getitem__, column.indices.to_numpy().tolist()))
    if column.null_count == 0 and (pa.types.is_integer(column.type) or pa.types.is_boolean(column.type)):
        return list(column.to_numpy(zero_copy_only=False).tolist())
    return list(column.to_pylist())


class Columns:
    """The columns of one chunk that metrics read, as numpy arrays (views of the batch where possible)."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch
        self.rows = batch.num_rows

    def ints(self, name: str) -> Int64s:
        """An integer column without nulls (agent, iteration, start_ns, end_ns, retries) as int64."""
        return np.asarray(self.batch.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)

    def began_ns(self) -> Int64s:
        """When each operation's latency starts counting: its intended start when it had one, else its start."""
        began = pc.coalesce(self.batch.column("intended_ns"), self.batch.column("start_ns"))
        return np.asarray(began.to_numpy(), dtype=np.int64)

    def latency_ns(self) -> Int64s:
        return self.ints("end_ns") - self.began_ns()

    def outcome_codes(self) -> npt.NDArray[np.int8]:
        """Each operation's outcome as its index in :data:`OUTCOMES`."""
        column = self.batch.column("outcome")
        to_code = np.array([OUTCOME_CODE[Outcome(name)] for name in column.dictionary.to_pylist()], dtype=np.int8)
        return to_code[column.indices.to_numpy(zero_copy_only=False)]

    def codes(self, name: str) -> tuple[npt.NDArray[np.int32], list[str]]:
        """A name column as codes (-1 for null) and the names they stand for."""
        column = self.batch.column(name)
        codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return np.asarray(codes, dtype=np.int32), column.dictionary.to_pylist()

    def retry_causes(self) -> npt.NDArray[np.int8]:
        """Every retried attempt's outcome code, all operations' together."""
        names = pc.list_flatten(self.batch.column("retry_causes")).to_pylist()
        return np.array([OUTCOME_CODE[Outcome(name)] for name in names], dtype=np.int8)

    def timings(self) -> dict[str, Int64s]:
        """Per timed phase, the times operations gave it (in the order of the operations)."""
        column = self.batch.column("timings")
        if column.null_count == len(column):
            return {}
        entries = pc.list_flatten(column.cast(_TIMING_LIST))  # unlike .keys and .items, kept to a slice of the column
        keys = entries.field("key").dictionary_encode()
        values = np.asarray(entries.field("value").to_numpy(zero_copy_only=False), dtype=np.int64)
        codes = keys.indices.to_numpy(zero_copy_only=False)
        return {str(phase): values[codes == index] for index, phase in enumerate(keys.dictionary.to_pylist())}
