"""Each thread's runs and message lists, as the HTTP tool recorded and the service listed them; whose each message is.

A run is known from up to two sides: the request an agent made
(:class:`~stampede.records.threads.RunAttempt`) and the service's own run list
(:class:`~stampede.records.threads.ServiceRun`), matched by run id or marker.
A message belongs to the run the service names in it (its run id, else its
marker); only a message that names neither is given to the run whose stream
reported it, since a stream may carry another run's events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..records.threads import RunAttempt, RunStatus, ServiceRun, ThreadFinal, ThreadMessage, ThreadRead

MS = 1_000_000


@dataclass(eq=False)
class Run:
    """One run on a thread: the request that asked for it and the service's run list entry, where known."""

    thread: str
    run_id: str | None = None
    marker: str | None = None
    attempt: RunAttempt | None = None
    listed: ServiceRun | None = None

    @property
    def name(self) -> str:
        if self.run_id is not None:
            return f"run {self.run_id}"
        if self.attempt is not None:
            return f"the run agent {self.attempt.agent} asked for (marker {self.marker})"
        return f"the run with marker {self.marker}"

    @property
    def status(self) -> RunStatus | None:
        """How the service says the run ended: its run list when that says it ended, else the run's stream."""
        listed = self.listed.status if self.listed is not None else None
        if listed is not None and listed.ended:
            return listed
        if self.attempt is not None and self.attempt.outcome is not None:
            return self.attempt.outcome
        return listed

    @property
    def rolled_back(self) -> bool:
        return self.status is RunStatus.ROLLED_BACK


@dataclass(frozen=True)
class MessageList:
    """One list of a thread's messages: the final one, a history state, or a read during the launch."""

    where: str
    messages: tuple[ThreadMessage, ...]
    read: ThreadRead | None = None


@dataclass
class ThreadRuns:
    """One thread: its runs, its final state (None when it was not read) and the reads made of it."""

    thread: str
    final: ThreadFinal | None
    reads: list[ThreadRead] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    origin_ns: int = 0
    """The launch's first request, so that times read as "ms into the launch"."""
    _by_id: dict[str, Run] = field(default_factory=dict)
    _by_marker: dict[str, Run | None] = field(default_factory=dict)
    _by_message: dict[str, Run] = field(default_factory=dict)

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        self._index(run)
        return run

    def _index(self, run: Run) -> None:
        if run.run_id is not None:
            self._by_id.setdefault(run.run_id, run)
        if run.marker is not None:
            # Two runs sent with one marker: the marker names neither.
            known = self._by_marker.get(run.marker, run)
            self._by_marker[run.marker] = run if known is run else None

    def list_run(self, listed: ServiceRun) -> None:
        """Join the service's run list entry to the run an agent asked for (by id, else marker), or add it."""
        run = self._by_id.get(listed.run_id)
        if run is None and listed.marker is not None:
            run = self._by_marker.get(listed.marker)
            if run is not None and run.run_id is not None and run.run_id != listed.run_id:
                run = None
        if run is None:
            self.add(Run(self.thread, listed.run_id, listed.marker, listed=listed))
            return
        run.listed = listed
        if run.run_id is None:
            run.run_id = listed.run_id
            self._index(run)

    def index_reported(self) -> None:
        """Remember which run's stream reported each message id, for messages that name no run."""
        for run in self.runs:
            for message_id in run.attempt.messages if run.attempt is not None else ():
                self._by_message.setdefault(message_id, run)

    def run_of(self, message: ThreadMessage) -> Run | None:
        """The run a message belongs to (a run the service names but nobody asked for is added), or None."""
        run = self._by_id.get(message.run_id) if message.run_id is not None else None
        if run is None and message.marker is not None:
            run = self._by_marker.get(message.marker)
            if run is not None and message.run_id is not None:
                if run.run_id is not None:
                    run = None  # the marker's run has another id
                else:
                    run.run_id = message.run_id
                    self._index(run)
        if run is None and message.run_id is not None:
            return self.add(Run(self.thread, message.run_id, message.marker))
        if run is None and message.run_id is None:
            run = self._by_message.get(message.id)
        return run

    def messages_of(self, run: Run, messages: Iterable[ThreadMessage]) -> list[ThreadMessage]:
        return [message for message in messages if self.run_of(message) is run]

    def lists(self) -> Iterator[MessageList]:
        """The final list, then each history state oldest first, then each read that returned a list."""
        if self.final is not None:
            yield MessageList("the final list", self.final.messages)
            for version, state in enumerate(self.final.history or ()):
                yield MessageList(f"history state {version}", state)
        for read in self.reads:
            if read.messages is not None and ok_status(read.status):
                yield MessageList(self.describe_read(read), read.messages, read)

    def failed_reads(self) -> list[ThreadRead]:
        return [read for read in self.reads if read.messages is None or not ok_status(read.status)]

    def describe_read(self, read: ThreadRead) -> str:
        return f"agent {read.agent}'s {read.source} read at {self.ms(read.start_ns)}"

    def ms(self, t_ns: int) -> str:
        return f"{(t_ns - self.origin_ns) / MS:.1f} ms"


def ok_status(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def thread_runs(
    attempts: Sequence[RunAttempt], finals: Sequence[ThreadFinal], reads: Sequence[ThreadRead] = ()
) -> dict[str, ThreadRuns]:
    """Every thread the records name, in order of first mention, with its runs joined from both sides."""
    origin = min([a.request_ns for a in attempts] + [r.start_ns for r in reads], default=0)
    finals_by_thread = {final.thread: final for final in finals}
    threads: dict[str, ThreadRuns] = {}

    def of(thread: str) -> ThreadRuns:
        if thread not in threads:
            threads[thread] = ThreadRuns(thread, finals_by_thread.get(thread), origin_ns=origin)
        return threads[thread]

    for attempt in attempts:
        of(attempt.thread).add(Run(attempt.thread, attempt.run_id, attempt.marker, attempt=attempt))
    for final in finals:
        view = of(final.thread)
        for listed in final.runs:
            view.list_run(listed)
    for view in threads.values():
        view.index_reported()
    for read in reads:
        of(read.thread).reads.append(read)
    return threads


def thread_list(threads: Iterable[str], limit: int = 5) -> str:
    """``t-1, t-2 and 3 more``."""
    names = list(dict.fromkeys(threads))
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
