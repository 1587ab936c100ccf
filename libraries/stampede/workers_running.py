"""A launch on workers started in the background: it runs in a thread of this process while other things happen."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from .launcher import LaunchPlan, LaunchResult
from .progress import Tally
from .workers import LiveShards, ToolRecipe, launch_on_workers, shards

STOP_ALLOWANCE_SECONDS = 10.0
"""Once stopped, beyond an operation's bound, how long the shards may take to end and send their histories back."""


class WorkersRunning:
    """A launch on workers running in a thread of its own: watch its progress, stop it, or await its result.

    It does for a launch on workers what :class:`~stampede.launcher.RunningLaunch`
    does for one in this process, but a stop is always graceful: each agent
    ends the operation it is in (bounded by the operation timeout).
    """

    def __init__(
        self, recipe: ToolRecipe, plan: LaunchPlan, workers: int, history_dir: Path | None, cluster: str | None
    ) -> None:
        shards(plan.agents, workers)  # a split that cannot be is refused here, not when the launch is waited for
        self.plan = plan
        self.history_dir = history_dir
        self.started_ns: int | None = None
        """When the shards were handed to the workers (monotonic ns); None while the cluster starts."""
        self._result: Future[LaunchResult] = Future()
        self._lock = threading.Lock()
        self._live: LiveShards | None = None
        self._final = Tally()
        self._stopping = False
        threading.Thread(
            target=self._run, args=(recipe, workers, history_dir, cluster), name="stampede-workers", daemon=True
        ).start()

    def _run(self, recipe: ToolRecipe, workers: int, history_dir: Path | None, cluster: str | None) -> None:
        try:
            result = launch_on_workers(recipe, self.plan, workers, history_dir, cluster, watch=self._watching)
        except BaseException as error:  # noqa: BLE001 - handed to whoever awaits the launch
            self._result.set_exception(error)
        else:
            self._result.set_result(result)

    @contextlib.contextmanager
    def _watching(self, live: LiveShards) -> Iterator[None]:
        with self._lock:
            self._live, self.started_ns = live, time.monotonic_ns()
            if self._stopping:
                live.stop()
        try:
            yield
        finally:
            with self._lock:  # a read in flight ends first: the shards' variables are deleted next
                self._final = live.progress.tally()
                self._live = None

    @property
    def agents(self) -> int:
        return self.plan.agents

    def tally(self) -> Tally:
        """The shards' progress added up (a progress source); once they have ended, their last."""
        with self._lock:
            return self._final if self._live is None else self._live.progress.tally()

    @property
    def operations(self) -> int:
        """Operations the shards have recorded so far (as last published)."""
        return self.tally().operations

    @property
    def done(self) -> bool:
        return self._result.done()

    @property
    def task(self) -> asyncio.Future[LaunchResult]:
        """The launch's result, to await on the running loop."""
        return asyncio.wrap_future(self._result)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            if self._live is not None:
                self._live.stop()

    async def settle(self, within: float, grace: float) -> bool:
        """Wait up to ``within`` s for the launch to end by itself and say whether it did.

        Past that it is stopped and waited for (bounded) as long as its
        agents' operations and ``grace`` may take, and the histories' return.
        """
        if await self._ended_within(within):
            return True
        self.stop()
        await self._ended_within(self.plan.operation_timeout + grace + STOP_ALLOWANCE_SECONDS)
        return False

    async def _ended_within(self, seconds: float) -> bool:
        done, _ = await asyncio.wait({self.task}, timeout=seconds)
        return bool(done)
