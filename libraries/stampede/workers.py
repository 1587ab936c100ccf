"""A launch split over worker processes on Dask distributed: each shard of the agents in a process of its own.

The agents are split by index into contiguous shards, one per worker. Each
shard is run by Stampede's own launcher, on an engine loop in a thread of its
own (not on the Dask worker's event loop, which carries its heartbeats), with
the tool rebuilt in the worker from its recipe: a picklable definition, not
the tool's state. The shards' histories come back as Arrow columns and merge
into one, in the order operations ended. ``cluster=None`` starts a
``LocalCluster`` of worker processes on this machine and stops it after the
launch; an address (``tcp://host:8786``) uses that scheduler's workers.

One start: each shard sets its tool up, opens its agents and reports ready;
once all are, every shard is released at one instant, scheduled on this
process's clock and converted to each worker's with its probed offset (see
:mod:`stampede.clocks`). A shard not ready within ``ready_timeout`` fails the
launch, naming it.

The load shapes hold across shards: released at one instant, a ramp starts
each agent by its number in the whole launch, and a fixed rate is split by
:class:`~stampede.shapes.RateShare` so that the shards' intended starts,
merged, are the one schedule a single process would keep. While they run,
each shard publishes its progress for a display here (see
:mod:`stampede.worker_progress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .agents import Tool
from .clocks import ClockOffset, clock_reading, probe_offset
from .errors import ConfigurationError, StampedeError
from .history import History, PayloadShift
from .launcher import LaunchPlan, LaunchResult, RunningLaunch, ToolNotes, WorkersStart, start_launch
from .loop import EngineLoop
from .worker_progress import ShardProgress, ShardsProgress

START_ALLOWANCE_SECONDS = 60.0
"""How long the cluster and its workers may take to start, and a shard's tool to be rebuilt, beyond the launch."""
READY_TIMEOUT_SECONDS = 60.0
"""How long every shard may take, by default, to set its tool up and open its agents."""
RELEASE_MARGIN_NS = 50_000_000
"""How far ahead of now the shared start is scheduled: time for the release to reach every worker."""
_READY_POLL_SECONDS = 0.02
_WORKER_WATCH_SECONDS = 0.2
WORKER_SILENCE_SECONDS = 5.0
"""A worker whose heartbeat the scheduler has not heard for this long is taken as stalled."""
_STOP_GRACE_SECONDS = 10.0
"""Beyond an operation's bound, how long the shards still running may take to stop and send their histories."""
"""How often a launch on workers checks that each shard's worker is still there."""


class WorkersFailed(StampedeError):
    """A launch on workers that lost a shard; ``kept`` is what the other shards did (None when none could say)."""

    def __init__(self, message: str, kept: LaunchResult | None) -> None:
        super().__init__(message)
        self.kept = kept


class ToolRecipe(Protocol):
    """What rebuilds a tool in a worker process: picklable, holding the tool's definition only.

    A tool that records instants in its read or written values (the lock tool)
    gives its recipe an ``on_launch_clock`` (:data:`~stampede.history.PayloadShift`):
    the merge moves those instants onto the launch's clock with the rows' times.
    A tool whose checkers read more than the history (the messages WebSocket
    agents received) gives it ``notes(tool)``: what the shard's tool noted,
    picklable, sent back as the launch's :attr:`~stampede.launcher.LaunchResult.tool_notes`
    with the shard's clock, for the tool here to take in.
    """

    @property
    def name(self) -> str: ...

    def build(self) -> Tool: ...


def shards(agents: int, workers: int) -> list[range]:
    """Agents 1..``agents`` split by index into ``workers`` contiguous ranges, as even as can be."""
    if not isinstance(workers, int) or workers < 1:
        raise ConfigurationError(f"workers must be a whole number of at least 1, got {workers!r}")
    if workers > agents:
        raise ConfigurationError(f"workers ({workers}) must not outnumber the agents ({agents}): give each one agent")
    size, extra = divmod(agents, workers)
    bounds = [1]
    for index in range(workers):
        bounds.append(bounds[-1] + size + (index < extra))
    return [range(first, last) for first, last in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class _Shard:
    number: int
    agents: range
    history_dir: Path | None
    token: str
    ready_timeout: float

    def describe(self) -> str:
        return f"shard {self.number} (agents {self.agents.start}-{self.agents.stop - 1})"


class _SharedStart:
    """A shard's side of the one start: report ready, then wait for the instant the launch says (this clock)."""

    def __init__(self, shard: _Shard) -> None:
        from distributed import Event, Variable

        # Made in the task's thread (they find the worker's client there), used from the engine's.
        self._shard = shard
        self._ready = Event(_ready_name(shard))
        self._release = Variable(f"stampede-release-{shard.token}")

    async def released(self) -> int:
        return await asyncio.to_thread(self._wait)

    def _wait(self) -> int:
        self._ready.set()
        try:
            release = self._release.get(timeout=self._shard.ready_timeout + START_ALLOWANCE_SECONDS)
        except TimeoutError:
            raise StampedeError("the launch never released its shards") from None
        if not isinstance(release, dict):
            raise StampedeError(f"the launch was called off: {release}")
        return int(release[self._shard.number])


def _ready_name(shard: _Shard) -> str:
    return f"stampede-ready-{shard.token}-{shard.number}"


def _stop_event(token: str, client: Any = None) -> Any:
    """The event that tells a launch's shards to stop: their agents end the operation they are in, start no more."""
    from distributed import Event

    return Event(f"stampede-stop-{token}", client=client)


@dataclass(frozen=True)
class LiveShards:
    """A launch on workers while its shards run: their progress added up, and a way to stop them."""

    progress: ShardsProgress
    _stop: Any

    def stop(self) -> None:
        """Stop the shards gracefully: the launch then ends as it would have, its agents having stopped early."""
        self._stop.set()


def run_shard(recipe: ToolRecipe, plan: LaunchPlan, shard: _Shard) -> LaunchResult:
    """Run one shard's agents (in a worker): the tool rebuilt, the launcher on an engine loop of its own.

    When the launch says stop (it was stopped, or another shard's worker was
    lost), the agents stop after the operation they are in and the shard's
    history comes back.
    """
    notes = getattr(recipe, "notes", None)
    start = _SharedStart(shard)
    stop = _stop_event(shard.token)
    tool = recipe.build()
    engine = EngineLoop()
    try:
        running = engine.run(_started(tool, plan, shard, start), START_ALLOWANCE_SECONDS)
        progress = ShardProgress(shard.token, shard.number, running)
        done = engine.submit(_awaited(running))
        deadline = time.monotonic() + plan.run_timeout + shard.ready_timeout + START_ALLOWANCE_SECONDS
        while not done.done() and time.monotonic() < deadline:
            progress.publish()
            if stop.wait(timeout=_WORKER_WATCH_SECONDS):
                engine.loop.call_soon_threadsafe(running.stop)
                break
        result = done.result(timeout=max(0.0, deadline - time.monotonic()))
        progress.publish()  # the shard's final tally, before the launch sees it has ended
    finally:
        engine.close()
    return result if notes is None else replace(result, tool_notes=(ToolNotes(notes(tool)),))


async def _started(tool: Tool, plan: LaunchPlan, shard: _Shard, start: _SharedStart) -> RunningLaunch:
    return start_launch(tool, plan, shard.history_dir, shard.agents, start)


async def _awaited(running: RunningLaunch) -> LaunchResult:
    return await running.task


def launch_on_workers(
    recipe: ToolRecipe,
    plan: LaunchPlan,
    workers: int,
    history_dir: Path | None = None,
    cluster: str | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
    watch: Callable[[LiveShards], AbstractContextManager[object]] | None = None,
) -> LaunchResult:
    """Run ``plan`` with its agents split over ``workers`` worker processes and return the merged launch.

    With ``history_dir`` on a local cluster, each shard writes its chunks under
    it as it runs (``shard-1/``, ...); the merged history is written there and
    the shards' folders removed. On a remote cluster the shards keep their
    chunks in memory and send them back. ``watch``, when given, is entered
    with the live shards (their progress added up, a way to stop them) while
    they run, and left once they have all ended (or one failed).
    """
    if ready_timeout <= 0:
        raise ConfigurationError(f"ready timeout must be longer than 0 s, got {ready_timeout} s")
    ranges = shards(plan.agents, workers)
    payloads: PayloadShift | None = getattr(recipe, "on_launch_clock", None)
    local = cluster is None
    token = secrets.token_hex(8)
    parts = [
        _Shard(
            number,
            agents,
            history_dir / f"shard-{number}" if local and history_dir is not None else None,
            token,
            ready_timeout,
        )
        for number, agents in enumerate(ranges, start=1)
    ]
    bound = plan.run_timeout + START_ALLOWANCE_SECONDS
    with _client(workers, cluster) as client:
        addresses = sorted(client.scheduler_info()["workers"])[:workers]
        before = [_probe(client, address) for address in addresses]
        progress = ShardsProgress(client, token, len(parts), plan.agents)
        futures = [
            client.submit(run_shard, recipe, plan, part, pure=False, workers=[address], allow_other_workers=False)
            for part, address in zip(parts, addresses, strict=True)
        ]
        try:
            with contextlib.nullcontext() if watch is None else watch(LiveShards(progress, _stop_event(token, client))):
                instant = _release_together(client, futures, parts, before, addresses)
                failed = _failures(futures, parts, addresses, _watch(client, futures, addresses, bound), bound)
            if failed:
                kept = _kept(client, token, futures, addresses, before, plan, instant, history_dir, payloads)
                note = "; the other shards stopped, their history is kept" if kept is not None else ""
                raise WorkersFailed("The launch on workers failed: " + "; ".join(failed) + note, kept)
            results = list(client.gather(list(futures)))
            clocks = [first.spanning(_probe(client, address)) for first, address in zip(before, addresses, strict=True)]
            merged = _merged(plan, results, clocks, instant, history_dir, payloads)
        finally:
            for future in futures:
                future.cancel()
            progress.close()
            for part in parts:
                if part.history_dir is not None:
                    shutil.rmtree(part.history_dir, ignore_errors=True)
    return merged


@contextlib.contextmanager
def _client(workers: int, cluster: str | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if cluster is not None:
        with Client(cluster, timeout=START_ALLOWANCE_SECONDS) as client:
            try:
                client.wait_for_workers(workers, timeout=START_ALLOWANCE_SECONDS)
            except TimeoutError:
                joined = len(client.scheduler_info()["workers"])
                raise StampedeError(
                    f"the cluster {cluster} has {joined} worker(s) after {START_ALLOWANCE_SECONDS:g} s, fewer than "
                    f"the {workers} asked: start more (dask worker {cluster}) or ask for fewer workers"
                ) from None
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        ) as local,
        Client(local, timeout=START_ALLOWANCE_SECONDS) as client,
    ):
        client.wait_for_workers(workers, timeout=START_ALLOWANCE_SECONDS)
        yield client


def _probe(client: Any, address: str) -> ClockOffset:
    return probe_offset(lambda: client.run(clock_reading, workers=[address])[address])


def _release_together(
    client: Any,
    futures: Sequence[Any],
    parts: Sequence[_Shard],
    clocks: Sequence[ClockOffset],
    addresses: Sequence[str],
) -> int:
    """Wait (bounded) for every shard to report ready, then release all at one instant (this clock's ns)."""
    from distributed import Event, Variable

    token = parts[0].token
    ready_events = {part.number: Event(_ready_name(part), client=client) for part in parts}
    release = Variable(f"stampede-release-{token}", client=client)
    ready: set[int] = set()
    deadline = time.monotonic() + parts[0].ready_timeout
    while len(ready) < len(parts) and time.monotonic() < deadline:
        time.sleep(_READY_POLL_SECONDS)
        ready |= {number for number, event in ready_events.items() if number not in ready and event.is_set()}
        ended = [
            part for future, part in zip(futures, parts, strict=True) if future.done() and part.number not in ready
        ]
        gone = _gone(client, addresses)
        if ended or gone:
            release.set("a shard ended before it was ready")
            failed = _failures(futures, parts, addresses, gone, START_ALLOWANCE_SECONDS)
            raise StampedeError("The launch on workers failed: " + "; ".join(failed))
    if len(ready) < len(parts):
        late = "; ".join(part.describe() for part in parts if part.number not in ready)
        release.set("a shard was not ready in time")
        raise StampedeError(
            f"The launch on workers failed: {late} not ready (tool set up, agents opened) within "
            f"{parts[0].ready_timeout:g} s"
        )
    instant = time.monotonic_ns() + RELEASE_MARGIN_NS + max(clock.error_ns for clock in clocks)
    release.set({part.number: clock.to_worker(instant) for part, clock in zip(parts, clocks, strict=True)})
    return instant


def _gone(client: Any, addresses: Sequence[str]) -> dict[str, str]:
    """The shards' workers lost, and how: gone from the scheduler (the process died) or silent (stalled)."""
    silent = client.run_on_scheduler(_silence_seconds)
    lost = {}
    for address in addresses:
        if address not in silent:
            lost[address] = "left the cluster (its process died)"
        elif silent[address] > WORKER_SILENCE_SECONDS:
            lost[address] = f"stalled (no heartbeat for {silent[address]:.1f} s)"
    return lost


def _silence_seconds(dask_scheduler: Any) -> dict[str, float]:
    """Run on the scheduler: each worker's time since its last heartbeat, on the scheduler's clock."""
    from distributed.metrics import time as now

    return {address: now() - worker.last_seen for address, worker in dask_scheduler.workers.items()}


def _watch(client: Any, futures: Sequence[Any], addresses: Sequence[str], bound: float) -> dict[str, str]:
    """Wait (bounded) for every shard to end; the workers lost meanwhile (then at once)."""
    deadline = time.monotonic() + bound
    while any(not future.done() for future in futures) and time.monotonic() < deadline:
        gone = _gone(client, addresses)
        if gone:
            return gone
        time.sleep(_WORKER_WATCH_SECONDS)
    return {}


def _failures(
    futures: Sequence[Any], parts: Sequence[_Shard], addresses: Sequence[str], gone: dict[str, str], bound: float
) -> list[str]:
    """Each shard that failed, lost its worker or did not end in time, and why."""
    failed = []
    for future, part, address in zip(futures, parts, addresses, strict=True):
        if future.done() and future.status != "finished":
            failed.append(f"{part.describe()}: {future.exception()!r}")
        elif address in gone:
            failed.append(f"{part.describe()}: its worker {address} {gone[address]}")
        elif not future.done() and not gone:
            failed.append(f"{part.describe()} did not end in {bound:g} s")
    return failed


def _kept(
    client: Any,
    token: str,
    futures: Sequence[Any],
    addresses: Sequence[str],
    clocks: Sequence[ClockOffset],
    plan: LaunchPlan,
    instant: int,
    history_dir: Path | None,
    payloads: PayloadShift | None,
) -> LaunchResult | None:
    """Stop the shards still running and merge what those that can still answer did; None when none can."""
    from distributed import wait

    _stop_event(token, client).set()
    lost = _gone(client, addresses)
    alive = [index for index, address in enumerate(addresses) if address not in lost]
    running = [futures[index] for index in alive]
    with contextlib.suppress(TimeoutError):
        wait(running, timeout=plan.operation_timeout + _STOP_GRACE_SECONDS)
    finished = [index for index in alive if futures[index].status == "finished"]
    if not finished:
        return None
    results = [futures[index].result() for index in finished]
    return _merged(plan, results, [clocks[index] for index in finished], instant, history_dir, payloads)


def _merged(
    plan: LaunchPlan,
    results: Sequence[LaunchResult],
    clocks: Sequence[ClockOffset],
    instant: int,
    history_dir: Path | None,
    payloads: PayloadShift | None,
) -> LaunchResult:
    """The shards' launches as one, on this process's clock."""
    first = results[0]
    errors: dict[int, str] = {}
    for result in results:
        errors.update(result.agent_errors)
    history = History.merged(
        [result.history for result in results],
        history_dir,
        [(clock.offset_ns, clock.error_ns) for clock in clocks],
        payloads,
    )
    paired = list(zip(results, clocks, strict=True))
    gates = [clock.to_local(result.gate_ns) for result, clock in paired if result.gate_ns is not None]
    error_ns = max(clock.error_ns for clock in clocks)
    start = WorkersStart(
        scheduled_ns=instant,
        gate_spread_ns=max(gates) - min(gates) if len(gates) == len(results) else None,
        first_operation_spread_ns=_first_operation_spread(history, plan.agents),
        clock_error_ns=error_ns,
        clocks=tuple(clock.describe() for clock in clocks),
    )
    return replace(
        first,
        plan=plan,
        history=history,
        started_ns=min(clock.to_local(result.started_ns) for result, clock in paired),
        ended_ns=max(clock.to_local(result.ended_ns) for result, clock in paired),
        loop_lag_ns=[lag for result in results for lag in result.loop_lag_ns],
        timed_out=any(result.timed_out for result in results),
        unfinished_agents=sorted(agent for result in results for agent in result.unfinished_agents),
        hung_agents=sorted(agent for result in results for agent in result.hung_agents),
        agent_errors=dict(sorted(errors.items())),
        stopped_early=any(result.stopped_early for result in results),
        gate_ns=instant,
        workers_start=start,
        tool_notes=tuple(
            replace(note, offset_ns=clock.offset_ns, error_ns=clock.error_ns)
            for result, clock in paired
            for note in result.tool_notes
        ),
    )


def _first_operation_spread(history: History, agents: int) -> int | None:
    """From the first agent's first operation to the last agent's first (ns); None when no agent ran one."""
    never = np.iinfo(np.int64).max
    first = np.full(agents + 1, never, dtype=np.int64)
    for columns in history.columns():
        np.minimum.at(first, columns.ints("agent"), columns.ints("start_ns"))
    started = first[first != never]
    return int(started.max() - started.min()) if started.size else None
