"""Human-written quantities: parsing what keywords accept (``2 s``, ``500ms``, ``20%``), formatting durations, sizes."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from .errors import ConfigurationError

_SECONDS_PER_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_QUANTITY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zµ]*)\s*$", re.IGNORECASE)


def parse_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Return seconds for ``value``: a number of seconds or text such as ``500 ms``, ``2 s``."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a duration such as '2 s' or '500 ms', got {value!r}")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    match = _QUANTITY.match(str(value))
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in _SECONDS_PER_UNIT):
        raise ConfigurationError(f"{what} must be a duration such as '2 s', '500 ms' or '1 min', got {value!r}")
    return float(match.group(1)) * _SECONDS_PER_UNIT.get(unit, 1.0)


def parse_positive_duration(value: str | float | int, *, what: str) -> float:
    """Like :func:`parse_duration` but refuses zero and negative values."""
    seconds = parse_duration(value, what=what)
    if seconds <= 0:
        raise ConfigurationError(f"{what} must be longer than 0 s, got {value!r}")
    return seconds


def positive_seconds(value: timedelta, *, what: str) -> float:
    """``value`` in seconds, refusing zero and negative durations (a bound of 0 s could never be met)."""
    seconds = value.total_seconds()
    if seconds <= 0:
        raise ConfigurationError(f"{what} must be longer than 0 s, got {seconds:g} s")
    return seconds


def format_duration(seconds: float, extra_digits: int = 0) -> str:
    """Render seconds with a unit a reader takes in at once (``12.3 ms``, ``1.50 s``), ``extra_digits`` finer."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.{extra_digits}f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.{extra_digits}f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.{1 + extra_digits}f} ms"
    return f"{seconds:.{2 + extra_digits}f} s"


def format_size(size: float) -> str:
    """Bytes with a unit a reader takes in at once: ``512 B``, ``12.3 KB``, ``1.5 MB``, ``2.10 GB`` (decimal)."""
    magnitude = abs(size)
    if magnitude < 1e3:
        return f"{size:.0f} B"
    if magnitude < 1e6:
        return f"{size / 1e3:.1f} KB"
    if magnitude < 1e9:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e9:.2f} GB"


def require_positive_int(value: int | str, *, what: str) -> int:
    """Return ``value`` as an int of at least 1, or say clearly why it is not one."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{what} must be a whole number of at least 1, got {value!r}") from None
    if number < 1:
        raise ConfigurationError(f"{what} must be at least 1, got {number}")
    return number
