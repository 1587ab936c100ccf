"""Seeded bugs of the reference agent service: one switch per checker, all off by default.

Each switch plants a realistic defect, so a test can show that the checker
meant for it fires against a real service (and stays quiet without it).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from .errors import ConfigurationError


class Bug(StrEnum):
    """A seeded defect the service can be started with (``--bugs leak,reorder``)."""

    LEAK = "leak"
    LOST_UPDATE = "lost_update"
    NEVER_ANSWER = "never_answer"
    REORDER = "reorder"
    DUPLICATE_RUN_IDS = "duplicate_run_ids"
    MEMORY_GROWTH = "memory_growth"
    GLOBAL_LOCK = "global_lock"
    SECOND_SESSION = "second_session"
    CONCURRENT_RUNS = "concurrent_runs"
    LOST_ENQUEUED_RUN = "lost_enqueued_run"
    ROLLBACK_KEEPS_WRITES = "rollback_keeps_writes"
    INTERRUPT_REPORTS_SUCCESS = "interrupt_reports_success"
    FOREIGN_THREAD_READABLE = "foreign_thread_readable"
    CROSSED_STREAMS = "crossed_streams"

    @property
    def description(self) -> str:
        """What the defect does, in a sentence a reader of a report understands."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Bug.LEAK: "the connection a run reports to is kept in one shared attribute, so under concurrency "
    "a run's later events go to whichever user started a run last",
    Bug.LOST_UPDATE: "credits are deducted by read-modify-write with a pause in between, so concurrent "
    "runs of one user overwrite each other's deduction",
    Bug.NEVER_ANSWER: "connections are accepted and read, but nothing is ever sent back",
    Bug.REORDER: "events get their sequence number first and are then sent by background tasks "
    "after a random delay, so they can arrive out of order",
    Bug.DUPLICATE_RUN_IDS: "run ids come from a counter per session (run-1, run-2, ...), so users share them",
    Bug.MEMORY_GROWTH: "every finished run's transcript and a 256 KiB work buffer are kept forever",
    Bug.GLOBAL_LOCK: "every run holds one service-wide Redis lock from start to end, so agents run one at a time",
    Bug.SECOND_SESSION: "the session registry overwrites instead of refusing, so a user can hold two sessions",
    Bug.CONCURRENT_RUNS: "HTTP runs: the thread's active-run guard is checked, then set after a pause (no lock), "
    "so two runs can be active on one thread at once",
    Bug.LOST_ENQUEUED_RUN: "HTTP runs: a thread's queue holds one waiting run; a newer enqueued run replaces it, "
    "and the replaced one is reported succeeded without having run",
    Bug.ROLLBACK_KEEPS_WRITES: "HTTP runs: the rollback removes the messages of the run that displaced the "
    "rolled-back one, so a run reported rolled back keeps its messages in the thread",
    Bug.INTERRUPT_REPORTS_SUCCESS: "HTTP runs: an interrupted run stops, but its stream and the run list "
    "report it succeeded",
    Bug.FOREIGN_THREAD_READABLE: "HTTP threads: reads of a thread (state, history, run list) check that it "
    "exists, not whose it is",
    Bug.CROSSED_STREAMS: "HTTP runs: a thread's runs share one stream writer, so a run's events go to the "
    "stream of the run requested last on that thread",
}


def _normalized(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def parse_bugs(value: str | Bug | Iterable[str | Bug] | None) -> frozenset[Bug]:
    """Return the switches ``value`` names: ``"leak, reorder"``, ``["never answer"]``, ``Bug.LEAK``.

    Case, ``-``, ``_`` and spaces do not matter; ``""``, ``"none"`` and None mean no bug.
    Raise ConfigurationError naming the known switches for an unknown one.
    """
    if value is None:
        return frozenset()
    if isinstance(value, Bug):
        names: list[str | Bug] = [value]
    elif isinstance(value, str):
        names = list(value.split(","))
    else:
        names = list(value)
    found: set[Bug] = set()
    for name in names:
        if isinstance(name, Bug):
            found.add(name)
            continue
        text = _normalized(str(name))
        if text in ("", "none"):
            continue
        try:
            found.add(Bug(text))
        except ValueError:
            known = ", ".join(bug.value for bug in Bug)
            raise ConfigurationError(
                f"Unknown agent service bug switch {name!r}: known switches are {known} "
                "(comma-separated, e.g. leak,reorder; or none)."
            ) from None
    return frozenset(found)
