"""A launch split over worker processes on Dask distributed: each shard of the agents in a process of its own.

The agents are split by index into contiguous shards, one per worker. Each
shard is run by Stampede's own launcher, on an engine loop in a thread of its
own (not on the Dask worker's event loop, which carries its heartbeats), with
the tool rebuilt in the worker from its recipe: a picklable definition, not
the tool's state. The shards' histories come back as Arrow columns and merge
into one, in the order operations ended. ``cluster=None`` starts a
``LocalCluster`` of worker processes on this machine and stops it after the
launch; an address (``tcp://host:8786``) uses that scheduler's workers.

This is a first cut: the shards are not released at one instant (each opens
its gate when its own agents are ready), clocks are not probed (worker
processes on one machine share its monotonic clock; other hosts' do not),
and a fixed arrival rate cannot be split yet.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from .agents import Tool
from .errors import ConfigurationError, StampedeError
from .history import History
from .launcher import LaunchPlan, LaunchResult, launch
from .loop import EngineLoop
from .shapes import FixedRate

START_ALLOWANCE_SECONDS = 60.0
"""How long the cluster and its workers may take to start, and a shard's tool to be rebuilt, beyond the launch."""


class ToolRecipe(Protocol):
    """What rebuilds a tool in a worker process: picklable, holding the tool's definition only."""

    name: str

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


def run_shard(recipe: ToolRecipe, plan: LaunchPlan, shard: _Shard) -> LaunchResult:
    """Run one shard's agents (in a worker): the tool rebuilt, the launcher on an engine loop of its own."""
    tool = recipe.build()
    engine = EngineLoop()
    try:
        result = engine.run(
            launch(tool, plan, shard.history_dir, shard.agents), plan.run_timeout + START_ALLOWANCE_SECONDS
        )
    finally:
        engine.close()
    return result


def launch_on_workers(
    recipe: ToolRecipe, plan: LaunchPlan, workers: int, history_dir: Path | None = None, cluster: str | None = None
) -> LaunchResult:
    """Run ``plan`` with its agents split over ``workers`` worker processes and return the merged launch.

    With ``history_dir`` on a local cluster, each shard writes its chunks under
    it as it runs (``shard-1/``, ...); the merged history is written there and
    the shards' folders removed. On a remote cluster the shards keep their
    chunks in memory and send them back.
    """
    if isinstance(plan.shape, FixedRate):
        raise ConfigurationError("a fixed rate cannot be split over workers yet: launch it with workers=1")
    ranges = shards(plan.agents, workers)
    local = cluster is None
    parts = [
        _Shard(number, agents, history_dir / f"shard-{number}" if local and history_dir is not None else None)
        for number, agents in enumerate(ranges, start=1)
    ]
    bound = plan.run_timeout + START_ALLOWANCE_SECONDS
    with _client(workers, cluster) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        if len(addresses) < workers:
            raise StampedeError(f"the cluster {cluster} has {len(addresses)} worker(s), fewer than the {workers} asked")
        futures = [
            client.submit(run_shard, recipe, plan, part, pure=False, workers=[address], allow_other_workers=False)
            for part, address in zip(parts, addresses, strict=False)
        ]
        results = _gather(client, futures, parts, bound)
    merged = _merged(plan, results, history_dir)
    for part in parts:
        if part.history_dir is not None:
            shutil.rmtree(part.history_dir, ignore_errors=True)
    return merged


@contextlib.contextmanager
def _client(workers: int, cluster: str | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if cluster is not None:
        with Client(cluster, timeout=START_ALLOWANCE_SECONDS) as client:
            client.wait_for_workers(1, timeout=START_ALLOWANCE_SECONDS)
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


def _gather(client: Any, futures: Sequence[Any], parts: Sequence[_Shard], bound: float) -> list[LaunchResult]:
    from distributed import wait

    done, _ = wait(futures, timeout=bound, return_when="ALL_COMPLETED")
    failed = []
    for future, part in zip(futures, parts, strict=True):
        if future not in done:
            failed.append(
                f"shard {part.number} (agents {part.agents.start}-{part.agents.stop - 1}) did not end in {bound:g} s"
            )
        elif future.status != "finished":
            failed.append(
                f"shard {part.number} (agents {part.agents.start}-{part.agents.stop - 1}): {future.exception()!r}"
            )
    if failed:
        for future in futures:
            future.cancel()
        raise StampedeError("The launch on workers failed: " + "; ".join(failed))
    return list(client.gather(list(futures)))


def _merged(plan: LaunchPlan, results: Sequence[LaunchResult], history_dir: Path | None) -> LaunchResult:
    first = results[0]
    errors: dict[int, str] = {}
    for result in results:
        errors.update(result.agent_errors)
    return replace(
        first,
        plan=plan,
        history=History.merged([result.history for result in results], history_dir),
        started_ns=min(result.started_ns for result in results),
        ended_ns=max(result.ended_ns for result in results),
        loop_lag_ns=[lag for result in results for lag in result.loop_lag_ns],
        timed_out=any(result.timed_out for result in results),
        unfinished_agents=sorted(agent for result in results for agent in result.unfinished_agents),
        hung_agents=sorted(agent for result in results for agent in result.hung_agents),
        agent_errors=dict(sorted(errors.items())),
        stopped_early=any(result.stopped_early for result in results),
    )
