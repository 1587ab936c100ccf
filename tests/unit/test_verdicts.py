"""A verdict ends passed, failed or inconclusive, and only a passed one is a success."""

from __future__ import annotations

from stampede.verdicts import Judgement, Verdict


def test_an_inconclusive_verdict_is_never_passed_whatever_its_finding() -> None:
    nothing = Verdict("lost updates", True, "0 lost", "0 checkable writes", inconclusive=True)
    assert nothing.judgement is Judgement.INCONCLUSIVE
    assert not nothing.passed
    assert nothing.status == "INCONCLUSIVE"


def test_held_and_judged_passes_and_broken_fails() -> None:
    assert Verdict("lost updates", True, "0 lost", "0 lost").judgement is Judgement.PASSED
    broken = Verdict("lost updates", False, "0 lost", "12 lost", "12")
    assert broken.judgement is Judgement.FAILED and not broken.passed and broken.status == "FAIL"
