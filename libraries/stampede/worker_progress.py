"""Live progress of a launch on workers: each shard publishes its tally, the launching process adds them up.

Each shard's tally lives in a Dask ``Variable`` of its own, on the scheduler:
the shard sets it (when it changed) each time it checks in, and once more when
its launch has ended; the launching process reads them only when a display
asks. A read never waits on a worker: the variables are set before the shards
start, and one the scheduler does not give back in time (or a shard that
stopped publishing) counts with the last tally seen, so a lost or stalled
shard cannot hang the display. The variables are deleted after the launch.
"""

from __future__ import annotations

import contextlib
from dataclasses import astuple
from typing import Any

from .launcher import RunningLaunch
from .progress import LaunchTally, Tally

READ_TIMEOUT_SECONDS = 0.5
"""How long a display's read of one shard's tally may wait on the scheduler before the last one seen is used."""


def _name(token: str, number: int) -> str:
    return f"stampede-progress-{token}-{number}"


def _wire(tally: Tally) -> list[int]:
    return list(astuple(tally))  # a Variable holds msgpack values, not objects


class ShardProgress:
    """A shard's side (in its worker): publishes its launch's tally for the launching process."""

    def __init__(self, token: str, number: int, running: RunningLaunch) -> None:
        from distributed import Variable

        self._variable = Variable(_name(token, number))
        self._tally = LaunchTally(running)
        self._published = Tally()

    def publish(self) -> None:
        """Set the shard's variable to its tally now, when that changed since the last."""
        tally = self._tally.tally()
        if tally != self._published:
            self._variable.set(_wire(tally))
            self._published = tally


class ShardsProgress:
    """The launching process's side: the shards' latest tallies added up, as a progress display reads them."""

    def __init__(self, client: Any, token: str, shards: int, agents: int) -> None:
        from distributed import Variable

        self._agents = agents
        self._variables = [Variable(_name(token, number), client=client) for number in range(1, shards + 1)]
        self._seen = [Tally()] * shards
        for variable in self._variables:
            variable.set(_wire(Tally()))

    @property
    def agents(self) -> int:
        return self._agents

    def tally(self) -> Tally:
        for index, variable in enumerate(self._variables):
            with contextlib.suppress(TimeoutError):
                wire = variable.get(timeout=READ_TIMEOUT_SECONDS, callback_timeout=2 * READ_TIMEOUT_SECONDS)
                self._seen[index] = Tally(*wire)
        return sum(self._seen, Tally())

    def close(self) -> None:
        for variable in self._variables:
            variable.delete()
