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


@dataclass(frozen=True)
class RateShare:
    """The arrivals of a fixed rate that fall to some of a launch's agents (a worker's shard): its share of them.

    Arrival ``i`` of the whole launch falls to agent slot ``i mod N`` (``N``
    the launch's agents), so the shard of agents ``a..b`` runs the arrivals of
    its own slots: a share of the rate in proportion to its agents (so
    ``iterations`` still means that many operations per agent), and the
    shards' arrivals, merged, are exactly the schedule one process runs. The
    share of all the agents is every arrival. An arrival stays with its shard
    even when another shard's agents are free: a shard that falls behind
    counts its backlog in its latencies (each from its intended start), as
    one process whose agents were all busy would.
    """

    rate: FixedRate
    agents: range
    of: int

    def __post_init__(self) -> None:
        if not self.agents or self.agents.step != 1 or self.agents.start < 1 or self.agents.stop - 1 > self.of:
            raise ConfigurationError(
                f"a share of the rate needs a run of agents within 1..{self.of}, got {self.agents}"
            )

    @property
    def per_second(self) -> float:
        return self.rate.per_second * len(self.agents) / self.of

    def arrival(self, index: int) -> int:
        """The launch's arrival number (from 0) of this share's ``index``-th."""
        rounds, place = divmod(index, len(self.agents))
        return rounds * self.of + self.agents.start - 1 + place


LoadShape = AllAtOnce | RampInBatches | FixedRate
