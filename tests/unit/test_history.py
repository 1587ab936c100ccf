"""The history: operation records and their JSON-lines file."""

from __future__ import annotations

import datetime
import decimal
import gc
import json
import threading
import tracemalloc
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from pyarrow import ipc

from stampede.history import History, Operation
from stampede.history_builder import PIECE_ROWS
from stampede.history_columns import ADDED_COLUMNS, OUTCOME_CODE, SCHEMA, VERSION, read_chunk
from stampede.outcomes import Outcome


def full_operation() -> Operation:
    return Operation(
        7,
        "user-ü",
        "deduct",
        3,
        1_000,
        5_000,
        Outcome.DEADLOCK,
        intended_ns=900,
        error="40P01",
        retries=2,
        retry_causes=(Outcome.CONFLICT, Outcome.SERIALIZATION_FAILURE),
        exhausted=True,
        read={"account": 1, "balance": 1000, "nested": [1, {"a": None}]},
        written={"account": 1, "balance": 999},
        timings={"acquire": 1_500},
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    history = History([full_operation(), Operation(1, "user-1", "deduct", 0, 10, 20, Outcome.OK)])
    path = history.write_jsonl(tmp_path / "nested" / "dir" / "history.jsonl")
    assert path.exists()
    back = History.read_jsonl(path)
    assert [op.to_dict() for op in back] == [op.to_dict() for op in history]
    op = back[0]
    assert op.retry_causes == (Outcome.CONFLICT, Outcome.SERIALIZATION_FAILURE)
    assert op.outcome is Outcome.DEADLOCK and op.exhausted and op.intended_ns == 900
    assert op.read == {"account": 1, "balance": 1000, "nested": [1, {"a": None}]}
    assert op.timings == {"acquire": 1_500}


def test_one_line_per_operation_and_optional_fields_left_out(tmp_path: Path) -> None:
    history = History([Operation(1, "user-1", "deduct", 0, 10, 20, Outcome.OK)] * 3)
    lines = history.write_jsonl(tmp_path / "h.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == {
        "agent": 1,
        "user": "user-1",
        "op": "deduct",
        "iteration": 0,
        "start_ns": 10,
        "end_ns": 20,
        "outcome": "ok",
        "retries": 0,
    }


def test_empty_history_round_trips(tmp_path: Path) -> None:
    path = History().write_jsonl(tmp_path / "empty.jsonl")
    assert path.read_text(encoding="utf-8") == ""
    assert len(History.read_jsonl(path)) == 0


def test_blank_lines_are_skipped_on_reading(tmp_path: Path) -> None:
    path = History([full_operation()]).write_jsonl(tmp_path / "h.jsonl")
    path.write_text(path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    assert len(History.read_jsonl(path)) == 1


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def test_odd_values_are_written_as_text(tmp_path: Path) -> None:
    odd = {
        "amount": decimal.Decimal("12.50"),
        "when": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC),
        "id": uuid.UUID(int=1),
        "raw": b"\x00\xff",
        "tags": {"a"},
        "thing": Opaque(),
        ("account", 1): "tuple key",
        decimal.Decimal("1.5"): "decimal key",
        "pairs": ((1, 2), (3, 4)),
    }
    history = History([Operation(1, "user-1", "odd", 0, 0, 1, Outcome.OK, read=odd, written=[odd])])
    path = history.write_jsonl(tmp_path / "odd.jsonl")
    (op,) = History.read_jsonl(path)
    assert op.read["amount"] == "12.50"
    assert op.read["when"] == "2024-05-01 12:00:00+00:00"
    assert op.read["id"] == "00000000-0000-0000-0000-000000000001"
    assert op.read["raw"] == str(b"\x00\xff")
    assert op.read["tags"] == "{'a'}"
    assert op.read["thing"] == "<opaque thing>"
    assert op.read["('account', 1)"] == "tuple key"
    assert op.read["1.5"] == "decimal key"
    assert op.read["pairs"] == [[1, 2], [3, 4]]
    assert op.written[0]["('account', 1)"] == "tuple key"
    assert history[0].read[("account", 1)] == "tuple key", "writing must not change the recorded values"


def test_operation_properties() -> None:
    op = full_operation()
    assert not op.ok and op.attempts == 3
    assert op.latency_ns == 4_100  # from the intended start
    plain = Operation(1, "user-1", "deduct", 0, 1_000, 1_500, Outcome.OK)
    assert plain.ok and plain.attempts == 1 and plain.latency_ns == 500
    assert "agent=7" in repr(op) and "deadlock" in repr(op)


def test_history_is_a_sequence_with_successful_operations() -> None:
    ok = Operation(1, "user-1", "deduct", 0, 0, 1, Outcome.OK)
    history = History([full_operation(), ok])
    history.append(Operation(2, "user-2", "deduct", 0, 0, 1, Outcome.OK))
    assert len(history) == 3
    assert history[1] is ok
    assert [op.agent for op in history] == [7, 1, 2]
    assert [op.agent for op in history.successful()] == [1, 2]


def varied_operations(count: int) -> list[Operation]:
    """Operations with every kind of field, some with what few carry (read, written, timings, retries)."""
    outcomes = list(Outcome)
    return [
        Operation(
            index % 4 + 1,
            f"user-{index % 3}",
            "deduct" if index % 5 else "refund",
            index // 4,
            1_000 * index,
            1_000 * index + 300 + index,
            outcomes[index % len(outcomes)],
            intended_ns=1_000 * index - 50 if index % 2 else None,
            error=None if index % 3 else f"E{index % 2}",
            retries=index % 3,
            retry_causes=(Outcome.CONFLICT,) * (index % 3),
            exhausted=index % 7 == 0,
            read={("account", 1): decimal.Decimal("1.5"), "raw": b"\x00"} if index % 4 == 1 else None,
            written=b"bytes as written" if index % 6 == 2 else None,
            timings={"acquire": index, "run": 2 * index} if index % 2 else ({} if index % 3 else None),
        )
        for index in range(count)
    ]


def fields(op: Operation) -> tuple[object, ...]:
    return tuple(getattr(op, name) for name in Operation.__slots__)


def test_full_chunks_are_written_as_they_fill_and_read_back_as_recorded(tmp_path: Path) -> None:
    ops = varied_operations(23)
    history = History(ops, directory=tmp_path / "chunks", chunk_rows=5)
    assert sorted(path.name for path in (tmp_path / "chunks").iterdir()) == [f"00000{n}.arrow" for n in range(4)]
    assert len(history) == 23
    assert [fields(op) for op in history] == [fields(op) for op in ops]
    assert fields(history[7]) == fields(ops[7]) and fields(history[-1]) == fields(ops[22])
    assert fields(history[20]) == fields(ops[20]), "the open chunk"
    assert history[4].read is None and history[4].written is None
    assert history[1].read == {("account", 1): decimal.Decimal("1.5"), "raw": b"\x00"}
    assert history[2].written == b"bytes as written", "bytes are a value, not a pickle"
    assert [op.agent for op in history.successful()] == [op.agent for op in ops if op.ok]
    with pytest.raises(IndexError):
        history[23]
    with pytest.raises(IndexError):
        history[-24]


def test_without_a_directory_full_chunks_stay_in_memory_as_columns() -> None:
    ops = varied_operations(12)
    history = History(ops, chunk_rows=4)
    assert [fields(op) for op in history] == [fields(op) for op in ops]
    assert history.directory is None


def test_recorded_rows_read_back_as_the_operations_they_stand_for(tmp_path: Path) -> None:
    recorded = History(directory=tmp_path, chunk_rows=2)
    for op in varied_operations(5):
        recorded.record(
            (op.agent, op.user, op.op, op.iteration, op.start_ns, op.end_ns, OUTCOME_CODE[op.outcome], op.intended_ns,
             op.error, op.retries, op.retry_causes, op.exhausted, op.read, op.written, op.timings, op.clock_error_ns)
        )  # fmt: skip
    assert [fields(op) for op in recorded] == [fields(op) for op in varied_operations(5)]
    assert recorded.outcomes_from(1) == [op.outcome for op in varied_operations(5)[1:]]
    assert recorded.outcomes_from(5) == []


def test_a_snapshot_keeps_what_was_recorded_and_the_history_goes_on_apart(tmp_path: Path) -> None:
    ops = varied_operations(7)
    history = History(ops[:5], directory=tmp_path, chunk_rows=3)
    snapshot = history.snapshot()
    history.append(ops[5])
    assert len(snapshot) == 5 and len(history) == 6
    assert [fields(op) for op in snapshot] == [fields(op) for op in ops[:5]]
    assert len(list(tmp_path.iterdir())) == 2, "the open chunk was written when the snapshot was taken"


def test_the_json_lines_of_a_chunked_history_are_those_of_its_operations(tmp_path: Path) -> None:
    ops = varied_operations(9)
    chunked = History(ops, directory=tmp_path / "chunks", chunk_rows=4).write_jsonl(tmp_path / "a.jsonl")
    plain = History(ops).write_jsonl(tmp_path / "b.jsonl")
    assert chunked.read_text(encoding="utf-8") == plain.read_text(encoding="utf-8")


def test_recording_memory_is_bounded_by_the_chunk_not_the_operations(tmp_path: Path) -> None:
    def held_after(count: int) -> int:
        history = History(directory=tmp_path / str(count), chunk_rows=1_000)
        gc.collect()
        tracemalloc.start()
        for index in range(count):
            history.record(
                (1, "user-1", "deduct", index, index, index + 5, 0, None, None, 0, (), False, None, None, None, 0)
            )
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return held

    small, large = held_after(5_000), held_after(50_000)
    assert large - small < 100_000, f"10x the operations held {large - small} B more"


def test_a_value_pickle_cannot_take_is_kept_as_it_is_beside_its_chunk(tmp_path: Path) -> None:
    lock = threading.Lock()
    ops = [
        Operation(1, "user-1", "deduct", 0, 0, 1, Outcome.OK, read={"lock": lock}, written=[1]),
        *varied_operations(3),
    ]
    history = History(ops, directory=tmp_path, chunk_rows=2)
    assert history[0].read["lock"] is lock and history[0].written == [1]
    assert [fields(op) for op in history][1:] == [fields(op) for op in ops[1:]]


def test_histories_merge_into_one_in_the_order_their_operations_ended(tmp_path: Path) -> None:
    ops = varied_operations(14)
    evens = History(ops[::2], directory=tmp_path / "a", chunk_rows=3).snapshot()
    odds = History(ops[1::2], chunk_rows=2)
    merged = History.merged([odds, evens], tmp_path / "merged")
    assert [fields(op) for op in merged] == [fields(op) for op in sorted(ops, key=lambda op: op.end_ns)]
    assert [path.name for path in (tmp_path / "merged").iterdir()] == ["000000.arrow"]
    assert len(History.merged([History(), History()])) == 0


def test_merged_shards_are_put_on_one_timeline_each_row_with_its_clock_error(tmp_path: Path) -> None:
    here = History([Operation(1, "user-1", "op", 0, 100, 200, Outcome.OK)])
    there = History([Operation(2, "user-2", "op", 0, 5_150, 5_250, Outcome.OK, intended_ns=5_140)])
    merged = History.merged([here, there], tmp_path, [(0, 0), (5_000, 30)])
    first, second = list(merged)
    assert (first.agent, first.start_ns, first.end_ns, first.clock_error_ns) == (1, 100, 200, 0)
    assert (second.agent, second.start_ns, second.end_ns, second.intended_ns) == (2, 150, 250, 140)
    assert second.clock_error_ns == 30 and second.to_dict()["clock_error_ns"] == 30
    assert Operation.from_dict(second.to_dict()).clock_error_ns == 30


def test_a_chunk_folder_written_before_clock_error_ns_reads_it_as_zero(tmp_path: Path) -> None:
    """Chunk files of version 1 (no version in their metadata) may lack the columns added since."""
    ops = varied_operations(6)
    current = History(ops, chunk_rows=6).snapshot()
    (batch,) = [columns.batch for columns in current.columns()]
    old_schema = pa.schema([field for field in SCHEMA if field.name not in ADDED_COLUMNS])  # no metadata: version 1
    old_batch = pa.RecordBatch.from_arrays([batch.column(field.name) for field in old_schema], schema=old_schema)
    folder = tmp_path / "chunks"
    folder.mkdir()
    with pa.OSFile(str(folder / "000000.arrow"), "wb") as sink, ipc.new_file(sink, old_schema) as writer:
        writer.write_batch(old_batch)

    read = read_chunk(folder / "000000.arrow")
    assert read.schema.equals(SCHEMA, check_metadata=True)
    assert read.column("clock_error_ns").to_pylist() == [0] * 6
    history = History.of_chunks(folder)
    assert [fields(op) for op in history] == [fields(op) for op in ops]
    assert [op.clock_error_ns for op in history] == [0] * 6
    with pytest.raises(ValueError, match="holds no history chunk files"):
        History.of_chunks(tmp_path)


def test_a_chunk_folder_reads_back_as_the_history_that_wrote_it(tmp_path: Path) -> None:
    ops = varied_operations(11)
    History(ops, directory=tmp_path, chunk_rows=4).snapshot()
    assert [fields(op) for op in History.of_chunks(tmp_path)] == [fields(op) for op in ops]


def test_a_chunk_lacking_a_column_that_has_no_default_or_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    batch = next(History(varied_operations(2)).columns()).batch
    without_op = pa.schema([field for field in SCHEMA if field.name != "op"])
    newer = SCHEMA.with_metadata({"stampede.history.version": str(VERSION + 1)})
    for name, schema in [("without-op", without_op), ("newer", newer)]:
        table = pa.Table.from_arrays([batch.column(field.name) for field in schema], schema=schema)
        with pa.OSFile(str(tmp_path / name), "wb") as sink, ipc.new_file(sink, schema) as writer:
            writer.write_table(table)
    with pytest.raises(ValueError, match="it has no column 'op'"):
        read_chunk(tmp_path / "without-op")
    with pytest.raises(ValueError, match=f"version {VERSION + 1}, newer than this Stampede's"):
        read_chunk(tmp_path / "newer")


class _EqualToEverything:
    """A value whose ``__eq__`` says it is None too: recorded as itself all the same."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


def test_a_chunk_of_several_pieces_reads_back_as_recorded(tmp_path: Path) -> None:
    """Pieces alike in a column (one name, no retries) and pieces that vary, in one chunk and across two."""
    varied = varied_operations(PIECE_ROWS + 7)
    alike = [Operation(1, "user-1", "deduct", index, index, index + 5, Outcome.OK) for index in range(PIECE_ROWS)]
    odd = _EqualToEverything()
    ops = [*alike, *varied, Operation(2, "user-2", "refund", 0, 1, 2, Outcome.OK, read=odd)]
    history = History(ops, directory=tmp_path, chunk_rows=2 * PIECE_ROWS + 3)
    assert len(list(tmp_path.iterdir())) == 1, "one full chunk written, the rest open"
    assert [fields(op) for op in history][:-1] == [fields(op) for op in ops[:-1]]
    assert history[-1].read is odd, "the open piece"
    open_chunk = History(ops, chunk_rows=4 * PIECE_ROWS)  # two pieces in its columns, the rest a piece of rows
    assert open_chunk.outcomes_from(PIECE_ROWS - 2) == [op.outcome for op in ops[PIECE_ROWS - 2 :]]
    assert [fields(op) for op in open_chunk][:-1] == [fields(op) for op in ops[:-1]]
    assert type(History(ops, chunk_rows=len(ops)).snapshot()[-1].read) is _EqualToEverything, "pickled, not lost"


def test_short_rows_read_back_as_operations_with_nothing_after_their_error(tmp_path: Path) -> None:
    """Pieces of short rows only, and pieces where short and full rows take turns, in chunks on disk and open."""
    ops = varied_operations(PIECE_ROWS)
    plain = [
        Operation(3, "user-3", "deduct", index, index, index + 9, Outcome.OK, index - 1, None)
        for index in range(PIECE_ROWS)
    ]
    mixed = [op for pair in zip(ops, plain, strict=True) for op in pair]
    expected = [*plain, *mixed]
    history = History(directory=tmp_path, chunk_rows=2 * PIECE_ROWS + 5)
    for op in expected:
        full = (
            op.agent,
            op.user,
            op.op,
            op.iteration,
            op.start_ns,
            op.end_ns,
            OUTCOME_CODE[op.outcome],
            op.intended_ns,
            op.error,
            op.retries,
            op.retry_causes,
            op.exhausted,
            op.read,
            op.written,
            op.timings,
            op.clock_error_ns,
        )
        history.record(full[:9] if op in plain else full)
    assert [fields(op) for op in history] == [fields(op) for op in expected]
    assert history.outcomes_from(PIECE_ROWS) == [op.outcome for op in mixed]


def test_a_row_of_the_wrong_length_is_refused_naming_it() -> None:
    history = History(chunk_rows=2)
    history.record((1, "user-1", "deduct", 0, 0, 5, 0, None, None, 0, (), False, None, None, None))
    with pytest.raises(ValueError, match=r"a row has 9 or 16 fields, not 15: \(1, 'user-1'"):
        history.record((1, "user-1", "deduct", 0, 0, 5, 0, None, None, 0, (), False, None, None, None))
    history = History(chunk_rows=2)
    history.record((1, "user-1", "deduct", 0, 0, 5, 0, None, None))
    with pytest.raises(ValueError, match=r"a row has 9 or 16 fields, not 10: \(1, 'user-1'"):
        history.record((1, "user-1", "deduct", 0, 0, 5, 0, None, None, 0))
