"""The keyword that checks an SQL invariant, after a launch or sampled while one runs."""

from __future__ import annotations

from datetime import timedelta

from robot.api.deco import keyword

from stampede.checkers.invariants import check_invariant
from stampede.errors import ConfigurationError, StampedeError
from stampede.records.invariants import InvariantSample
from stampede.units import positive_seconds
from stampede.workloads.sql_invariant import InvariantQuery, sample_during, sample_now

from ..component import LibraryComponent
from ..runtime import BackgroundLaunch, Running

SAMPLING_ALLOWANCE_SECONDS = 60.0
"""Beyond a background launch's own timeout: its tool's setup and teardown."""


class InvariantKeywords(LibraryComponent):
    @keyword(tags=["checks"])
    def invariant_should_hold(
        self,
        sql: str,
        expected: str | None = None,
        *,
        during: BackgroundLaunch | None = None,
        every: timedelta = timedelta(milliseconds=100),
    ) -> None:
        """Fails unless the query ``sql`` returns true (or ``expected``), now or all through a background launch.

        The query runs in this run's schema and must return one row with one
        value: a condition (``SELECT sum(balance) = 100000 FROM accounts``),
        or, with ``expected``, any value compared with it (``expected=100000``;
        given as text, it is converted to the column's type). No row, several
        rows or several columns is an error, and NULL never holds.

        With ``during=`` a handle from `Launch Agents In Background`, the query
        is sampled every ``every`` from the launch's start until it ends, and
        once more after; the keyword returns when the launch has ended (then
        `Wait For Launch` collects it). It fails with the first sample that
        broke the invariant and when it was taken (time since the launch
        started), and logs a table of the samples. A launch that ended before
        the first sample was taken during it is not a pass: nothing was judged.

        | Invariant Should Hold | SELECT balance >= 0 FROM accounts WHERE id = ${account} |
        | Invariant Should Hold | SELECT balance FROM accounts WHERE id = ${account} | expected=99900 |
        | ${load}= | Launch Agents In Background | deduct | 20 | duration=2 s |
        | Invariant Should Hold | SELECT sum(balance) = 100000 FROM accounts | during=${load} | every=100 ms |
        | Wait For Launch | ${load} |
        """
        query = InvariantQuery(self.runtime.postgres, sql, expected)
        interval = positive_seconds(every, what="every")
        if during is None:
            samples = self.runtime.run(_now(query))
        else:
            if not isinstance(during, BackgroundLaunch):
                raise ConfigurationError(
                    f"during= takes the handle Launch Agents In Background returns, got {during!r}."
                )
            if during.waited:
                raise StampedeError(
                    f"{during} was already waited for: sample an invariant during a launch before Wait For Launch."
                )
            bound = during.plan.run_timeout + SAMPLING_ALLOWANCE_SECONDS
            samples = self.runtime.run(_during(query, during.running, interval, bound), timeout=bound + 30)
        self.judge(
            check_invariant(
                samples, query=query.sql, expected=query.expected, during=during is not None, every=interval
            )
        )


async def _now(query: InvariantQuery) -> list[InvariantSample]:
    async with query:
        return await sample_now(query)


async def _during(query: InvariantQuery, launch: Running, every: float, bound: float) -> list[InvariantSample]:
    async with query:
        return await sample_during(query, launch, every, bound)
