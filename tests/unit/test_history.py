"""The history: operation records and their JSON-lines file."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from pathlib import Path

from stampede.history import History, Operation
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
