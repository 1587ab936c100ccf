"""The invariant checker on hand-made samples: the first broken sample and its time, and nothing judged is no pass."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stampede.checkers.invariants import check_invariant, holds
from stampede.outcomes import ConflictError, Outcome, classify_exception
from stampede.records.invariants import InvariantSample
from stampede.workloads.sql_parameters import to_positional
from stampede.workloads.sql_transaction_tool import _row_count

MS = 1_000_000
SQL = "SELECT sum(balance) = 100 FROM accounts"


def _during(*values: object) -> list[InvariantSample]:
    samples = [InvariantSample(value, index * 100 * MS, during=True) for index, value in enumerate(values)]
    return [*samples, InvariantSample(True, len(values) * 100 * MS, during=False)]


def test_an_invariant_that_held_in_every_sample_passes_counting_them() -> None:
    verdict = check_invariant(_during(True, True, True), query=SQL, expected=True, during=True, every=0.1)
    assert verdict.passed
    assert verdict.message == (
        f"Invariant held in 4 samples: 3 samples every 100.0 ms during the launch and 1 sample after it; {SQL} "
        "returned true."
    )


def test_a_broken_sample_fails_with_the_first_one_and_when_it_was_taken() -> None:
    verdict = check_invariant(_during(True, False, None, True), query=SQL, expected=True, during=True, every=0.1)
    assert not verdict.passed and not verdict.inconclusive
    assert verdict.message == (
        f"Invariant broken: {SQL} returned false 100.0 ms into the launch (sample 2 of 5); expected true. "
        "2 of 5 samples broke it."
    )
    assert [row["held"] for row in verdict.details] == ["yes", "NO", "NO", "yes", "yes"]
    assert verdict.details[2]["value"] == "NULL"


def test_a_long_sampling_lists_the_broken_samples() -> None:
    values = [True] * 30 + [False] + [True] * 5
    verdict = check_invariant(_during(*values), query=SQL, expected=True, during=True, every=0.1)
    assert [row["sample"] for row in verdict.details] == [31]
    assert "3.00 s into the launch (sample 31 of 37)" in verdict.message


def test_a_launch_with_no_sample_taken_during_it_is_not_judged() -> None:
    after_only = [InvariantSample(True, 5 * MS, during=False)]
    verdict = check_invariant(after_only, query=SQL, expected=True, during=True, every=0.1)
    assert verdict.inconclusive and not verdict.passed
    assert verdict.message.startswith("Invariant not judged: the launch ended before the first sample")
    assert check_invariant([], query=SQL, expected=True).inconclusive


def test_a_single_sample_after_a_launch_is_judged_on_its_value() -> None:
    assert check_invariant([InvariantSample(Decimal("100"))], query="q", expected=Decimal("100.00")).passed
    broken = check_invariant([InvariantSample(Decimal("99"))], query="q", expected=Decimal("100"))
    assert (
        broken.message == "Invariant broken: q returned 99 now (sample 1 of 1); expected 100. 1 of 1 sample broke it."
    )


@pytest.mark.parametrize(
    ("value", "expected", "result"),
    [
        (True, True, True),
        (1, True, False),
        (False, False, True),
        (None, True, False),
        (None, None, False),
        (3, 3, True),
    ],
)
def test_true_is_only_true_and_null_never_holds(value: object, expected: object, result: bool) -> None:
    assert holds(value, expected) is result


def test_a_conflict_error_is_classified_as_a_conflict_with_its_code() -> None:
    assert classify_exception(ConflictError("no_row_statement_2")) == (Outcome.CONFLICT, "no_row_statement_2")


def test_carried_parameters_are_cast_to_their_columns_type() -> None:
    sql, names = to_positional("UPDATE a SET n = :n + :step, v = :v + 1 WHERE v = :v", {"n": "int8", "v": "int4"})
    assert sql == "UPDATE a SET n = $1::int8 + $2, v = $3::int4 + 1 WHERE v = $3::int4"
    assert names == ["n", "step", "v"]


@pytest.mark.parametrize(("status", "count"), [("UPDATE 0", 0), ("INSERT 0 1", 1), ("SELECT 3", 3), ("SET", None)])
def test_the_row_count_is_read_from_the_command_tag(status: str, count: int | None) -> None:
    assert _row_count(status) == count
