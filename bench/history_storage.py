"""History storage: how a chunk of operations is best kept, and a soak's recording memory.

Part 1 compares ways of keeping one chunk of rows (as the launcher records them) as columns:
Arrow IPC (uncompressed, LZ4, zstd), Parquet (zstd) and numpy (.npz, names dictionary-encoded
in Python). For each: CPU per operation to turn rows into columns and write the file, bytes per
operation in memory (the columns) and on disk, and CPU per operation to read the file back into
the latency column. Stampede's history uses Arrow IPC with LZ4 (stampede.history_columns).

Part 2 records a soak's worth of operations (10,000,000 by default) into a History writing its
chunks to a temporary folder, exactly as a launch from Robot does: CPU per operation, peak RSS
(which must stay near the chunk's size, not grow with the operations), bytes on disk, and the
time to summarize it all from the chunk files.

Run: .venv/bin/python bench/history_storage.py [--chunk-rows 32768] [--soak 10000000]
"""

from __future__ import annotations

import argparse
import gc
import io
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line
from metrics_cost import record
from stampede.history import History
from stampede.history_builder import batch_of
from stampede.history_columns import ROW_TAIL, SCHEMA, Columns, Row, read_chunk, write_chunk
from stampede.metrics import summarize_history

SOAK_RSS_TARGET_MB = 50.0


class _Rows(list[Row]):
    """Rows kept as recorded: a list that takes the launcher's call."""

    record = list.append


def rows_of(count: int) -> list[Row]:
    """``count`` rows as the launcher records them (metrics_cost's recording): one chunk's worth."""
    return record(_Rows(), count, 50, False)


def arrow_ipc(compression: str | None) -> tuple[Callable[[list[Row], Path], int], Callable[[Path], Any]]:
    options = ipc.IpcWriteOptions(compression=compression)

    def write(rows: list[Row], path: Path) -> int:
        batch = batch_of(rows)
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SCHEMA, options=options) as writer:
            writer.write_batch(batch)
        return batch.nbytes

    def read(path: Path) -> Any:
        with pa.memory_map(str(path)) as source:
            return Columns(ipc.open_file(source).get_batch(0)).latency_ns()

    return write, read


def stampede_chunk() -> tuple[Callable[[list[Row], Path], int], Callable[[Path], Any]]:
    def write(rows: list[Row], path: Path) -> int:
        batch = batch_of(rows)
        write_chunk(batch, path)
        return batch.nbytes

    return write, lambda path: Columns(read_chunk(path)).latency_ns()


def parquet() -> tuple[Callable[[list[Row], Path], int], Callable[[Path], Any]]:
    def write(rows: list[Row], path: Path) -> int:
        batch = batch_of(rows)
        pq.write_table(pa.Table.from_batches([batch]), str(path), compression="zstd")
        return batch.nbytes

    def read(path: Path) -> Any:
        return Columns(pq.read_table(str(path)).combine_chunks().to_batches()[0]).latency_ns()

    return write, read


_NUMPY_TYPES = ["i4", None, None, "i8", "i8", "i8", "i1", None, None, "i4", None, "?", None, None, None]


def numpy_npz() -> tuple[Callable[[list[Row], Path], int], Callable[[Path], Any]]:
    """Columns as numpy arrays, names as codes into a list; the sparse payload left out (it only costs more).

    Short rows are made full first (part of this format's cost, as filling defaults is part of the piece builder's).
    """

    def write(rows: list[Row], path: Path) -> int:
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        full = [row if len(row) == len(SCHEMA) else (*row, *ROW_TAIL) for row in rows]
        for index, kind in enumerate(_NUMPY_TYPES):
            values = [row[index] for row in full]
            if index in (1, 2, 8):
                names = list(dict.fromkeys(values))
                code = {name: position for position, name in enumerate(names)}
                arrays[f"c{index}"] = np.array([code[value] for value in values], dtype="i4")
                arrays[f"n{index}"] = np.array([str(name) for name in names])
            elif index == 7:
                arrays["c7"] = np.array([-1 if value is None else value for value in values], dtype="i8")
            elif kind is not None:
                arrays[f"c{index}"] = np.array(values, dtype=kind)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        path.write_bytes(buffer.getvalue())
        return sum(array.nbytes for array in arrays.values())

    def read(path: Path) -> Any:
        with np.load(path) as stored:
            intended, start = stored["c7"], stored["c4"]
            return stored["c5"] - np.where(intended >= 0, intended, start)

    return write, read


def compare_formats(chunk_rows: int) -> None:
    rows = rows_of(chunk_rows)
    formats = {
        "Arrow IPC, LZ4 (Stampede's)": stampede_chunk(),
        "Arrow IPC, uncompressed": arrow_ipc(None),
        "Arrow IPC, zstd": arrow_ipc("zstd"),
        "Parquet, zstd": parquet(),
        "numpy .npz": numpy_npz(),
    }
    print(f"One chunk of {chunk_rows:,} operations, best of 5:")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "chunk"
        for name, (write, read) in formats.items():
            write_s, held = _best(lambda write=write: write(rows, path))
            read_s, _ = _best(lambda read=read: read(path))
            per_op = 1e9 / chunk_rows
            print(
                f"  {name:30} write {write_s * per_op:5.0f} ns/op, in memory {held / chunk_rows:4.1f} B/op, "
                f"on disk {path.stat().st_size / chunk_rows:4.1f} B/op, read back {read_s * per_op:5.1f} ns/op"
            )


def _best(run: Callable[[], Any], repeats: int = 5) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.process_time()
        result = run()
        best = min(best, time.process_time() - started)
    return best, result


def soak(operations: int) -> None:
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    with tempfile.TemporaryDirectory() as directory:
        started = time.process_time()
        history = record(History(directory=Path(directory)), operations, 50, False)
        snapshot = history.snapshot()
        recorded = time.process_time()
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before) / 2**20
        disk = sum(path.stat().st_size for path in Path(directory).iterdir())
        summary = summarize_history(snapshot, wall_seconds=600.0)
        summarized = time.process_time()
        assert summary.counts.operations == operations
    record_s = recorded - started
    print(
        f"Soak of {operations:,} operations: recording {record_s:.1f} s CPU ({record_s / operations * 1e6:.2f} us per "
        f"operation), peak RSS {peak_mb:+.0f} MB over the start, {disk / operations:.1f} B per operation on disk "
        f"({disk / 2**20:.0f} MB), summarizing from the chunk files {summarized - recorded:.1f} s CPU"
    )
    figure(
        f"history peak RSS growth recording {operations:,} operations",
        f"{peak_mb:.0f} MB",
        f"< {SOAK_RSS_TARGET_MB:g} MB",
        peak_mb < SOAK_RSS_TARGET_MB,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-rows", type=int, default=32_768, help="operations per chunk compared")
    parser.add_argument("--soak", type=int, default=10_000_000, help="operations the soak records (0: none)")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    compare_formats(args.chunk_rows)
    if args.soak:
        soak(args.soak)


if __name__ == "__main__":
    main()
