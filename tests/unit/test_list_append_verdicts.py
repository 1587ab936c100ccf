"""Judging list-append histories: consistency models, anomalies asked for, unknown outcomes, and what a history
must hold to be judged at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from list_append_builder import a, check, names, r, t

from stampede.checkers.list_append import ANOMALY_NAMES, check_anomalies_include, check_consistency
from stampede.checkers.list_append.models import markdown_table, ruled_out
from stampede.errors import ConfigurationError
from stampede.history import Operation
from stampede.outcomes import Outcome
from stampede.verdicts import Judgement

ROOT = Path(__file__).resolve().parents[2]
WRITE_SKEW = (t(r("x"), a("y", 1)), t(r("y"), a("x", 1)), t(r("x", 1), r("y", 1)))
SERIAL = (t(r("x"), a("y", 1)), t(r("y", 1), a("x", 1)), t(r("x", 1), r("y", 1)))


def test_write_skew_is_snapshot_isolation_but_not_serializable() -> None:
    found = check(*WRITE_SKEW)
    assert check_consistency(found, "snapshot isolation").judgement is Judgement.PASSED
    verdict = check_consistency(found, "serializable")
    assert verdict.judgement is Judgement.FAILED
    assert "The history is not serializable: it shows 1 G2-item" in verdict.message
    assert verdict.details[0]["transactions"] == "T1, T2"


def test_a_serial_history_satisfies_strict_serializability() -> None:
    verdict = check_consistency(check(*SERIAL), "Strict-Serializable")
    assert verdict.judgement is Judgement.PASSED
    assert "consistent with strict serializable" in verdict.message


def test_read_skew_rules_out_snapshot_isolation_but_not_read_committed() -> None:
    found = check(t(r("x"), r("y", 1)), t(a("x", 1), a("y", 1)), t(r("x", 1)))
    assert check_consistency(found, "read committed").passed
    assert not check_consistency(found, "snapshot isolation").passed
    assert found.ruled_out[0] == "repeatable read"


def test_lost_update_is_allowed_by_read_committed_only() -> None:
    assert ruled_out(["lost update"]) == [
        "cursor stability",
        "repeatable read",
        "snapshot isolation",
        "serializable",
        "strong session snapshot isolation",
        "strong snapshot isolation",
        "strong session serializable",
        "strict serializable",
    ]


def test_a_realtime_cycle_rules_out_only_the_real_time_models() -> None:
    assert ruled_out(["G-single-realtime"]) == ["strong snapshot isolation", "strict serializable"]


def test_an_unknown_model_is_refused_naming_the_models() -> None:
    with pytest.raises(ConfigurationError, match="snapshot isolation, serializable"):
        check_consistency(check(*SERIAL), "linearizable-ish")


def test_anomalies_should_include_passes_on_what_was_found_and_fails_on_what_was_not() -> None:
    found = check(*WRITE_SKEW)
    assert check_anomalies_include(found, ["G2-item"]).passed
    verdict = check_anomalies_include(check(*SERIAL), ["G2-item"])
    assert verdict.judgement is Judgement.FAILED
    assert "Expected the history to show G2-item, found none" in verdict.message


def test_an_unknown_anomaly_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="G2-item"):
        check_anomalies_include(check(*SERIAL), ["write skew"])


@pytest.mark.parametrize(
    ("history", "missing"),
    [
        ((), "no transaction"),
        ((t(a("x", 1), outcome="failed"), t(r("x", 1), outcome="failed")), "none of its 2 transactions committed"),
        ((t(a("x", 1)), t(r("x", 1), outcome="unknown")), "only 1 transaction committed"),
        ((t(a("x", 1)), t(r("y")), t(a("y", 2), outcome="failed")), "no committed transaction read a key"),
    ],
)
def test_a_history_that_cannot_show_an_anomaly_is_inconclusive(history: tuple[Operation, ...], missing: str) -> None:
    found = check(*history)
    assert missing in (found.missing or "")
    verdict = check_consistency(found, "serializable")
    assert verdict.judgement is Judgement.INCONCLUSIVE
    assert not verdict.passed
    assert check_anomalies_include(found, ["G0"]).judgement is Judgement.INCONCLUSIVE


def test_a_forbidden_anomaly_fails_even_a_history_too_small_to_judge_otherwise() -> None:
    found = check(t(a("x", 1), r("x", 1, 1)))
    assert found.missing
    assert check_consistency(found, "read uncommitted").judgement is Judgement.FAILED


def test_an_unknown_transaction_whose_append_was_read_committed() -> None:
    found = check(t(a("x", 1), a("y", 1), outcome="unknown"), t(r("x"), r("y", 1)), t(r("x", 1)))
    assert names(found) == {"G-single"}
    assert found.unknown_seen == 1


def test_an_unknown_transaction_no_one_saw_is_left_out_not_counted_as_committed() -> None:
    """Counted as committed, its read of y=[] would close a write skew with T2; it may never have committed."""
    found = check(t(r("y"), a("x", 1), outcome="unknown"), t(r("x"), a("y", 1)), t(r("y", 1)))
    assert names(found) == set()
    assert "1 of unknown outcome left out" in found.describe()


def test_an_unknown_append_read_by_someone_is_no_aborted_read() -> None:
    assert "G1a" not in names(check(t(a("x", 1), outcome="unknown"), t(a("x", 2)), t(r("x", 1, 2))))


def test_a_conflict_and_an_integrity_error_are_failures_a_timeout_and_a_lost_connection_unknown() -> None:
    def outcome_of(outcome: Outcome, error: str | None) -> int:
        op = Operation(1, "u", "la", 0, 0, 1, outcome, error=error, written=[["append", "x", 1]])
        return check(op, t(r("x", 1)), t(a("y", 1)), t(r("y", 1))).failed

    assert outcome_of(Outcome.DEADLOCK, "40P01") == 1
    assert outcome_of(Outcome.ERROR, "23505") == 1
    assert outcome_of(Outcome.TIMEOUT, "operation_timeout") == 0
    assert outcome_of(Outcome.ERROR, "ConnectionDoesNotExistError") == 0


@pytest.mark.parametrize(
    ("written", "what"),
    [
        ({"x": 1}, "not a list of micro-operations"),
        ([["write", "x", 1]], "micro-operation 1 is"),
        ([["append", ["x"], 1]], "has key"),
        ([["r", "x", 5]], "not a list"),
    ],
)
def test_a_malformed_record_is_refused_naming_the_shape(written: object, what: str) -> None:
    op = Operation(1, "u", "mine", 0, 0, 1, Outcome.OK, written=written)
    with pytest.raises(ConfigurationError, match=what):
        check(op)


def test_a_value_appended_twice_to_a_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="T1 and T2 both appended 1 to key 'x'"):
        check(t(a("x", 1)), t(a("x", 1)))


def test_the_docs_hold_the_model_table_as_implemented() -> None:
    assert markdown_table(ANOMALY_NAMES) in (ROOT / "docs" / "list_append.md").read_text(encoding="utf-8")
