"""Parsing a choice the way people write it: ``read committed``, ``READ_COMMITTED``, ``read-committed``."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from .errors import ConfigurationError

E = TypeVar("E", bound=Enum)


def parse_choice(choices: type[E], value: str | E, *, what: str) -> E:
    """Return the member of ``choices`` whose value ``value`` spells, ignoring case, ``_`` and ``-``."""
    if isinstance(value, choices):
        return value
    text = " ".join(str(value).replace("_", " ").replace("-", " ").lower().split())
    for choice in choices:
        if choice.value == text:
            return choice
    names = ", ".join(repr(choice.value) for choice in choices)
    raise ConfigurationError(f"Unknown {what} {value!r}; use one of {names}.")
