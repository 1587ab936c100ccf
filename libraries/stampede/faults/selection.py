"""Choosing which of the run's connections a fault hits: all of them, or a fraction picked at random."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import TypeVar

from ..errors import ConfigurationError

T = TypeVar("T")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_fraction(text: str | float) -> float:
    """``all`` → 1.0, ``50%`` → 0.5; anything else, or a share outside (0, 100] %, is refused."""
    if isinstance(text, str) and text.strip().lower() == "all":
        return 1.0
    match = _PERCENT.match(str(text))
    if not match:
        raise ConfigurationError(f"fraction must be 'all' or a percentage such as '50%', got {text!r}")
    share = float(match.group(1)) / 100
    if not 0 < share <= 1:
        raise ConfigurationError(f"fraction must be more than 0% and at most 100%, got {text!r}")
    return share


def pick(items: Sequence[T], fraction: float) -> list[T]:
    """A random ``fraction`` of ``items``, rounded up, so a fault on a non-empty set always hits something."""
    count = min(len(items), math.ceil(round(len(items) * fraction, 9)))
    return random.sample(list(items), count)
