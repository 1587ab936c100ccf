"""A verdict: what was checked, what was expected, what was measured, and by how much it missed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """The result of one checker or threshold, shaped for a report table."""

    name: str
    passed: bool
    expected: str
    measured: str
    miss: str = ""
    message: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)
    inconclusive: bool = False
    value: float | None = None  # the measured figure as a number, when there is one

    @property
    def status(self) -> str:
        if self.inconclusive:
            return "INCONCLUSIVE"
        return "PASS" if self.passed else "FAIL"

    def __str__(self) -> str:
        return self.message or f"{self.name}: expected {self.expected}, measured {self.measured}"
