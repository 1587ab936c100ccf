"""Checks on the conversation threads of an HTTP agent service: runs, policy, reads, isolation (LockConflicts)."""

from __future__ import annotations

from collections import Counter

from robot.api.deco import keyword

from stampede.checkers.foreign_access import check_foreign_access_refused
from stampede.checkers.one_active_run import check_one_active_run
from stampede.checkers.run_streams import check_run_streams
from stampede.checkers.thread_policy import check_thread_policy
from stampede.checkers.thread_reads import check_thread_reads
from stampede.errors import ConfigurationError
from stampede.records.threads import ThreadFinal, ThreadRunRecords, missing_thread_records

from ..component import LibraryComponent
from ..html import table
from ..runtime import LaunchRecord

DEFINED_BY = "Define HTTP Agent Tool"


def thread_records(record: LaunchRecord) -> ThreadRunRecords:
    """The launch's tool as the thread checks read it; ConfigurationError naming what it lacks otherwise."""
    tool = record.tool
    if isinstance(tool, ThreadRunRecords):
        return tool
    missing = ", ".join(missing_thread_records(tool))
    raise ConfigurationError(
        f"Launch {record.number} ran {tool.name!r}, which keeps no records of threads and runs (it lacks {missing}): "
        f"the thread checks judge an HTTP agent tool, define one with {DEFINED_BY}."
    )


class ThreadCheckKeywords(LibraryComponent):
    """Judges the conversation threads of an HTTP agent service after a launch (LockConflicts)."""

    def _records(self, launch: LaunchRecord | int | None) -> tuple[LaunchRecord, ThreadRunRecords]:
        record = self.launch_record(launch)
        return record, thread_records(record)

    def _final_threads(self, record: LaunchRecord, tool: ThreadRunRecords) -> list[ThreadFinal]:
        """Read every thread the launch used, now, on the library's loop; log what was read."""
        finals = self.runtime.run(tool.final_threads())
        rows = []
        for final in finals:
            statuses = Counter(run.status.value if run.status else str(run.raw_status) for run in final.runs)
            runs = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) or "none listed"
            history = len(final.history) if final.history is not None else "not read"
            rows.append([final.thread, final.owner, len(final.messages), runs, history])
        self.log_html(
            table(
                ["thread", "owner", "messages", "runs (service's list)", "history states"],
                rows,
                f"Threads of launch {record.number}, read after it",
            )
        )
        return finals

    @keyword(tags=["checks", "threads"])
    def each_thread_should_have_at_most_one_active_run(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when the service's own records prove two runs were active on one thread at once.

        Reads every thread the launch used (its messages, the service's run
        list and, where the protocol has it, its history) and looks for a run
        whose messages another run's split, in the final list, a history state
        or a read made during the launch; for runs whose messages first appeared
        at history versions straddling each other's; and for run times in the
        service's run list that overlap. When events arrived on the agents'
        connections is no evidence: a service may hold events back.

        | Launch Agents | chat | 10 |
        | Each Thread Should Have At Most One Active Run |
        """
        record, tool = self._records(launch)
        finals = self._final_threads(record, tool)
        self.judge(check_one_active_run(tool.attempts, finals, tool.reads))

    @keyword(tags=["checks", "threads"])
    def runs_should_follow_the_thread_policy(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a thread's state or a run's answer breaks what the tool's concurrency policy promises.

        For every run: one reported succeeded holds all its messages in the
        thread's state, one reported interrupted exactly those its stream
        reported, one reported rolled back none. Under ``reject`` a refused run
        left nothing, and was refused while another run could have been active;
        under ``enqueue`` every run succeeded and the runs' messages follow the
        order the service ran them; under ``interrupt`` and ``rollback`` no run
        was refused. Runs the service never reported ended are named, not
        judged.

        | Define HTTP Agent Tool | chat | protocol=${CURDIR}/threads.json |
        | Launch Agents | chat | 10 |
        | Runs Should Follow The Thread Policy |
        """
        record, tool = self._records(launch)
        finals = self._final_threads(record, tool)
        self.judge(
            check_thread_policy(
                tool.attempts,
                finals,
                policy=tool.policy,
                messages_per_run=tool.messages_per_run,
                refusal_statuses=tool.refusal_statuses,
            )
        )

    @keyword(tags=["checks", "threads"])
    def thread_reads_should_be_consistent(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a read of a thread's messages is not a prefix of every later read and of the final list.

        Every read made during the launch, and every state of the thread's
        history, must hold no message twice, nothing the final list lost, and
        the final list's first messages in its order; a read holds no fewer
        messages than one that ended before it started. Messages of runs the
        service reports rolled back are left out (`Runs Should Follow The Thread
        Policy` judges whether they are gone).

        | Thread Reads Should Be Consistent |
        """
        record, tool = self._records(launch)
        finals = self._final_threads(record, tool)
        self.judge(check_thread_reads(tool.attempts, finals, tool.reads))

    @keyword("Other Users' Threads Should Be Refused", tags=["checks", "threads", "isolation"])
    def other_users_threads_should_be_refused(self, launch: LaunchRecord | int | None = None) -> None:
        """Asks, as each user, for another user's thread (its state, its history, a run) and fails if one is served.

        The requests are made now, with each user's own token, for threads the
        launch used. A request that got no answer, or an error that is no
        refusal, is named and not judged.

        | Launch Agents | chat | 10 |
        | Other Users' Threads Should Be Refused |
        """
        record, tool = self._records(launch)
        accesses = self.runtime.run(tool.probe_foreign_access())
        rows = [[a.user, a.thread, a.owner, a.request, a.status, "yes" if a.refused else "no"] for a in accesses]
        self.log_html(
            table(
                ["user", "thread", "owner", "request", "HTTP status", "refused"],
                rows,
                f"Requests for other users' threads after launch {record.number}",
            )
        )
        self.judge(check_foreign_access_refused(accesses))

    @keyword(tags=["checks", "threads"])
    def run_streams_should_carry_only_their_own_run(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when an event on a run's SSE stream carries another run's marker or run id, even the same user's.

        Another user's events are also `No Events Should Reach Another User`'s
        finding; this check sees one user's runs crossing too.

        | Run Streams Should Carry Only Their Own Run |
        """
        _, tool = self._records(launch)
        self.judge(check_run_streams(tool.attempts, tool.messages, left_out=tool.messages.left_out))
