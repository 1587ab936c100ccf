"""The engine's event loop in a background thread: bounded calls, cancellation, closing."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from stampede.errors import StampedeError
from stampede.loop import EngineLoop


@pytest.fixture
def engine() -> Iterator[EngineLoop]:
    loop = EngineLoop()
    yield loop
    loop.close()


async def answer(value: int) -> int:
    await asyncio.sleep(0.01)
    return value


def test_run_returns_the_result(engine: EngineLoop) -> None:
    assert engine.running
    assert engine.implementation in {"asyncio", "uvloop"}
    assert engine.run(answer(42), timeout=5.0) == 42
    assert engine.run(answer(7)) == 7


def test_run_executes_on_the_background_thread(engine: EngineLoop) -> None:
    async def thread_name() -> str:
        return threading.current_thread().name

    assert engine.run(thread_name(), timeout=5.0) == "stampede-loop"


def test_run_raises_what_the_coroutine_raises(engine: EngineLoop) -> None:
    async def fail() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        engine.run(fail(), timeout=5.0)


def test_a_timeout_raised_inside_is_not_mistaken_for_giving_up(engine: EngineLoop) -> None:
    async def client_timeout() -> None:
        raise TimeoutError("the database did not answer")

    with pytest.raises(TimeoutError, match="the database did not answer"):
        engine.run(client_timeout(), timeout=5.0)


def test_run_timeout_raises_and_cancels_the_coroutine(engine: EngineLoop) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"gave up waiting after 0.1 s"):
        engine.run(forever(), timeout=0.1)
    assert time.monotonic() - started < 3.0
    assert cancelled.wait(3.0), "the coroutine kept running after the timeout"
    assert engine.run(answer(1), timeout=5.0) == 1, "the loop must still work afterwards"


def test_submit_runs_alongside_other_calls(engine: EngineLoop) -> None:
    gate = asyncio.Event()

    async def wait_for_gate() -> str:
        await gate.wait()
        return "released"

    async def open_gate() -> None:
        gate.set()

    background = engine.submit(wait_for_gate())
    engine.run(open_gate(), timeout=5.0)
    assert background.result(5.0) == "released"


def test_close_cancels_running_work_and_stops_the_thread() -> None:
    engine = EngineLoop()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    engine.submit(forever())
    time.sleep(0.05)
    engine.close(timeout=3.0)
    assert cancelled.is_set()
    assert not engine.running
    assert engine.loop.is_closed()
    engine.close()  # closing twice is harmless


def test_nothing_runs_on_a_closed_loop() -> None:
    engine = EngineLoop()
    engine.close()
    coroutine = answer(1)
    with pytest.raises(StampedeError, match="event loop is closed"):
        engine.run(coroutine)
    assert coroutine.cr_frame is None, "the refused coroutine must be closed, not left pending"


def test_close_is_bounded_when_a_task_ignores_cancellation() -> None:
    engine = EngineLoop()

    async def stubborn() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    engine.submit(stubborn())
    started = time.monotonic()
    engine.close(timeout=0.5)
    assert time.monotonic() - started < 4.0
    assert not engine.running
