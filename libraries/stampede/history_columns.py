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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from .outcomes import Outcome

Row = tuple[
    int,  # agent
    str,  # user
    str,  # op
    int,  # iteration
    int,  # start_ns
    int,  # end_ns
    Outcome,
    int | None,  # intended_ns
    str | None,  # error
    int,  # retries
    tuple[Outcome, ...],  # retry_causes
    bool,  # exhausted
    Any,  # read
    Any,  # written
    dict[str, int] | None,  # timings
]
"""One operation as the launcher records it: :class:`~stampede.history.Operation`'s arguments, in order."""

OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
"""Outcome codes: an outcome's code is its index here."""
_OUTCOME_CODE = {outcome: code for code, outcome in enumerate(OUTCOMES)}
_OUTCOME_NAMES = pa.array([outcome.value for outcome in OUTCOMES], pa.string())
_PICKLED = pa.binary()
_TIMINGS = pa.map_(pa.string(), pa.int64())
_CAUSES = pa.list_(pa.string())
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4")

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
    ]
)

Int64s = npt.NDArray[np.int64]


def batch_of(rows: Sequence[Row]) -> pa.RecordBatch:
    """The rows as one record batch of :data:`SCHEMA`."""
    count = len(rows)
    (agent, user, op, iteration, start, end, outcome, intended, error, retries, causes, exhausted, read, written,
     timings) = zip(*rows, strict=True) if rows else ((),) * 15  # fmt: skip
    columns = [
        pa.array(agent, pa.int32()),
        _encoded(user),
        _encoded(op),
        pa.array(iteration, pa.int64()),
        pa.array(start, pa.int64()),
        pa.array(end, pa.int64()),
        pa.DictionaryArray.from_arrays(
            pa.array(list(map(_OUTCOME_CODE.__getitem__, outcome)), pa.int8()), _OUTCOME_NAMES
        ),
        pa.array(intended, pa.int64()),
        _encoded(error),
        pa.array(retries, pa.int32()),
        _sparse(causes, _CAUSES, lambda c: [o.value for o in c] if c else None, absent=()),
        pa.array(exhausted, pa.bool_()),
        _sparse(read, _PICKLED, _pickled),
        _sparse(written, _PICKLED, _pickled),
        _sparse(timings, _TIMINGS, lambda t: t),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA) if count else SCHEMA.empty_table().to_batches()[0]


def _encoded(values: Sequence[str | None]) -> pa.DictionaryArray:
    """Names as codes into the distinct names, in order of first appearance; None as null."""
    names = [name for name in dict.fromkeys(values) if name is not None]
    code: dict[str | None, int | None] = {name: index for index, name in enumerate(names)}
    code[None] = None
    return pa.DictionaryArray.from_arrays(
        pa.array(list(map(code.__getitem__, values)), pa.int32()), pa.array(names, pa.string())
    )


def _sparse(values: Sequence[Any], kind: pa.DataType, convert: Any, absent: Any = None) -> pa.Array:
    """A column null where the value is ``absent``: all null at no cost when no operation has one."""
    if values.count(absent) == len(values):
        return pa.nulls(len(values), kind)
    return pa.array([None if value is absent else convert(value) for value in values], kind)


def _pickled(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def write_chunk(batch: pa.RecordBatch, path: Path) -> Path:
    """Write ``batch`` as an Arrow IPC file at ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_batch(batch)
    return path


def read_chunk(path: Path) -> pa.RecordBatch:
    """The batch a chunk file holds."""
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        return reader.get_batch(0) if reader.num_record_batches else SCHEMA.empty_table().to_batches()[0]


def row_fields(batch: pa.RecordBatch) -> list[list[Any]]:
    """The batch's columns as Python values, in :data:`Row` order (for building operations)."""
    decoded = [batch.column(name).to_pylist() for name in SCHEMA.names]
    decoded[6] = [Outcome(value) for value in decoded[6]]
    decoded[10] = [() if causes is None else tuple(map(Outcome, causes)) for causes in decoded[10]]
    for index in (12, 13):
        decoded[index] = [None if value is None else pickle.loads(value) for value in decoded[index]]
    decoded[14] = [None if pairs is None else dict(pairs) for pairs in decoded[14]]
    return decoded


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
        to_code = np.array([_OUTCOME_CODE[Outcome(name)] for name in column.dictionary.to_pylist()], dtype=np.int8)
        return to_code[column.indices.to_numpy(zero_copy_only=False)]

    def codes(self, name: str) -> tuple[npt.NDArray[np.int32], list[str]]:
        """A name column as codes (-1 for null) and the names they stand for."""
        column = self.batch.column(name)
        codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return np.asarray(codes, dtype=np.int32), column.dictionary.to_pylist()

    def retry_causes(self) -> npt.NDArray[np.int8]:
        """Every retried attempt's outcome code, all operations' together."""
        names = pc.list_flatten(self.batch.column("retry_causes")).to_pylist()
        return np.array([_OUTCOME_CODE[Outcome(name)] for name in names], dtype=np.int8)

    def timings(self) -> dict[str, Int64s]:
        """Per timed phase, the times operations gave it (in the order of the operations)."""
        column = self.batch.column("timings")
        if column.null_count == len(column):
            return {}
        keys = column.keys.dictionary_encode()
        values = np.asarray(column.items.to_numpy(zero_copy_only=False), dtype=np.int64)
        codes = keys.indices.to_numpy(zero_copy_only=False)
        return {str(phase): values[codes == index] for index, phase in enumerate(keys.dictionary.to_pylist())}
