"""A verdict: what was checked, what was expected, what was measured, and by how much it missed.

Every verdict ends one of three ways (:class:`Judgement`): passed, failed, or
inconclusive, when there was nothing to judge (no samples, no attempt, no
launch) or what was found lies within the measurement's uncertainty. Only
``passed`` is a success: ``Verdict.passed`` is False for an inconclusive one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Judgement(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """The result of one checker or threshold, shaped for a report table."""

    name: str
    held: bool
    """Whether the invariant held on what was judged; it passes only if it also was ``inconclusive=False``."""
    expected: str
    measured: str
    miss: str = ""
    message: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)
    inconclusive: bool = False
    value: float | None = None  # the measured figure as a number, when there is one

    @property
    def judgement(self) -> Judgement:
        if self.inconclusive:
            return Judgement.INCONCLUSIVE
        return Judgement.PASSED if self.held else Judgement.FAILED

    @property
    def passed(self) -> bool:
        """True only for a verdict that judged something and found it right."""
        return self.judgement is Judgement.PASSED

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL`` or ``INCONCLUSIVE``, as the report tables show it."""
        return {Judgement.PASSED: "PASS", Judgement.FAILED: "FAIL", Judgement.INCONCLUSIVE: "INCONCLUSIVE"}[
            self.judgement
        ]

    def __str__(self) -> str:
        return self.message or f"{self.name}: expected {self.expected}, measured {self.measured}"
