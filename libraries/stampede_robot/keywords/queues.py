"""Keywords for work queues in PostgreSQL and Redis: defining the tool, and judging what it did."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from robot.api.deco import keyword

from stampede.checkers.queue_delivery import (
    check_no_item_lost,
    check_no_item_processed_twice,
    check_overflow,
    duplicated_items,
)
from stampede.checkers.queue_priorities import check_priority_inversions, check_waits_by_priority
from stampede.checkers.queue_records import summarize_queue
from stampede.errors import ConfigurationError
from stampede.units import format_duration
from stampede.workloads.pg_queue import PostgresWorkQueue
from stampede.workloads.redis_queue import RedisWorkQueue
from stampede.workloads.work_queue import CapacityCheck, ClaimStrategy, QueueBackend, QueueSettings, WorkQueueTool

from ..component import LibraryComponent
from ..html import table
from ..runtime import LaunchRecord


def parse_priorities(priorities: str | list[int] | int) -> tuple[int, ...]:
    """``1, 5, 10`` (commas or spaces), a list, or one number, as a tuple of whole numbers."""
    if isinstance(priorities, int):
        return (priorities,)
    parts = priorities if isinstance(priorities, list) else re.split(r"[\s,]+", priorities.strip())
    try:
        return tuple(int(str(part)) for part in parts if str(part))
    except ValueError:
        raise ConfigurationError(
            f"priorities must be whole numbers separated by commas, e.g. 1, 5, 10; got {priorities!r}"
        ) from None


class QueueToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "queues"])
    def define_work_queue(
        self,
        name: str,
        *,
        backend: QueueBackend = QueueBackend.POSTGRESQL,
        capacity: int = 1000,
        producers: int = 1,
        items: int = 100,
        priorities: str | list[int] = "1",
        claim: ClaimStrategy | None = None,
        capacity_check: CapacityCheck = CapacityCheck.ATOMIC,
        process_time: timedelta = timedelta(0),
        think_time: timedelta = timedelta(0),
    ) -> None:
        """Defines an empty work queue ``name`` and the tool its producers and consumers run.

        Launch it with `Launch Agents`: agents 1 to ``producers`` are producers,
        which together offer ``items`` items, one per operation, with
        ``priorities`` taken in turn (higher runs first; 0 to 1000). The queue
        refuses an item when ``capacity`` items are waiting: the operation ends
        in error ``queue_full``, counted and reported, never dropped silently.
        Every other agent is a consumer: it claims the waiting item of highest
        priority (oldest first within a priority), works on it for
        ``process_time`` and marks it done. Consumers stop once the producers
        are done and the queue is empty, so give the launch a ``duration`` as
        its upper bound, not as its length.

        ``backend`` is ``postgresql`` (a table in the run's schema) or ``redis``
        (a sorted set under the run's key prefix). ``claim`` is how consumers
        take an item:
        - ``skip locked`` (PostgreSQL's default): ``UPDATE … WHERE id = (SELECT …
          FOR UPDATE SKIP LOCKED LIMIT 1)``; consumers never wait for each other.
        - ``atomic pop`` (Redis's default): a Lua script pops the best item and
          marks it in progress in one step.
        - ``naive``: read the first waiting item, then take it with no lock and
          no condition; two consumers can take the same item (a seeded bug).
        - ``oldest first`` (PostgreSQL): skip locked, but by arrival only,
          ignoring priority (a seeded bug).

        ``capacity_check`` is ``atomic`` (PostgreSQL locks the queue's row, then
        counts; Redis counts and adds in one script) or ``count then insert``
        (no lock: concurrent producers overfill the queue, a seeded bug).
        ``think_time`` pauses inside both seeded bugs' race, making it reliable.

        | Define Work Queue | jobs | backend=postgresql | capacity=100 | producers=5 | items=500 | priorities=1, 5, 10 |
        | Launch Agents | jobs | 25 | duration=60 s |
        | Define Work Queue | jobs | backend=redis | claim=naive | think_time=5 ms |
        """
        settings = QueueSettings(
            backend=backend,
            capacity=capacity,
            producers=producers,
            items=items,
            priorities=parse_priorities(priorities),
            claim=claim,
            capacity_check=capacity_check,
            process_time=process_time.total_seconds(),
            think_time=think_time.total_seconds(),
        )
        if backend is QueueBackend.POSTGRESQL:
            tool: WorkQueueTool = self.runtime.run(PostgresWorkQueue.create(self.runtime.postgres, name, settings))
        else:
            tool = RedisWorkQueue(self.runtime.redis, name, settings)
        self.runtime.tools[name] = tool
        self.log_html(table(["", ""], tool.describe().items(), f"Work queue {name}"))


class QueueCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""

    def _queue_launch(self, launch: LaunchRecord | int | None) -> tuple[LaunchRecord, WorkQueueTool]:
        return self.launch_of(launch, WorkQueueTool, "a work queue", "Define Work Queue")

    @keyword(tags=["checks", "queues"])
    def every_item_should_be_processed_exactly_once(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless every item the queue accepted was processed once: none lost, none processed twice.

        Lists lost items by id and where they are now (still waiting, claimed
        but never completed, gone), items processed that no enqueue accepted,
        and items processed more than once with the agents that processed them.
        Works on this test's latest launch unless ``launch`` is given.

        | Launch Agents | jobs | 25 | duration=60 s |
        | Every Item Should Be Processed Exactly Once |
        """
        record, tool = self._queue_launch(launch)
        history = record.result.history
        remaining = self.runtime.run(tool.contents())
        lost = check_no_item_lost(history, remaining, planned=tool.settings.items)
        self.judge(lost, check_no_item_processed_twice(history), caption="exactly once")

    @keyword(tags=["checks", "queues"])
    def get_duplicate_item_count(self, launch: LaunchRecord | int | None = None) -> int:
        """Returns how many items were processed more than once, and logs them with the agents that did it.

        | ${duplicates}= | Get Duplicate Item Count |
        | Should Be True | ${duplicates} > 0 |
        """
        record, _ = self._queue_launch(launch)
        duplicates = duplicated_items(record.result.history)
        rows = [
            (item, len(agents), ", ".join(str(agent) for agent in agents))
            for item, agents in sorted(duplicates.items())
        ]
        self.log_html(table(["item", "times processed", "agents"], rows, f"{len(duplicates)} items processed twice"))
        return len(duplicates)

    @keyword(tags=["checks", "queues"])
    def priorities_should_be_respected(
        self,
        max_inversions: int = 0,
        tolerance: timedelta = timedelta(milliseconds=50),
        launch: LaunchRecord | int | None = None,
    ) -> None:
        """Fails when a claim passed over a waiting item of higher priority, or higher priorities waited longer.

        An inversion: a consumer claimed an item while one of higher priority
        had been queued since before that claim started and nobody claimed it
        until the claim was over. More than ``max_inversions`` fail. Waits (from
        the start of an item's enqueue until a consumer had it) are logged per
        priority at p50, p95 and max; a higher priority whose p95 wait exceeds a
        lower one's by more than ``tolerance`` fails.

        | Priorities Should Be Respected |
        | Priorities Should Be Respected | max_inversions=5 | tolerance=20 ms |
        """
        record, _ = self._queue_launch(launch)
        history = record.result.history
        verdicts = [
            check_priority_inversions(history, max_inversions),
            check_waits_by_priority(history, tolerance.total_seconds()),
        ]
        self.judge(*verdicts, caption="priorities")

    @keyword(tags=["checks", "queues"])
    def queue_overflow_should_be_reported(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless offers beyond the capacity were refused as ``queue_full``, counted, and never accepted.

        Also fails when more items were waiting at once than the capacity, when
        an offer failed some other way, when an offer was refused while the
        queue had room, and when nothing was refused (overflow never happened).

        | Define Work Queue | jobs | capacity=20 | producers=5 | items=200 | process_time=20 ms |
        | Launch Agents | jobs | 7 | duration=60 s |
        | Queue Overflow Should Be Reported |
        """
        record, tool = self._queue_launch(launch)
        self.judge(check_overflow(record.result.history, tool.capacity), caption="overflow")

    @keyword(tags=["checks", "queues"])
    def log_work_queue_summary(self, launch: LaunchRecord | int | None = None) -> dict[str, Any]:
        """Logs what the queue did (offers, refusals, items processed, throughput, waits per priority) and returns it.

        The returned dictionary holds ``offered``, ``accepted``, ``refused``,
        ``processed``, ``processed_twice``, ``seconds`` and ``throughput``
        (items processed per second).

        | ${summary}= | Log Work Queue Summary |
        | Should Be True | ${summary}[throughput] > 100 |
        """
        record, tool = self._queue_launch(launch)
        summary = summarize_queue(record.result.history)
        settings = tool.settings
        rows = [
            ("queue", f"{settings.backend.value}, capacity {settings.capacity}, claim {settings.claim_strategy.value}"),
            ("offered", f"{summary.offered} by {settings.producers} producers"),
            ("accepted", str(summary.accepted)),
            ("refused (queue_full)", str(summary.refused)),
            ("offers failed otherwise", str(summary.failed_offers)),
            (
                "processed",
                f"{summary.processings} ({summary.items_processed} distinct items, "
                f"{summary.items_processed_twice} processed more than once)",
            ),
            (
                "throughput",
                f"{summary.throughput:.1f} items/s ({summary.processings} in {format_duration(summary.seconds)})",
            ),
        ]
        self.log_html(table(["", ""], rows, f"Work queue {tool.name}: launch {record.number}"))
        waits = [
            (
                w.priority,
                w.accepted,
                w.processed,
                *(format_duration(w.waits.percentiles[p]) for p in (50.0, 95.0)),
                format_duration(w.waits.max),
            )
            for w in summary.waits
        ]
        self.log_html(
            table(
                ["priority", "accepted", "processed", "wait p50", "wait p95", "wait max"],
                waits,
                "Waits by priority (enqueue start to claim)",
            )
        )
        self.log(
            f"Queue throughput: {summary.throughput:.1f} items/s ({summary.processings} items processed in "
            f"{format_duration(summary.seconds)})."
        )
        return {
            "offered": summary.offered,
            "accepted": summary.accepted,
            "refused": summary.refused,
            "processed": summary.processings,
            "processed_twice": summary.items_processed_twice,
            "seconds": summary.seconds,
            "throughput": summary.throughput,
        }
