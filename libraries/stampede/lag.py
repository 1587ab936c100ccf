"""Event-loop lag: how late the loop wakes a sleeper. A busy harness inflates every latency it measures."""

from __future__ import annotations

import asyncio
import contextlib
import time

SAMPLE_INTERVAL_SECONDS = 0.01


class LoopLagSampler:
    """Samples, every 10 ms, how much later than asked the loop resumed a sleeping task."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        interval_ns = int(self._interval * 1e9)
        while True:
            before = time.monotonic_ns()
            await asyncio.sleep(self._interval)
            self._samples.append(max(0, time.monotonic_ns() - before - interval_ns))

    async def stop(self) -> list[int]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self._samples
