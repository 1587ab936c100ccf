"""Keywords for lock conflicts: defining the lock tool (ConcurrentAgents) and judging its holders (LockConflicts)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from stampede.checkers.fencing import check_fencing, fenced_accesses
from stampede.checkers.lease_expiry import check_leases_outlived
from stampede.checkers.lock_records import lease_text, lock_attempts, lock_errors, undeclared_lease
from stampede.checkers.mutual_exclusion import (
    GRANTED_TWICE,
    cause_of,
    check_holders_never_overlap,
    check_never_granted_twice,
    check_single_active_session,
    find_overlaps,
    held,
    promised,
)
from stampede.checkers.single_session import check_single_session
from stampede.errors import ConfigurationError
from stampede.locks import LockSpec, make_lock
from stampede.locks.resource import FencedCounter
from stampede.units import format_duration
from stampede.workloads.lock_contention import LockContentionTool, LockScope, LockWork
from stampede.workloads.websocket_agents import WebSocketAgentTool

from ..component import LibraryComponent
from ..html import table
from ..runtime import LaunchRecord, Runtime

_ONE_MS = timedelta(milliseconds=1)


def _ns(duration: timedelta) -> int:
    return round(duration.total_seconds() * 1e9)


class LockToolKeywords(LibraryComponent):
    """Defines the lock tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "locks"])
    def define_lock_tool(
        self,
        name: str,
        *,
        lock: str = "stampede redis",
        lease: timedelta | None = None,
        hold: timedelta = timedelta(milliseconds=50),
        fencing: bool = False,
        stall: timedelta = timedelta(0),
        stall_every: int = 0,
        wait: timedelta = timedelta(seconds=5),
        scope: LockScope = LockScope.SHARED,
    ) -> None:
        """Defines a tool whose agents compete for a lock, work on a shared counter while holding it, and release it.

        One operation is one attempt: acquire (waiting at most ``wait``), read
        the shared counter, work for ``hold``, write the value read plus one,
        release. Every ``stall_every``-th holder stalls ``stall`` more before
        its write, like a paused process. Work or stalls longer than ``lease``
        let the lock expire under its holder. The history records, per attempt,
        the invoke and reply times of acquire and release, the holder, its
        token, its fencing number, the lease and what the release answered.

        ``lock`` is one of:
        - ``stampede redis``: ``SET NX PX`` with a token and a fencing number from
          ``INCR`` in one script; release deletes the key only if it still holds the token.
        - ``redis-py``: redis-py's own ``Lock``, one object per holder.
        - ``advisory session`` / ``advisory transaction``: PostgreSQL advisory
          locks, each holder on one connection for the whole hold.
        - ``for update``: ``SELECT … FOR UPDATE`` on a lock row, released by ``COMMIT``.
        - ``python:<module>:<callable>``: a lock of yours, see `Python locks` below.
        - ``broken`` (a seeded bug): ``SETNX``, then ``EXPIRE``, released by plain ``DEL``.

        ``lease`` is how long the lock keeps a holder: 500 ms unless given for
        the Redis locks, none for the PostgreSQL ones; for a ``python:`` lock,
        give the lease your lock has, or the checks take a hold that ended on
        its own for one still held (they warn when releases answer "not owned"
        and no lease was declared). With ``fencing`` on, the counter refuses any
        access whose fencing number is below the highest it has seen; a lock
        that issues no fencing numbers is refused here. ``scope`` ``per user``
        gives each user a lock of their own (single active session per user:
        launch with ``users=``). Needs Redis (the counter lives there), and
        PostgreSQL for the PostgreSQL locks.

        | Define Lock Tool | guard | lock=stampede redis | lease=500 ms | hold=50 ms | fencing=on |
        | Define Lock Tool | guard | lock=advisory session | hold=10 ms |
        | Define Lock Tool | guard | lock=stampede redis | lease=100 ms | hold=10 ms | stall=150 ms | stall_every=4 |
        | Define Lock Tool | sessions | scope=per user | lease=1 s | hold=20 ms |

        = Python locks =

        ``python:<module>:<callable>`` names a factory that makes a lock object.
        It is called once per agent (most lock libraries keep the owner's token
        in the lock object, so agents must not share one), with the keyword
        arguments it names from:
        - ``key``: the lock's key, under the run's key prefix
          (``stampede:<run id>:lock:<tool>``, plus ``:<user>`` for ``scope=per user``);
        - ``lease``: the tool's ``lease`` in seconds, or ``None``;
        - ``redis``: the ``redis.asyncio.Redis`` client of `Use Redis`;
        - ``redis_url``: the URL of `Use Redis`, password intact (for a library
          that wants a client of its own, such as a synchronous ``redis.Redis``).
        Its parameters are checked here, and it is called once here to check
        what it makes. The lock object has:
        - ``acquire()``: returns ``True`` when it got the lock, ``False`` when
          not, or an ``int``, the fencing number of this grant, from an object
          with ``issues_fences = True`` (needed for ``fencing=on``). A coroutine
          is awaited at most ``wait``; a plain function is called as
          ``acquire(blocking=False)`` and polled.
        - ``release()``: returns ``False`` for "not owned" (the lock had let go
          of this holder), anything else for released. An exception counts as a
          release that raised, not as "not owned": catch your library's
          "not owned" exception and return ``False``.
        - ``close()`` (optional): called when the agent stops.
        Plain functions run in a worker thread. Keys the lock leaves in Redis
        that contain the run's prefix are deleted after the launch. An
        in-process lock is the one kind every agent shares:
        ``python:stampede.locks.in_process:asyncio_lock`` (or ``threading_lock``).

        An adapter for python-redis-lock (``my_locks.py`` on the Python path):
        | from redis import Redis
        | import redis_lock
        |
        | class RedisLock:
        |     def __init__(self, key: str, lease: float | None, redis_url: str) -> None:
        |         if lease is None or lease != int(lease):
        |             raise ValueError("python-redis-lock's expire is whole seconds: give lease=1 s, 2 s, …")
        |         self.client = Redis.from_url(redis_url)
        |         self.lock = redis_lock.Lock(self.client, key, expire=int(lease))
        |
        |     def acquire(self, blocking: bool = False) -> bool:
        |         return self.lock.acquire(blocking=blocking)
        |
        |     def release(self) -> bool:
        |         try:
        |             self.lock.release()
        |         except redis_lock.NotAcquired:
        |             return False  # the lease ran out first: not owned
        |         return True
        |
        |     def close(self) -> None:
        |         self.client.close()

        | Define Lock Tool | guard | lock=python:my_locks:RedisLock | lease=2 s | hold=20 ms |
        """
        work = LockWork(
            hold=hold.total_seconds(),
            stall=stall.total_seconds(),
            stall_every=stall_every,
            fencing=fencing,
            wait=wait.total_seconds(),
            scope=scope,
        )
        spec = LockSpec.parse(lock)
        made = make_lock(spec, None if lease is None else lease.total_seconds(), self.runtime)
        tool = LockContentionTool(name, made, FencedCounter(self.runtime.redis, name, fencing=fencing), work)
        self.runtime.tools[name] = tool
        self.log_html(table(["", ""], tool.describe().items(), f"Lock tool {name}"))
        if caveat := made.caveat():
            logger.warn(f"Lock tool {name!r}: {caveat}")


class LockCheckKeywords(LibraryComponent):
    """Judges lock holders (LockConflicts)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._lease_warned: set[int] = set()
        """Launches already warned of an undeclared lease: one warning a launch, not one a check."""

    def _lock_launch(self, launch: LaunchRecord | int | None) -> tuple[LaunchRecord, LockContentionTool]:
        record, tool = self.launch_of(launch, LockContentionTool, "a lock tool", "Define Lock Tool")
        warning = undeclared_lease(lock_attempts(record.result.history))
        if warning and record.number not in self._lease_warned:
            self._lease_warned.add(record.number)
            logger.warn(f"Launch {record.number} of lock tool {tool.name!r}: {warning}")
        return record, tool

    @keyword(tags=["checks", "locks"])
    def holders_should_never_overlap(
        self, tolerance: timedelta = _ONE_MS, launch: LaunchRecord | int | None = None, errors_allowed: bool = False
    ) -> None:
        """Fails when two agents held the lock at the same instant, showing both intervals.

        A hold runs from the acquire's reply (the holder surely has the lock) to
        the release's invoke (it surely still acts on it). Each overlap says its
        cause: inside both leases (the lock was granted twice), or after the
        earlier holder's lease could have run out (it outlived its lease). An
        overlap no longer than ``tolerance`` is within the measurement error:
        reported as inconclusive, which fails too, never passes.

        Like every lock check, it fails naming the acquires and releases that
        raised, since it judges only the attempts that did not; give
        ``errors_allowed=True`` to judge the rest anyway (the message still
        counts what was left out).

        | Holders Should Never Overlap |
        | Holders Should Never Overlap | tolerance=2 ms |
        | Holders Should Never Overlap | errors_allowed=True |
        """
        record, _ = self._lock_launch(launch)
        self.judge(check_holders_never_overlap(record.result.history, _ns(tolerance), errors_allowed=errors_allowed))

    @keyword(tags=["checks", "locks"])
    def lock_should_never_be_granted_twice(
        self, tolerance: timedelta = _ONE_MS, launch: LaunchRecord | int | None = None, errors_allowed: bool = False
    ) -> None:
        """Fails when the lock let a second agent in while the first was inside its lease and had not released.

        The promise a lease lock makes: a hold counts until the release's
        invoke or until the lease could have run out (the granted try's invoke
        plus the lease), whichever comes first. A correct lease lock keeps it
        even when holders work past their lease; the seeded ``broken`` lock
        does not. Overlaps within ``tolerance`` are inconclusive. Errors
        fail it unless ``errors_allowed``, as in `Holders Should Never Overlap`.

        | Lock Should Never Be Granted Twice |
        """
        record, _ = self._lock_launch(launch)
        self.judge(check_never_granted_twice(record.result.history, _ns(tolerance), errors_allowed=errors_allowed))

    @keyword(tags=["checks", "locks"])
    def no_holder_should_outlive_its_lease(
        self, launch: LaunchRecord | int | None = None, errors_allowed: bool = False
    ) -> None:
        """Fails when a release answered "not owned" or came after the holder's lease had surely run out.

        A release that came after the lease had surely run out and still
        answered "released" deleted a lock that was not the holder's any more.
        A release that raised answered neither: it fails the check, named,
        unless ``errors_allowed``, as in `Holders Should Never Overlap`.

        | No Holder Should Outlive Its Lease |
        """
        record, _ = self._lock_launch(launch)
        self.judge(check_leases_outlived(record.result.history, errors_allowed=errors_allowed))

    @keyword("Get Not-Owned Release Count", tags=["checks", "locks"])
    def get_not_owned_release_count(self, launch: LaunchRecord | int | None = None) -> int:
        """Returns how many releases the lock answered with "not owned": holders that outlived their lease.

        | ${not owned}= | Get Not-Owned Release Count |
        | Should Be True | ${not owned} > 0 |
        """
        record, _ = self._lock_launch(launch)
        count = sum(1 for attempt in lock_attempts(record.result.history) if attempt.release_answer == "not owned")
        self.log(f'{count} releases answered "not owned".')
        return count

    @keyword(tags=["checks", "locks"])
    def fencing_should_hold(self, launch: LaunchRecord | int | None = None, errors_allowed: bool = False) -> None:
        """Fails unless the resource refused every stale fencing number and the numbers it accepted only rose.

        A stale number is one below the highest the resource had already seen:
        its holder lost the lock while it worked. Also fails when a current
        holder was refused, and is inconclusive (failing) when the lock issued
        no fencing numbers. Logs the refused accesses. Errors fail it unless
        ``errors_allowed``, as in `Holders Should Never Overlap`.

        | Define Lock Tool | guard | lease=100 ms | hold=10 ms | stall=150 ms | stall_every=4 | fencing=on |
        | Launch Agents | guard | 5 | iterations=8 |
        | Fencing Should Hold |
        """
        record, tool = self._lock_launch(launch)
        self.judge(check_fencing(record.result.history, tool.work.fencing, errors_allowed=errors_allowed))

    @keyword(tags=["checks", "locks", "websocket", "sessions"])
    def each_user_should_have_at_most_one_active_session(
        self, tolerance: timedelta = _ONE_MS, launch: LaunchRecord | int | None = None, errors_allowed: bool = False
    ) -> None:
        """Fails when a user had two sessions active at the same instant, measured from the history.

        Needs more agents than users (launch with ``users=``): with one agent
        per user nobody tries a second session, and the check fails as
        inconclusive. What a session is depends on the launch's tool:
        - a lock tool of scope ``per user`` (`Define Lock Tool`): a session is
          active from the reply of the lock that registers it to the start of
          its ending. Overlaps within ``tolerance`` are inconclusive; lock calls
          that raised fail it unless ``errors_allowed``.
        - a WebSocket agent tool (`Define WebSocket Agent Tool`, with
          ``connect_early`` so the sessions exist at once): a session is active
          from the service's ready event to the end of the last operation that
          used it. That is a lower bound, so every overlap found is real and
          ``tolerance`` does not apply. Second sessions the service refused are
          fine, and counted.

        | Define Lock Tool | sessions | scope=per user | lease=1 s | hold=20 ms |
        | Launch Agents | sessions | 20 | iterations=5 | users=5 |
        | Each User Should Have At Most One Active Session |
        | Define WebSocket Agent Tool | two tabs | connect_early=True |
        | Launch Agents | two tabs | 10 | users=5 | operation_timeout=60 s |
        | Each User Should Have At Most One Active Session |
        """
        record = self.launch_record(launch)
        if isinstance(record.tool, WebSocketAgentTool):
            self.judge(check_single_session(record.result.history))
        elif isinstance(record.tool, LockContentionTool):
            record, _ = self._lock_launch(record)
            self.judge(
                check_single_active_session(record.result.history, _ns(tolerance), errors_allowed=errors_allowed)
            )
        else:
            raise ConfigurationError(
                f"Launch {record.number} ran {record.tool.name!r}, which keeps no sessions: define a lock tool "
                "with Define Lock Tool (scope=per user) or a WebSocket agent tool with Define WebSocket Agent Tool."
            )

    @keyword(tags=["checks", "locks"])
    def log_lock_summary(
        self, tolerance: timedelta = _ONE_MS, launch: LaunchRecord | int | None = None
    ) -> dict[str, Any]:
        """Logs what the lock did (attempts, overlaps, not-owned releases, stale writes, acquire p95) and returns it.

        The returned dictionary holds ``lock``, ``attempts``, ``holds``,
        ``gave_up``, ``acquires_raised``, ``violations`` (overlapping holds),
        ``granted_twice``, ``inconclusive`` (overlaps within ``tolerance``),
        ``not_owned``, ``releases_raised``, ``stale_refused``,
        ``stale_accepted`` and ``acquire_p95`` (seconds).

        | ${summary}= | Log Lock Summary |
        | Should Be Equal As Integers | ${summary}[violations] | 0 |
        """
        record, tool = self._lock_launch(launch)
        history = record.result.history
        tolerance_ns = _ns(tolerance)
        attempts = lock_attempts(history)
        overlaps = find_overlaps(attempts, held, tolerance_ns)
        granted_twice = find_overlaps(attempts, promised, tolerance_ns)
        accesses = fenced_accesses(attempts)
        errors = lock_errors(attempts)
        acquire = record.summary.timings.get("acquire")
        summary: dict[str, Any] = {
            "lock": tool.lock.spec.label,
            "attempts": len(attempts),
            "holds": len(overlaps.holds),
            "gave_up": len(attempts) - len(overlaps.holds) - len(errors.acquires),
            "acquires_raised": len(errors.acquires),
            "violations": len(overlaps.violations),
            "granted_twice": len(granted_twice.violations),
            "inconclusive": len(overlaps.inconclusive),
            "not_owned": sum(1 for attempt in attempts if attempt.release_answer == "not owned"),
            "releases_raised": len(errors.releases),
            "stale_refused": sum(1 for access in accesses if access.stale and not access.accepted),
            "stale_accepted": sum(1 for access in accesses if access.stale and access.accepted),
            "acquire_p95": acquire.percentiles[95.0] if acquire else 0.0,
        }
        outlived = sum(1 for o in overlaps.violations if cause_of(o, tolerance_ns) != GRANTED_TWICE)
        fencing = "on" if tool.work.fencing else "off"
        rows = [
            ("lock", f"{summary['lock']} ({lease_text(tool.lease_ns)}, fencing {fencing})"),
            (
                "attempts",
                f"{summary['attempts']} ({summary['holds']} got the lock, {summary['gave_up']} gave up, "
                f"{summary['acquires_raised']} raised)",
            ),
            ("overlapping holds (violations)", f"{summary['violations']} ({outlived} after a lease ran out)"),
            ("lock granted twice", str(summary["granted_twice"])),
            ("overlaps within the error (inconclusive)", str(summary["inconclusive"])),
            ('releases answered "not owned"', str(summary["not_owned"])),
            ("releases that raised", str(summary["releases_raised"])),
            ("stale writes refused / accepted", f"{summary['stale_refused']} / {summary['stale_accepted']}"),
            ("acquire latency p95", format_duration(summary["acquire_p95"])),
        ]
        self.log_html(table(["", ""], rows, f"Lock {tool.name}: launch {record.number}"))
        self.log(
            f"Lock {summary['lock']}: {summary['attempts']} attempts, {summary['violations']} violations, "
            f"{summary['inconclusive']} inconclusive overlaps, {summary['not_owned']} not-owned releases, "
            f"acquire p95 {format_duration(summary['acquire_p95'])}."
        )
        if errors:
            self.log(f"Lock calls that raised: {errors.text()}.")
        return summary
