"""The resource sampler against real processes: one that grows, one that idles, one that exits mid-run."""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from stampede.checkers.kept_running import check_stayed_up
from stampede.checkers.memory_growth import check_memory_growth
from stampede.errors import ConfigurationError, StampedeError
from stampede.resource_usage import summarize_trace
from stampede.resources import ResourceSampler

MB = 1_000_000
READY_TIMEOUT = 10.0

# Touches every page it allocates (bytes(n) would map zeroed pages that never count as resident).
GROWER = """
    import sys, time
    blocks = []
    print("ready", flush=True)
    while len(blocks) < 40:
        blocks.append(bytearray(b"x") * 2_000_000)
        time.sleep(0.05)
    time.sleep(60)
"""
IDLER = """
    import sys, time
    print("ready", flush=True)
    time.sleep(60)
"""
QUITTER = """
    import sys, time
    print("ready", flush=True)
    time.sleep(0.3)
"""

Spawn = Callable[[str], subprocess.Popen[str]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a Python child that prints 'ready' once it is set up; every child is killed and reaped afterwards."""
    children: list[subprocess.Popen[str]] = []

    def start(code: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        children.append(child)
        readable, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT)
        assert readable and child.stdout is not None and child.stdout.readline() == "ready\n", "child did not start"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()


def test_a_process_that_allocates_steadily_shows_growth(spawn: Spawn) -> None:
    grower = spawn(GROWER)

    with ResourceSampler({"harness": os.getpid(), "target": grower.pid}, interval=0.1) as sampler:
        time.sleep(1.5)
    recording = sampler.recording

    target = summarize_trace(recording.traces["target"])
    assert target.samples >= 10
    assert target.rss_growth > 30 * MB, target
    assert target.rss_max >= target.rss_end > target.rss_start
    assert target.threads_max == 1 and target.open_files_max is not None and target.open_files_max >= 3
    verdict = check_memory_growth(target, 20 * MB)
    assert not verdict.passed
    assert verdict.message.startswith("Memory of target grew by ")
    metrics = recording.metrics()
    assert metrics["target_rss_growth"] == target.rss_growth
    assert {"harness_cpu_mean", "harness_rss_growth", "target_open_files_max"} <= metrics.keys()


def test_an_idle_process_shows_no_growth(spawn: Spawn) -> None:
    idler = spawn(IDLER)

    with ResourceSampler({"target": idler.pid}, interval=0.1) as sampler:
        time.sleep(1.0)

    target = summarize_trace(sampler.recording.traces["target"])
    assert abs(target.rss_growth) < MB, target
    assert target.cpu_mean < 0.05
    assert check_memory_growth(target, 5 * MB).passed
    assert check_stayed_up(target).passed


def test_a_process_that_exits_mid_sampling_is_reported_not_a_crash(spawn: Spawn) -> None:
    quitter, killed = spawn(QUITTER), spawn(IDLER)
    sampler = ResourceSampler({"harness": os.getpid(), "quitter": quitter.pid, "killed": killed.pid}, interval=0.1)

    sampler.start()
    time.sleep(0.2)
    killed.kill()
    killed.wait(5)  # reaped: the pid is gone, not a zombie
    time.sleep(0.6)  # the quitter exits meanwhile and stays an unreaped zombie
    recording = sampler.stop()

    for name in ("quitter", "killed"):
        summary = summarize_trace(recording.traces[name])
        assert summary.exited_after is not None and 0 < summary.exited_after < 0.8, summary
        verdict = check_stayed_up(summary)
        assert not verdict.passed
        assert f"went away {verdict.measured.removeprefix('gone after ')} into sampling" in verdict.message
    harness = recording.traces["harness"]
    assert harness.exited_ns is None and len(harness.samples) >= 7


def test_sampling_keeps_pace_while_the_event_loop_is_busy() -> None:
    async def hog(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # the loop never yields, as when agents saturate it
            sum(range(1000))

    with ResourceSampler({"harness": os.getpid()}, interval=0.1) as sampler:
        asyncio.run(hog(1.0))

    samples = sampler.recording.traces["harness"].samples
    gaps = [(later.t_ns - earlier.t_ns) / 1e9 for earlier, later in itertools.pairwise(samples)]
    # A sampler that waited for the loop would show one gap of the whole second; on a busy shared machine the
    # sampler's thread still gets fewer turns than its interval asks for, so the bounds leave room for that.
    assert len(samples) >= 5
    assert max(gaps) < 0.5, gaps
    # A whole core when the machine is idle; other work on a shared machine takes its share.
    assert summarize_trace(sampler.recording.traces["harness"]).cpu_mean > 0.1


def test_stop_is_bounded_and_idempotent_and_sampling_costs_little(spawn: Spawn) -> None:
    idler = spawn(IDLER)
    sampler = ResourceSampler({"harness": os.getpid(), "target": idler.pid}, interval=30)

    sampler.start()
    began = time.monotonic()
    first = sampler.stop(timeout=2)
    assert time.monotonic() - began < 1.0
    assert [len(trace.samples) for trace in first.traces.values()] == [2, 2]  # the baseline and the last one
    assert sampler.stop() == first
    with pytest.raises(StampedeError, match="already started"):
        sampler.start()

    busy = ResourceSampler({"harness": os.getpid(), "target": idler.pid}, interval=0.05)
    with busy:
        time.sleep(1.0)
    recording = busy.recording
    assert recording.sampler_cpu_seconds / recording.wall_seconds < 0.05, recording.sampler_cpu_seconds


def test_a_pid_that_is_not_running_is_refused(spawn: Spawn) -> None:
    gone = spawn(IDLER)
    gone.kill()
    gone.wait(5)

    with pytest.raises(ConfigurationError, match=f"no process has pid {gone.pid}"):
        ResourceSampler({"target": gone.pid})
    with pytest.raises(StampedeError, match="never started"):
        ResourceSampler({"harness": os.getpid()}).stop()


def test_a_process_the_os_will_not_let_us_read_is_named(spawn: Spawn, monkeypatch: pytest.MonkeyPatch) -> None:
    # As root every process is readable, so the refusal another user's process gets is imitated here.
    idler = spawn(IDLER)
    sampler = ResourceSampler({"target": idler.pid}, interval=0.05)
    sampler.start()

    def refuse(process: object) -> None:
        raise psutil.AccessDenied(idler.pid)

    # The platform layer's read, under the public memory_info() that oneshot() caches.
    monkeypatch.setattr(psutil._psplatform.Process, "memory_info", refuse)
    time.sleep(0.2)
    with pytest.raises(StampedeError, match=rf"stopped early: .*target \(pid {idler.pid}\): access denied"):
        sampler.stop()
    assert len(sampler.recording.traces["target"].samples) >= 1
    with pytest.raises(ConfigurationError, match="Run the harness as the user that owns the process"):
        ResourceSampler({"target": idler.pid}).start()
