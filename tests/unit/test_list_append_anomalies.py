"""Non-cycle anomalies of list-append histories, each with a twin that must not report it (Adya 1999, Elle 2020)."""

from __future__ import annotations

import pytest
from list_append_builder import a, check, names, r, t

from stampede.history import Operation
from stampede.outcomes import Outcome


def test_aborted_read_g1a_is_a_read_of_a_failed_append() -> None:
    found = check(t(a("x", 1), outcome="failed"), t(a("x", 2)), t(r("x", 1, 2)))
    assert "G1a" in names(found)
    (g1a,) = [anomaly for anomaly in found.anomalies if anomaly.name == "G1a"]
    assert "T1 appended 1 and failed" in g1a.explanation


def test_a_read_without_the_failed_append_is_no_aborted_read() -> None:
    assert names(check(t(a("x", 1), outcome="failed"), t(a("x", 2)), t(r("x", 2)))) == set()


def test_intermediate_read_g1b_ends_where_the_writer_went_on() -> None:
    found = check(t(a("x", 1), a("x", 2)), t(r("x", 1)))
    assert names(found) == {"G1b"}
    assert "appended 1 and then 2 to key x" in found.anomalies[0].explanation


def test_a_read_of_the_writers_final_append_is_no_intermediate_read() -> None:
    assert names(check(t(a("x", 1), a("x", 2)), t(r("x", 1, 2)))) == set()


@pytest.mark.parametrize(
    "ops",
    [
        [r("x"), a("x", 7), r("x")],  # its own append is not visible to it
        [r("x", 1), r("x")],  # an element it had read vanished
        [a("x", 2), a("x", 3), r("x", 1, 3, 2)],  # its own appends out of order
    ],
)
def test_internal_inconsistency_is_a_read_at_odds_with_its_own_transaction(ops: list[list[object]]) -> None:
    found = check(t(a("x", 1)), t(a("y", 4), r("y", 4)), t(*ops))
    assert "internal inconsistency" in names(found)


def test_a_read_that_sees_new_commits_between_its_reads_and_its_appends_is_consistent() -> None:
    """Read committed lets a transaction see another's commit between two reads: not an internal anomaly."""
    found = check(t(a("x", 5)), t(r("x"), a("x", 1), r("x", 5, 1)), t(r("x", 5, 1)))
    assert "internal inconsistency" not in names(found)


def test_duplicate_elements_are_one_value_read_twice() -> None:
    assert "duplicate elements" in names(check(t(a("x", 1)), t(r("x", 1, 1))))


def test_each_value_read_once_is_no_duplicate() -> None:
    assert names(check(t(a("x", 1)), t(r("x", 1)))) == set()


def test_incompatible_orders_are_two_reads_neither_a_prefix_of_the_other() -> None:
    found = check(t(a("x", 1)), t(a("x", 2)), t(r("x", 1, 2)), t(r("x", 2, 1)))
    assert "incompatible orders" in names(found)


def test_a_read_that_is_a_prefix_of_another_is_compatible() -> None:
    assert names(check(t(a("x", 1)), t(a("x", 2)), t(r("x", 1, 2)), t(r("x", 1)))) == set()


def test_a_garbage_read_holds_a_value_no_one_appended() -> None:
    assert "garbage read" in names(check(t(a("x", 1)), t(r("x", 1, 9))))


def test_an_untraceable_value_is_no_garbage_read_when_a_cut_off_transaction_recorded_nothing() -> None:
    cut = Operation(7, "u", "list append", 0, 0, 1, Outcome.TIMEOUT, error="operation_timeout")
    assert "garbage read" not in names(check(t(a("x", 1)), t(r("x", 1, 9)), cut))


def test_lost_update_is_two_committed_appends_after_reading_the_same_version() -> None:
    found = check(t(r("x"), a("x", 1)), t(r("x"), a("x", 2)), t(r("x", 1, 2)))
    assert "lost update" in names(found)
    (lost,) = [anomaly for anomaly in found.anomalies if anomaly.name == "lost update"]
    assert lost.transactions == ("T1", "T2")


def test_appends_after_reading_successive_versions_lose_nothing() -> None:
    found = check(t(r("x"), a("x", 1)), t(r("x", 1), a("x", 2)), t(r("x", 1, 2)))
    assert names(found) == set()


def test_a_failed_transaction_that_read_the_same_version_loses_no_update() -> None:
    found = check(t(r("x"), a("x", 1)), t(r("x"), a("x", 2), outcome="failed"), t(r("x", 1)))
    assert "lost update" not in names(found)
