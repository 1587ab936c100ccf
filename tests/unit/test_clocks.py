"""Clock offsets probed the NTP way: the lowest round trip kept, the shared-clock case said exactly."""

from __future__ import annotations

import itertools
import time

import pytest

from stampede.clocks import ClockOffset, clock_identity, clock_reading, probe_offset


def test_a_process_on_this_boot_and_time_namespace_shares_this_clock_exactly() -> None:
    identity = clock_identity()
    assert identity is not None and "time:[" in identity
    offset = probe_offset(clock_reading)
    assert offset == ClockOffset(0, 0, shared=True)
    assert offset.describe() == "0 ns exactly (same boot and time namespace)"


def test_a_shifted_clock_is_found_within_half_the_lowest_round_trip() -> None:
    shift = 1_000_000_000_000
    delays = itertools.cycle([0.004, 0.0005, 0.002])

    def elsewhere() -> tuple[str | None, int]:
        time.sleep(next(delays))  # the way there; the reading is taken on arrival
        return "another-host/time:[1]", time.monotonic_ns() + shift

    offset = probe_offset(elsewhere, probes=6)
    assert not offset.shared
    assert abs(offset.offset_ns - shift) <= offset.error_ns, offset
    assert 250_000 <= offset.error_ns < 1_500_000, "the 0.5 ms probe was kept, not the 4 ms one"


def test_estimates_before_and_after_combine_into_one_interval_covering_both() -> None:
    before, after = ClockOffset(1_000, 100), ClockOffset(1_500, 50)
    both = before.spanning(after)
    assert (both.offset_ns - both.error_ns, both.offset_ns + both.error_ns) == (900, 1_550)
    assert both.to_local(both.to_worker(42)) == 42
    shared = ClockOffset(0, 0, shared=True)
    assert shared.spanning(shared) is shared
    with pytest.raises(ValueError, match="at least 1"):
        probe_offset(clock_reading, probes=0)
