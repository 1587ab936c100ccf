"""Faults a workload causes on purpose, at an exact rate, so a test knows how many to expect."""

from __future__ import annotations

from fractions import Fraction

from ..errors import ConfigurationError


class InjectedFault(Exception):
    """A failure the workload caused on purpose, not one the service raised."""


def parse_rate(value: str | float | Fraction, *, what: str) -> Fraction:
    """``30%``, ``0.3`` or ``3/10`` as an exact fraction between 0 and 1."""
    text = str(value).strip()
    try:
        rate = Fraction(text[:-1].strip()) / 100 if text.endswith("%") else Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigurationError(f"{what} must be a share such as 30% or 0.3, got {value!r}") from None
    if not 0 <= rate <= 1:
        raise ConfigurationError(f"{what} must be between 0% and 100%, got {value!r}")
    return rate


class FaultSchedule:
    """Picks exactly ⌊n × rate⌋ of the first n operations to fault, spread evenly over them.

    Exact rather than random, so a test with 100 operations at 30% sees 30 faults,
    never none by bad luck.
    """

    def __init__(self, rate: Fraction) -> None:
        self.rate = rate
        self.operations = 0

    def next_faults(self) -> bool:
        """Whether the next operation is one to fault."""
        self.operations += 1
        return int(self.operations * self.rate) > int((self.operations - 1) * self.rate)

    @property
    def percent(self) -> str:
        return f"{float(self.rate) * 100:g}%"
