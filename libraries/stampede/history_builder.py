"""Rows turned into one chunk's columns a piece at a time (:class:`ChunkBuilder`), and :func:`batch_of`.

Recording keeps a piece of rows (:data:`PIECE_ROWS`) as tuples, then moves it
into the chunk's preallocated numpy columns: a piece of tuples stays in the
processor's cache, a chunk's worth (megabytes of tuples and their integers)
did not, and holding it cost more than converting it. A piece is taken apart
into its columns in C (``zip``); a column the same all through the piece
(one operation name, no retries) is one fill. Names become codes into the
chunk's own dictionary as they come. What few operations carry (retry causes,
values read and written, timings) is kept as the pieces that have any, and
made into a column only when the chunk's batch is made: in the common chunk
where no operation has one, it is a column of nulls.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import is_not
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .history_columns import OUTCOME_NAMES, ROW_TAIL, SCHEMA, Row, Unpicklable

PIECE_ROWS = 512
"""Rows recording holds as tuples before moving them into the chunk's columns.

Fewer than the garbage collector's first threshold (700 new objects): taking
a piece apart (``zip``) makes an iterator per row, and a piece of more would
start a collection each time, which then followed them into the older
generations (a million rows recorded in pieces of 768 spent 0.3 s of CPU in
the collector, in pieces of 512 none). Its tuples are freed together and
reused for the next piece's rows (CPython keeps 2,000 free).
"""

_FIXED: dict[int, type[np.generic]] = {
    0: np.int32,  # agent
    3: np.int64,  # iteration
    4: np.int64,  # start_ns
    5: np.int64,  # end_ns
    6: np.int8,  # outcome code
    9: np.int32,  # retries
    11: np.bool_,  # exhausted
    15: np.int64,  # clock_error_ns
}
"""The columns every row gives a plain value for, by their place in a row, and their numpy types."""
_ROW_LENGTH = len(SCHEMA)
_SHORT_LENGTH = _ROW_LENGTH - len(ROW_TAIL)
"""A :data:`~stampede.history_columns.ShortRow`'s fields: the rest are :data:`~stampede.history_columns.ROW_TAIL`."""
_NAMES = (1, 2, 8)
"""The name columns (user, op, error): codes into the chunk's dictionary, null (-1) for None."""
_INTENDED = 7
_CAUSES, _READ, _WRITTEN, _TIMINGS = 10, 12, 13, 14
_PAYLOAD_DEFAULT: dict[int, Any] = {_CAUSES: (), _READ: None, _WRITTEN: None, _TIMINGS: None}
"""What few rows carry, and the value of a row that carries none."""


class _Codes(dict[Any, int]):
    """A chunk's names, each with its code (the order they came in); None is -1."""

    def __init__(self) -> None:
        super().__init__({None: -1})

    def __missing__(self, name: Any) -> int:
        code = self[name] = len(self) - 1
        return code

    def names(self) -> list[Any]:
        return list(self)[1:]


class ChunkBuilder:
    """One chunk's columns, filled a piece of rows at a time; :meth:`batch` makes the record batch of a prefix.

    Rows already added are never written again, so a batch of the first
    ``rows`` (another thread's reading) stays what it was as more are added.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows = 0
        self._fixed = {index: np.empty(capacity, dtype) for index, dtype in _FIXED.items()}
        self._intended = np.zeros(capacity, np.int64)
        self._intended_given = np.zeros(capacity, np.bool_)
        self._codes = {index: np.empty(capacity, np.int32) for index in _NAMES}
        self._names = {index: _Codes() for index in _NAMES}
        self._payload: dict[int, list[tuple[int, tuple[Any, ...]]]] = {index: [] for index in _PAYLOAD_DEFAULT}
        """Per payload column, the pieces (their first row, their values) where some row carries one."""

    def add(self, rows: Sequence[Row]) -> None:
        """Add ``rows`` (at most the capacity left) after those already added."""
        count = len(rows)
        if not count:
            return
        start, end = self.rows, self.rows + count
        if end > self.capacity:
            raise ValueError(f"a chunk of {self.capacity} rows cannot take {count} more after {start}")
        columns = _columns_of(rows)
        short = len(columns) == _SHORT_LENGTH
        for index, dtype in _FIXED.items():
            if short and index >= _SHORT_LENGTH:
                self._fixed[index][start:end] = ROW_TAIL[index - _SHORT_LENGTH]
                continue
            values = columns[index]
            first = values[0]
            if values[-1] == first and values.count(first) == count:  # the last first: a varying one is not counted
                self._fixed[index][start:end] = first
            else:
                self._fixed[index][start:end] = np.fromiter(values, dtype, count)
        for index in _NAMES:
            values, code = columns[index], self._names[index].__getitem__
            first = values[0]
            if values.count(first) == count:
                self._codes[index][start:end] = code(first)
            else:
                self._codes[index][start:end] = np.fromiter(map(code, values), np.int32, count)
        intended = columns[_INTENDED]
        if intended.count(None) != count:  # an int equals None only if it is None: counted by identity
            self._intended[start:end] = [0 if value is None else value for value in intended]
            self._intended_given[start:end] = [value is not None for value in intended]
        for index in () if short else _PAYLOAD_DEFAULT:
            values = columns[index]
            if _CARRIED[index](values, count):
                self._payload[index].append((start, values))
        self.rows = end

    def outcome_codes(self, rows: int) -> npt.NDArray[np.int8]:
        """The first ``rows`` rows' outcome codes (a view)."""
        return self._fixed[6][:rows]

    def batch(self, rows: int | None = None, unpicklable: Unpicklable | None = None) -> pa.RecordBatch:
        """The first ``rows`` rows (all by default) as a record batch of :data:`SCHEMA` (views of the columns).

        Values read and written are pickled; one pickle cannot take is left null
        in the batch and put in ``unpicklable``, by (row, field).
        """
        count = self.rows if rows is None else rows
        arrays: list[pa.Array] = [pa.nulls(0)] * len(SCHEMA)
        for index, column in self._fixed.items():
            arrays[index] = _arrow(column[:count])
        for index in _NAMES:
            names = pa.array(self._names[index].names(), pa.string())
            arrays[index] = pa.DictionaryArray.from_arrays(_nullable(self._codes[index][:count], -1), names)
        arrays[6] = pa.DictionaryArray.from_arrays(arrays[6], OUTCOME_NAMES)
        arrays[_INTENDED] = _arrow(self._intended[:count], self._intended_given[:count])
        kept = {} if unpicklable is None else unpicklable
        for index in _PAYLOAD_DEFAULT:
            arrays[index] = self._payload_column(index, count, kept)
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)

    def _payload_column(self, index: int, count: int, unpicklable: Unpicklable) -> pa.Array:
        field_type = SCHEMA.field(index).type
        pieces = [(start, values) for start, values in self._payload[index] if start < count]
        if not pieces:
            return pa.nulls(count, field_type)
        values: list[Any] = [_PAYLOAD_DEFAULT[index]] * count
        for start, piece in pieces:
            values[start : start + len(piece)] = piece
        if index == _CAUSES:
            return pa.array([causes or None for causes in values], field_type)
        if index == _TIMINGS:
            return pa.array(values, field_type)
        return pa.array([_pickled(value, (row, index), unpicklable) for row, value in enumerate(values)], field_type)


def batch_of(rows: Sequence[Row], unpicklable: Unpicklable | None = None) -> pa.RecordBatch:
    """The rows as one record batch of :data:`SCHEMA` (see :meth:`ChunkBuilder.batch` for ``unpicklable``)."""
    builder = ChunkBuilder(len(rows))
    for start in range(0, len(rows), PIECE_ROWS):
        builder.add(rows[start : start + PIECE_ROWS])
    return builder.batch(unpicklable=unpicklable)


def _columns_of(rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """The rows' columns: the values of each field, in order."""
    try:
        columns = list(zip(*rows, strict=True))
    except ValueError:  # short rows and full ones: the short ones made full
        columns = _full_columns(rows)
    if len(columns) not in (_SHORT_LENGTH, _ROW_LENGTH):
        wrong = next((row for row in rows if len(row) not in (_SHORT_LENGTH, _ROW_LENGTH)), rows[0])
        raise ValueError(f"a row has {_SHORT_LENGTH} or {_ROW_LENGTH} fields, not {len(wrong)}: {wrong!r}")
    return columns


def _full_columns(rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    """The columns of full rows and short ones together, or none when some row is neither."""
    try:
        return list(zip(*(row if len(row) != _SHORT_LENGTH else row + ROW_TAIL for row in rows), strict=True))
    except ValueError:
        return []


def _any_value(values: tuple[Any, ...], count: int) -> bool:
    """Whether any of ``values`` is not None, by identity: a value read or written is any, whatever its ``__eq__``."""
    return any(map(is_not, values, repeat(None)))


_CARRIED: dict[int, Callable[[tuple[Any, ...], int], bool]] = {
    _CAUSES: lambda causes, count: any(causes),  # a tuple of causes is true unless empty
    _READ: _any_value,
    _WRITTEN: _any_value,
    _TIMINGS: lambda timings, count: timings.count(None) != count,  # a dict equals None only if it is None
}
"""Per payload column, whether a piece's values carry any."""


def _nullable(codes: npt.NDArray[np.int32], null: int) -> pa.Array:
    return _arrow(codes, codes != null)


def _arrow(values: npt.NDArray[Any], valid: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    """``values`` (contiguous) as an Arrow array on the same memory (booleans packed), null where not ``valid``.

    Made from its buffers: ``pa.array`` of a numpy array imports numpy.ma (10 to 15 ms) to check it is not masked.
    """
    nulls = 0 if valid is None else len(values) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if valid is not None and nulls else None
    data = np.packbits(values, bitorder="little") if values.dtype == np.bool_ else values
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [bitmap, pa.py_buffer(data)], nulls)


def _pickled(value: Any, where: tuple[int, int], unpicklable: Unpicklable) -> bytes | None:
    if value is None:
        return None
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - pickle raises what the value's own __reduce__ raises
        unpicklable[where] = value
        return None
