"""Worker clocks against this process's: offsets probed the NTP way, each with its uncertainty ε.

A probe reads this process's monotonic clock (t0), has the worker read its
own (tw), and reads this clock again (t3). The worker's reading happened
somewhere between t0 and t3 here, so its offset is ``tw - (t0 + t3) / 2``
within ``(t3 - t0) / 2`` whatever the path's asymmetry: of many probes the
one with the lowest round trip is kept. Processes on one boot of one kernel
and in one time namespace read one and the same monotonic clock: their offset
is 0 exactly, and is said so rather than measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROBES = 50
"""Probes per worker per estimate: about 1 ms each through a Dask scheduler on one machine."""

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_TIME_NAMESPACE = "/proc/self/ns/time"


def clock_identity() -> str | None:
    """This process's monotonic clock's identity: its kernel's boot and its time namespace; None where unknown."""
    try:
        return f"{_BOOT_ID.read_text(encoding='ascii').strip()}/{os.readlink(_TIME_NAMESPACE)}"
    except OSError:
        return None


def clock_reading() -> tuple[str | None, int]:
    """What a worker answers a probe with: its clock's identity and its monotonic clock now (ns)."""
    return clock_identity(), time.monotonic_ns()


@dataclass(frozen=True)
class ClockOffset:
    """A worker's monotonic clock minus this one's: within ``offset_ns ± error_ns``."""

    offset_ns: int
    error_ns: int
    shared: bool = False
    """Same boot and time namespace as this process: the offset is 0 exactly, not measured."""

    def to_local(self, worker_ns: int) -> int:
        """An instant on the worker's clock on this one's."""
        return worker_ns - self.offset_ns

    def to_worker(self, local_ns: int) -> int:
        """An instant on this clock on the worker's."""
        return local_ns + self.offset_ns

    def spanning(self, other: ClockOffset) -> ClockOffset:
        """One offset covering both estimates (before and after a launch: the clock may have drifted between)."""
        if self.shared and other.shared:
            return self
        low = min(self.offset_ns - self.error_ns, other.offset_ns - other.error_ns)
        high = max(self.offset_ns + self.error_ns, other.offset_ns + other.error_ns)
        return ClockOffset((low + high) // 2, (high - low + 1) // 2)

    def describe(self) -> str:
        if self.shared:
            return "0 ns exactly (same boot and time namespace)"
        return f"{self.offset_ns / 1e6:+.3f} ms ± {self.error_ns / 1e6:.3f} ms"


def probe_offset(read: Callable[[], tuple[str | None, int]], probes: int = PROBES) -> ClockOffset:
    """The offset of the clock ``read`` reads (a call to a worker) against this one, the lowest round trip kept."""
    if probes < 1:
        raise ValueError(f"probes must be at least 1, got {probes}")
    best: tuple[int, int] | None = None
    here = clock_identity()
    for _ in range(probes):
        sent = time.monotonic_ns()
        identity, worker_ns = read()
        received = time.monotonic_ns()
        if identity is not None and identity == here:
            return ClockOffset(0, 0, shared=True)
        round_trip = received - sent
        if best is None or round_trip < best[0]:
            best = (round_trip, worker_ns - (sent + received) // 2)
    assert best is not None
    return ClockOffset(best[1], (best[0] + 1) // 2)
