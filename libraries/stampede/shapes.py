"""Load shapes: when each agent starts and, for an open model, when each operation is due."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True)
class AllAtOnce:
    """Every agent gets ready, waits at a start barrier, and all are released together."""

    def describe(self) -> str:
        return "all at once (start barrier)"


@dataclass(frozen=True)
class RampInBatches:
    """Agents start ``batch_size`` at a time, one batch every ``interval`` seconds."""

    batch_size: int
    interval: float

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigurationError(f"batch size must be at least 1, got {self.batch_size}")
        if self.interval < 0:
            raise ConfigurationError(f"batch interval must not be negative, got {self.interval} s")

    def start_offset(self, index: int) -> float:
        return (index // self.batch_size) * self.interval

    def describe(self) -> str:
        return f"ramp in batches of {self.batch_size} every {self.interval:g} s"


@dataclass(frozen=True)
class FixedRate:
    """Operations are due at a fixed rate, whoever is free runs the next one.

    Latency counts from when an operation was due, not from when an agent got
    to it, so a stalled server cannot hide behind a busy harness.
    """

    per_second: float

    def __post_init__(self) -> None:
        if self.per_second <= 0:
            raise ConfigurationError(f"arrival rate must be above 0 per second, got {self.per_second}")

    def due_offset(self, index: int) -> float:
        return index / self.per_second

    def describe(self) -> str:
        return f"fixed arrival rate of {self.per_second:g} operations/s"


LoadShape = AllAtOnce | RampInBatches | FixedRate
