"""Dependency cycles of list-append histories (Adya's G0, G1c, G-single, G-nonadjacent, G2-item and their process
and real-time variants), each edge kind explained, and each with a twin that must not report it."""

from __future__ import annotations

import pytest
from list_append_builder import a, check, names, r, t

from stampede.checkers.list_append import Analysis
from stampede.checkers.list_append.cycles import classify
from stampede.checkers.list_append.graph import PROCESS, REALTIME, RW, WR, WW


def cycle(found: Analysis, name: str) -> str:
    (anomaly,) = [anomaly for anomaly in found.anomalies if anomaly.name == name]
    return anomaly.explanation


def test_g0_is_a_cycle_of_write_write_edges() -> None:
    found = check(t(a("x", 1), a("y", 2)), t(a("x", 2), a("y", 1)), t(r("x", 1, 2), r("y", 1, 2)))
    assert names(found) == {"G0"}
    words = cycle(found, "G0")
    assert "T1 appended 1 to key x and T2 appended 2 right after it, so T1 precedes T2" in words
    assert "T2 appended 1 to key y and T1 appended 2 right after it, so T2 precedes T1" in words


def test_writes_applied_in_one_order_on_every_key_make_no_g0() -> None:
    assert names(check(t(a("x", 1), a("y", 2)), t(a("x", 2), a("y", 3)), t(r("x", 1, 2), r("y", 2, 3)))) == set()


def test_g1c_is_a_cycle_of_write_read_edges() -> None:
    found = check(t(a("x", 1), r("y", 1)), t(a("y", 1), r("x", 1)))
    assert names(found) == {"G1c"}
    assert "T2 appended 1 to key y; T1 read key y as [1], so T2 precedes T1" in cycle(found, "G1c")


def test_one_way_write_read_edges_make_no_g1c() -> None:
    assert names(check(t(a("x", 1), r("y", 1)), t(a("y", 1), r("x")), t(r("x", 1)))) == set()


def test_g_single_is_a_cycle_with_one_read_write_edge() -> None:
    """Read skew: T1 sees T2's append to y but not its append to x."""
    found = check(t(r("x"), r("y", 1)), t(a("x", 1), a("y", 1)), t(r("x", 1)))
    assert names(found) == {"G-single"}
    assert "T1 read key x as []; T2 appended 1, its first value, so T1 precedes T2" in cycle(found, "G-single")


def test_a_reader_that_sees_all_of_a_transaction_makes_no_g_single() -> None:
    assert names(check(t(r("x", 1), r("y", 1)), t(a("x", 1), a("y", 1)))) == set()


NONADJACENT = [
    t(r("x"), r("w", 1)),  # T1 -rw-> T2 (x), T4 -wr-> T1 (w)
    t(a("x", 1), a("y", 1)),  # T2 -wr-> T3 (y)
    t(r("y", 1), r("z")),  # T3 -rw-> T4 (z)
    t(a("z", 1), a("w", 1)),
    t(r("x", 1), r("z", 1)),  # an observer that fixes the version orders of x and z
]


def test_g_nonadjacent_has_two_read_write_edges_apart() -> None:
    found = check(*NONADJACENT)
    assert names(found) == {"G-nonadjacent"}
    assert cycle(found, "G-nonadjacent").startswith("T1 → T2 → T3 → T4 → T1")


def test_without_the_edge_back_there_is_no_g_nonadjacent() -> None:
    history = [*NONADJACENT[:-1], t(r("x", 1), r("z", 1), r("w", 1))]
    history[0] = t(r("x"), r("w"))
    assert names(check(*history)) == set()


def test_g2_item_is_write_skew_two_adjacent_read_write_edges() -> None:
    found = check(t(r("x"), a("y", 1)), t(r("y"), a("x", 1)), t(r("x", 1), r("y", 1)))
    assert names(found) == {"G2-item"}
    assert cycle(found, "G2-item").startswith("T1 → T2 → T1")


def test_one_writer_seeing_the_other_makes_no_g2_item() -> None:
    assert names(check(t(r("x"), a("y", 1)), t(r("y", 1), a("x", 1)), t(r("x", 1), r("y", 1)))) == set()


def stale_read(reader_at: tuple[int, int], *, agent: int | None = None) -> set[str]:
    """T1 appends to x; T2 then reads x without it: fine unless T2 began after T1 ended (or ran after it)."""
    writer = t(a("x", 1), at=(0, 10), agent=agent)
    reader = t(r("x"), at=reader_at, agent=agent)
    return names(check(writer, reader, t(r("x", 1))))


def test_g_single_realtime_is_a_read_that_missed_a_write_ended_before_it_began() -> None:
    assert stale_read((20, 30)) == {"G-single-realtime"}


def test_a_stale_read_concurrent_with_the_write_is_no_realtime_anomaly() -> None:
    assert stale_read((5, 30)) == set()


def test_the_real_time_edge_is_explained_with_its_gap() -> None:
    found = check(t(a("x", 1), at=(0, 1_000_000)), t(r("x"), at=(3_000_000, 4_000_000)), t(r("x", 1)))
    assert "T1 ended 2.0 ms before T2 began, so T1 precedes T2" in cycle(found, "G-single-realtime")


def test_g_single_process_is_a_stale_read_after_the_agents_own_write() -> None:
    found = check(
        t(r("x"), r("y", 1)),
        t(a("x", 1), agent=2, at=(0, 10)),
        t(a("y", 1), agent=2, at=(20, 30)),
        t(r("x", 1)),
    )
    assert names(found) == {"G-single-process"}
    assert "T2 and then T3 ran on agent 2, so T2 precedes T3" in cycle(found, "G-single-process")


def test_the_same_transactions_on_two_agents_at_once_make_no_process_anomaly() -> None:
    found = check(
        t(r("x"), r("y", 1)),
        t(a("x", 1), agent=2, at=(0, 30)),
        t(a("y", 1), agent=3, at=(20, 40)),
        t(r("x", 1)),
    )
    assert names(found) == set()


def test_g0_realtime_is_a_write_order_against_real_time() -> None:
    found = check(t(a("x", 1), at=(0, 10)), t(a("x", 2), at=(20, 30)), t(r("x", 2, 1)))
    assert names(found) == {"G0-realtime"}


def test_a_write_order_that_follows_real_time_is_no_anomaly() -> None:
    assert names(check(t(a("x", 1), at=(0, 10)), t(a("x", 2), at=(20, 30)), t(r("x", 1, 2)))) == set()


def test_only_one_cycle_of_a_kind_is_reported_per_component_with_its_process_variant_left_out() -> None:
    """A component holding a G2-item needs no G2-item-process report too."""
    found = check(
        t(r("x"), a("y", 1), agent=1, at=(0, 10)),
        t(r("y"), a("x", 1), agent=2, at=(0, 10)),
        t(r("x", 1), r("y", 1), agent=1, at=(20, 30)),
    )
    assert [anomaly.name for anomaly in found.anomalies] == ["G2-item"]


@pytest.mark.parametrize(
    ("kinds", "name"),
    [
        ([WW, WW], "G0"),
        ([WW, WR], "G1c"),
        ([RW, WR], "G-single"),
        ([RW, WR, RW, WW], "G-nonadjacent"),
        ([RW, RW], "G2-item"),
        ([WR, RW, RW], "G2-item"),
        ([RW, WR, RW], "G2-item"),  # the last rw edge sits next to the first
        ([RW, PROCESS], "G-single-process"),
        ([RW, PROCESS, REALTIME], "G-single-realtime"),
    ],
)
def test_a_cycle_is_named_by_its_edges(kinds: list[int], name: str) -> None:
    assert classify(kinds) == name


def test_a_read_write_edge_names_the_value_the_reader_missed() -> None:
    found = check(t(a("x", 1)), t(r("x", 1), a("y", 1)), t(r("y"), a("x", 2)), t(r("x", 1, 2), r("y", 1)))
    assert "T2 read key x as [1], without 2; T3 appended 2 right after 1, so T2 precedes T3" in cycle(found, "G2-item")


def test_an_unknown_transaction_may_have_committed_after_its_client_gave_up() -> None:
    """Seen by a read, T1 committed, but perhaps after T2 began: T2 missing its append is no real-time anomaly."""
    found = check(
        t(a("x", 1), outcome="unknown", agent=1, at=(0, 10)),
        t(r("x"), agent=1, at=(20, 30)),
        t(r("x"), agent=2, at=(20, 30)),
        t(r("x", 1)),
    )
    assert names(found) == set()
    assert found.unknown_seen == 1


def test_the_same_stale_reads_after_a_commit_that_returned_are_anomalies_each_a_simple_cycle() -> None:
    """T1 → T2 → T1 (process, rw) and T1 → T3 → T1 (real time, rw) share T1: one component, and one cycle of
    each kind found in it; never the walk T1 → T2 → T1 → T3 → T1, which passes T1 twice."""
    found = check(
        t(a("x", 1), agent=1, at=(0, 10)),
        t(r("x"), agent=1, at=(20, 30)),
        t(r("x"), agent=2, at=(20, 30)),
        t(r("x", 1)),
    )
    assert names(found) == {"G-single-process"}
    assert all(len(set(anomaly.transactions)) == len(anomaly.transactions) for anomaly in found.anomalies)
